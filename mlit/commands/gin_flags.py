"""T5X-style command line for gin-configured mlit jobs: the one gin flag parser of every command.

`--gin_file=F` (repeatable), `--gin.NAME=VALUE` (rewritten to the gin binding
`NAME = VALUE`), `--gin_bindings=...`, `--gin_search_paths=a,b` and
`--module_import=MODULE` (repeatable, as in seqio's scripts: imported before the gin files are
parsed, e.g. a module that registers tasks or gin configurables). Gin files are found relative to
the search paths: `--gin_search_paths` first, then (as T5X's own configs stay reachable whatever
search paths a user gives) the repo's `gin/` directory and the installed `share/mlit/gin`.
"""

import argparse
import ast
import difflib
import importlib
import importlib.util  # noqa: F401  gin's package-resource reader uses it without importing it
import json
import logging
import os
import pathlib
import re
import sys
from typing import Sequence

import gin
import mlit
from mlit import run_layout
from mlit.commands import gin_run_paths, gin_unread
from tasks.user_error import UserError

_GIN_ARG = re.compile(r'^--gin\.([A-Za-z_][\w.]*(?:/[\w.]+)*)=(.*)$', re.S)
_MACRO_NAME = re.compile(r'^[A-Z_][A-Z0-9_]*$')


class GinConfigError(UserError):
  """A gin file or binding is wrong; raised before any work starts."""


def _mlit_gin_dirs() -> list[pathlib.Path]:
  """The repo's gin/ dir (source checkout) and the installed share/mlit/gin, where they exist."""
  repo_gin = pathlib.Path(mlit.__file__).resolve().parent.parent / 'gin'
  installed = pathlib.Path(sys.prefix) / 'share' / 'mlit' / 'gin'
  return [d for d in (repo_gin, installed) if d.is_dir()]


def default_search_paths() -> list[str]:
  """The repo's gin/ dir (source checkout) and the installed share/mlit/gin.

  Their parents are searched too, so `--gin_file=gin/local_tiny.gin` works
  from any working directory, like `--gin_file=local_tiny.gin`.
  """
  paths = []
  for d in _mlit_gin_dirs():
    for p in (str(d), str(d.parent)):
      if p not in paths:
        paths.append(p)
  return paths


def user_search_paths(flag_value: str) -> list[str]:
  """`--gin_search_paths=a,b`: those directories first, then mlit's own (an include of
  'runs/lit_tune.gin' in a user's file still resolves). A directory that is not there is an
  error naming it, not a path silently skipped."""
  paths = [p for p in flag_value.split(',') if p]
  for p in paths:
    if '://' not in p and not os.path.isdir(p):
      raise GinConfigError(f'--gin_search_paths: {p!r} is not a directory')
  return paths + [p for p in default_search_paths() if p not in paths]


def _mlit_gin_files() -> list[tuple[str, pathlib.Path]]:
  """(name relative to its gin/ dir, path) of every gin file mlit ships."""
  return sorted(
    (str(f.relative_to(d)), f) for d in _mlit_gin_dirs() for f in d.rglob('*.gin') if f.is_file()
  )


def _close_gin_files(name: str, paths: Sequence[str]) -> list[str]:
  """Gin files on the search paths whose names are close to a missing `name`; for a path with
  a folder that exists (/data/my_run.gin), the gin files in that folder."""
  folder = os.path.dirname(name)
  if folder and os.path.isdir(folder) and (os.path.isabs(name) or not name.startswith('gin/')):
    here = sorted(f.name for f in pathlib.Path(folder).glob('*.gin'))
    close = difflib.get_close_matches(os.path.basename(name), here, n=3, cutoff=0.75)
    if close:
      return [os.path.join(folder, c) for c in close]
  candidates = {n for n, _ in _mlit_gin_files()}
  for p in paths:
    if os.path.isdir(p) and pathlib.Path(p) not in [d.parent for d in _mlit_gin_dirs()]:
      candidates.update(str(f.relative_to(p)) for f in pathlib.Path(p).glob('*/*.gin'))
      candidates.update(f.name for f in pathlib.Path(p).glob('*.gin'))
  name = name[len('gin/') :] if name.startswith('gin/') else name
  by_lower = {}
  for c in sorted(candidates):
    by_lower.setdefault(c.lower(), []).append(c)
  if name.lower() in by_lower:  # only the case differs (setups/lU.gin): those, not more
    return by_lower[name.lower()]
  close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.75)
  return [c for low in close for c in by_lower[low]][:3]


def mlit_defines_macro(name: str) -> bool:
  """Whether one of mlit's gin files binds macro `name`."""
  return bool(_files_defining_macro(name))


def _files_defining_macro(name: str) -> list[str]:
  """mlit's gin files that bind macro `name` at top level (e.g. MIXTURE_OR_TASK_NAME:
  runs/lit_tune.gin), for the hint when the given files do not define it."""
  line = re.compile(rf'^{re.escape(name)}\s*=', re.M)
  found = []
  for rel, path in _mlit_gin_files():
    try:
      if line.search(path.read_text(encoding='utf-8')):
        found.append(rel)
    except OSError:
      continue
  return found


def required_bindings_error(error: BaseException) -> 'GinConfigError | None':
  """gin's "Required bindings for `train` not provided in config: [...]" (a configurable called
  with gin.REQUIRED parameters no file binds, e.g. a setup file given without the run file) as
  one line naming the parameters and mlit's gin files that bind them; None for other errors."""
  m = re.match(r'Required bindings for `([^`]+)` not provided in config: \[(.*?)\]', str(error))
  if not isinstance(error, RuntimeError) or not m:
    return None
  fn, params = m.group(1), [p.strip().strip('\'"') for p in m.group(2).split(',') if p.strip()]
  first = re.escape(params[0]) if params else ''
  binds = re.compile(
    rf'(^[\w.]*\b{re.escape(fn)}:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+{first}\s*=)'
    rf'|(\b{re.escape(fn)}\.{first}\s*=)',
    re.M,
  )
  files = [rel for rel, path in _mlit_gin_files() if binds.search(path.read_text(encoding='utf-8'))]
  verb = 'binds' if len(files) == 1 else 'bind'
  hint = f' ({", ".join(files[:3])} {verb} them: is such a file missing from the --gin_file list?)'
  return GinConfigError(
    f'no gin binding for the required parameter(s) {", ".join(params)} of {fn}'
    + (hint if files else '')
  )


# T5X configurables a T5X user binds on the command line and mlit's binding for the same thing.
_T5X_EQUIVALENTS = {
  'utils.SaveCheckpointConfig.period': 'train.train.checkpoint_period',
  'utils.SaveCheckpointConfig.keep': 'train.train.keep_checkpoints',
  'utils.RestoreCheckpointConfig.path': 'INITIAL_CHECKPOINT_PATH (or CONTINUE_FROM for an mlit run)',
  'partitioning.PjitPartitioner.num_partitions': 'train.train.num_partitions',
  'partitioning.PjitPartitioner.logical_axis_rules': 'train.train.logical_axis_rules',
  'train_script.train.random_seed': 'SEED',
  'train_script.train.stats_period': 'train.train.log_period',
  'train_script.train.total_steps': 'TRAIN_STEPS',
  'utils.create_learning_rate_scheduler.warmup_steps': 'WARMUP_STEPS',
  'utils.create_learning_rate_scheduler.base_learning_rate': 'LEARNING_RATE',
}


def _t5x_hint(binding: str, error: Exception) -> str:
  """For a binding to a T5X configurable mlit does not have, mlit's binding for it."""
  if 'No configurable matching' not in str(error):
    return ''
  name = binding.split('=', 1)[0].strip()
  name = name.split('/')[-1]  # a scope (train/utils.DatasetConfig...) names the same parameter
  if name in _T5X_EQUIVALENTS:
    return f' (a T5X configurable; mlit binds this as {_T5X_EQUIVALENTS[name]})'
  if name.startswith('network.T5Config.'):  # T5X's model config: mlit's has T5X's field names
    return f' (a T5X configurable; mlit binds this as text_tower.{name[len("network.") :]})'
  if name.split('.')[0] in ('utils', 'partitioning', 'train_script', 'models', 'adafactor'):
    return (
      ' (a T5X name? mlit has no T5X configurables: its run file runs/lit_tune.gin lists what '
      'it binds)'
    )
  selector = name.rsplit('.', 1)[0]
  registry = gin.config._REGISTRY  # pylint: disable=protected-access
  known = {k for k, _ in registry.items()} | {
    s
    for _, s in gin.config._CONFIG  # pylint: disable=protected-access
    if s != 'gin.macro'
  }
  # The names a binding uses: module and class (text_tower.T5Config), not the full module path.
  short = sorted({'.'.join(k.split('.')[-2:]) for k in known})
  close = difflib.get_close_matches(selector, short, n=1, cutoff=0.8)
  return f' (did you mean {close[0]}?)' if close else ''


def rewrite_gin_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """Splits `--gin.NAME=VALUE` args off argv as gin bindings `NAME = VALUE`."""
  rest, bindings = [], []
  for arg in argv:
    m = _GIN_ARG.match(arg)
    if m:
      bindings.append(f'{m.group(1)} = {m.group(2)}')
    elif arg.startswith('--gin.'):
      raise GinConfigError(
        f'bad flag {arg!r}: write it as --gin.NAME=VALUE, e.g. --gin.MODEL_DIR=\\"/tmp/run\\"'
      )
    else:
      rest.append(arg)
  return rest, bindings


GIN_HELP = """gin flags:
  --gin.NAME=VALUE      bind a gin macro or parameter, e.g. --gin.TRAIN_STEPS=10 or
                        --gin.MODEL_DIR=\\"/tmp/run\\" (strings keep their quotes: in a shell,
                        escape them as shown or write '--gin.MODEL_DIR="/tmp/run"')"""


def make_parser(
  description: str, prog: str | None = None, example: str | None = None
) -> argparse.ArgumentParser:
  epilog = GIN_HELP + (f'\n\nexample:\n  {example}' if example else '')
  p = argparse.ArgumentParser(
    prog=prog,
    description=description,
    epilog=epilog,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument(
    '--gin_file',
    action='append',
    default=[],
    help='gin file (repeatable); relative paths are looked up in --gin_search_paths',
  )
  p.add_argument(
    '--gin_bindings',
    action='append',
    default=[],
    help="extra gin binding 'NAME = VALUE', the same as --gin.NAME=VALUE",
  )
  p.add_argument(
    '--gin_search_paths',
    default=None,
    help='comma-separated directories to find gin files in, searched before the mlit gin/ '
    'directory (which is always searched)',
  )
  p.add_argument(
    '--module_import',
    action='append',
    default=[],
    help='Python module to import before the gin files are parsed (repeatable), e.g. '
    'tasks.synthetic to register its tasks',
  )
  return p


def import_modules(modules: Sequence[str]) -> None:
  for name in modules:
    try:
      importlib.import_module(name)
    except ImportError as e:
      raise GinConfigError(f'--module_import={name}: {e}') from e


def _macro_value(name: str):
  """Value bound to macro `name`, or a sentinel when the macro is not defined."""
  # Macros are stored by gin as the binding `NAME/gin.macro.value`.
  bindings = gin.config._CONFIG.get((name, 'gin.macro'), None)  # pylint: disable=protected-access
  if bindings is None or 'value' not in bindings:
    return _UNDEFINED
  return bindings['value']


_UNDEFINED = object()


def _is_required(value, _seen=()) -> bool:
  """Whether a macro's value is %gin.REQUIRED, directly or through other macros. Nothing is
  called on the way: `@registered_task()` registering every task at flag parsing ran the
  registration twice and dropped its errors."""
  if value is gin.REQUIRED:
    return True
  if not isinstance(value, gin.config.ConfigurableReference):
    return False
  kind = value.configurable.name
  if kind == 'constant':  # %gin.REQUIRED, %gin.SOME_CONSTANT: a stored value
    return value.scoped_configurable_fn() is gin.REQUIRED
  if kind == 'macro':
    name = value.scoped_selector.split('/')[0]
    return name not in _seen and _is_required(_macro_value(name), (*_seen, name))
  return False


def defined_macros() -> list[str]:
  return sorted(
    scope
    for (scope, sel) in gin.config._CONFIG  # pylint: disable=protected-access
    if sel == 'gin.macro'
  )


def _guard_resource_reader():
  """Makes gin's package-resource lookup answer "not found" instead of crashing.

  gin tries 'runs/lit_tune.gin' as a resource of a Python package 'runs'; when the working
  directory has a plain runs/ folder (a namespace package, as our own run directories make),
  that lookup raises TypeError and the include fails instead of falling back to the search paths.
  """
  readers = gin.config._FILE_READERS  # pylint: disable=protected-access
  for i, (reader, exists) in enumerate(readers):
    if getattr(exists, '__module__', '') == 'gin.resource_reader':

      def safe_exists(path, _exists=exists):
        try:
          return _exists(path)
        except TypeError:
          return False

      readers[i] = (reader, safe_exists)


def parse_gin(
  gin_files: Sequence[str],
  bindings: Sequence[str],
  search_paths: Sequence[str] | None = None,
  finalize: bool = True,
) -> None:
  """Parses files then bindings; every problem becomes a GinConfigError."""
  gin.clear_config()
  _guard_resource_reader()
  paths = list(search_paths) if search_paths else default_search_paths()
  for path in paths:
    gin.add_config_file_search_path(path)
  if not gin_files:
    raise GinConfigError('no --gin_file given (e.g. --gin_file=gin/local_tiny.gin)')
  quiet = _QuietMissingPaths()
  logging.getLogger().addFilter(quiet)
  try:
    _parse_files(gin_files, paths)
  finally:
    logging.getLogger().removeFilter(quiet)
  _parse_bindings(bindings)
  gin_unread.record(gin_files, bindings, paths, _mlit_gin_dirs())
  gin_run_paths.rebind_moved_paths(gin_files)
  if finalize:
    try:
      gin.finalize()
    except Exception as e:  # pylint: disable=broad-except
      raise GinConfigError(_finalize_message(str(e), gin_files, paths)) from e


def _macro_use(name: str, gin_files: Sequence[str], paths: Sequence[str]) -> str:
  """' (FILE:LINE)' of the first use of %name in the given gin files, or ''."""
  use = re.compile(rf'%{re.escape(name)}\b')
  for f in gin_files:
    found = [f] if os.path.isfile(f) else [os.path.join(p, f) for p in paths]
    for path in (p for p in found if os.path.isfile(p)):
      with open(path, encoding='utf-8', errors='replace') as lines:
        for n, line in enumerate(lines, 1):
          if use.search(line.split('#', 1)[0]):
            return f' ({path}:{n})'
      break
  return ''


def _finalize_message(text: str, gin_files: Sequence[str] = (), paths: Sequence[str] = ()) -> str:
  """Gin's finalize errors append the whole config; one line names what to set instead."""
  text = text.split(' in config string:')[0]
  unset = re.search(r"No bindings specified for '([^']+)/gin\.macro'", text)
  if unset:
    name = unset.group(1)
    close = difflib.get_close_matches(name, defined_macros(), n=3, cutoff=0.8)
    hint = f'; did you mean {", ".join(close)}?' if close else ''
    if name in ('MODEL', 'MODEL_DIR', 'VOCABULARY'):
      hint += (
        "; an evaluation file takes MODEL, MODEL_DIR and VOCABULARY from the training run's "
        'config.gin: give --gin_file=MODEL_DIR/config.gin before it'
      )
    return (
      f'gin macro {name} is used{_macro_use(name, gin_files, paths)} but never set: set it in a '
      f'gin file or pass --gin.{name}=...{hint}'
    )
  return f'gin config error: {text}'


class _QuietMissingPaths(logging.Filter):
  """Gin logs an error for every search path an include is not under."""

  def filter(self, record):
    return not str(record.msg).startswith('Path not found')


def _parse_files(gin_files, paths):
  for f in gin_files:
    try:
      gin.parse_config_file(f)
    except (IOError, OSError) as e:
      # gin: "Unable to open file: X. Searched config paths: [...]. In file "F", line N ..." for
      # an include X of file F; without "In file" X is the --gin_file itself.
      text = str(e)
      m = re.search(r'Unable to open file: (.+?)\. Searched config paths', text)
      missing = m.group(1) if m else f
      where = re.search(r'In file "([^"]+)", line (\d+)', text)
      close = _close_gin_files(missing, paths)
      hint = f'; did you mean {", ".join(close)}?' if close else ''
      if where and missing != f:
        raise GinConfigError(
          f'gin file {f!r}: its include {missing!r} ({where.group(1)}, line {where.group(2)}) '
          f'is not found on the search paths {paths}{hint}'
        ) from e
      raise GinConfigError(f'gin file {f!r} not found (search paths: {paths}){hint}') from e
    except Exception as e:  # gin adds "In file X, line N" to its messages.
      hint = ''
      if 'parse' in str(e) and isinstance(e, SyntaxError):
        hint = ' (a string value needs quotes: NAME = "value")'
      raise GinConfigError(f'error in gin file {f!r}: {e}{hint}') from e


def _quote_hint(binding: str) -> str:
  """Suggests quotes when an unparsable value would parse as a string."""
  name, _, value = binding.partition('=')
  name, value = name.strip(), value.strip()
  if not value or value[0] in '\'"':
    return ''
  try:
    gin.config.parse_value(value)
    return ''  # the value parses as it is: the problem is elsewhere (a name, a scope)
  except Exception:  # pylint: disable=broad-except
    pass
  try:
    gin.config.parse_value(json.dumps(value))
  except Exception:  # pylint: disable=broad-except
    return ''
  current = _macro_value(name)
  if isinstance(current, (int, float)) and not isinstance(current, bool):
    return f'. {name} takes a number (the gin files give {current!r}), not {value!r}'
  return (
    f'. A string value needs quotes: --gin.{name}=\\"{value}\\" in a shell, '
    f'or the binding {name} = "{value}"'
  )


def _parameter_hint(text: str) -> str:
  """' (did you mean log_period?)' for gin's "Configurable 'X' doesn't have a parameter named
  'Y'" when X has a parameter close to Y, else ''."""
  m = re.search(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", text)
  if not m:
    return ''
  try:
    import inspect  # pylint: disable=g-import-not-at-top

    found = gin.config._REGISTRY.get_match(m.group(1))  # pylint: disable=protected-access
    names = list(inspect.signature(found.wrapped).parameters) if found else []
  except (TypeError, ValueError, AttributeError, KeyError):
    return ''
  close = difflib.get_close_matches(m.group(2), names, n=2, cutoff=0.7)
  return f' (did you mean {" or ".join(close)}?)' if close else ''


def _parse_bindings(bindings):
  for b in bindings:
    name = b.split('=', 1)[0].strip()
    # A misspelt macro on the command line would otherwise bind a new macro nobody reads (a
    # name without a dot or scope is a macro to gin, e.g. keep_checkpoints for
    # train.train.keep_checkpoints): insist that the gin files define it.
    is_macro = _MACRO_NAME.match(name) or re.fullmatch(r'[A-Za-z_]\w*', name)
    if is_macro and _macro_value(name) is _UNDEFINED:
      known = ', '.join(defined_macros()) or 'none'
      hint = (
        ''
        if _MACRO_NAME.match(name)
        else (f' (a parameter is bound with its configurable, e.g. --gin.train.train.{name}=...)')
      )
      defining = _files_defining_macro(name) if _MACRO_NAME.match(name) else []
      if defining:
        shown = ', '.join(defining[:3]) + (
          f' and {len(defining) - 3} more' if len(defining) > 3 else ''
        )
        hint = f' (defined by {shown}: is such a file missing from the --gin_file list?)'
      close = difflib.get_close_matches(name, defined_macros(), n=1, cutoff=0.7)
      if close and not defining:
        hint = f' (did you mean {close[0]}?)'
      raise GinConfigError(
        f'unknown macro {name!r} in binding {b!r}{hint}: the gin files define {known}'
      )
    try:
      gin.parse_config(b)
    except Exception as e:  # pylint: disable=broad-except
      quote = _quote_hint(b)
      if quote:  # gin's own words here are Python's parser's (an ast node's repr)
        raise GinConfigError(f'error in gin binding {b!r}: not a value{quote}') from e
      hint = _t5x_hint(b, e) or _parameter_hint(str(e))
      raise GinConfigError(f'error in gin binding {b!r}: {e}{hint}') from e
  missing = [m for m in defined_macros() if _is_required(_macro_value(m))]
  if missing:
    flags = ' '.join(f'--gin.{m}=...' for m in missing)
    raise GinConfigError(
      f'required gin macro(s) not set: {", ".join(missing)} '
      f'(they are %gin.REQUIRED; pass e.g. {flags})'
    )


def parse_flags(
  argv: Sequence[str],
  description: str,
  add_arguments=None,
  prog: str | None = None,
  example: str | None = None,
) -> argparse.Namespace:
  """Parses a T5X-style command line, imports --module_import modules, parses the gin config.

  `add_arguments(parser)` may add a job's own (non-gin) flags; `example` is shown by --help.
  """
  argv, gin_args = rewrite_gin_args(argv)
  parser = make_parser(description, prog, example)
  if add_arguments is not None:
    add_arguments(parser)
  args = parser.parse_args(argv)
  import_modules(args.module_import)
  paths = user_search_paths(args.gin_search_paths) if args.gin_search_paths else None
  parse_gin(args.gin_file, list(args.gin_bindings) + gin_args, paths)
  return args


def check_positive(**values) -> None:
  """Each gin key's value (a count: steps, a period, a batch) must be a positive integer."""
  for key, value in values.items():
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise UserError(f'{key} must be a positive integer, got {value!r}')


def config_changes(model_dir: str, filename: str = run_layout.CONFIG) -> list[str]:
  """Binding lines of the config being run that differ from the run's saved config.gin
  ('- old' / '+ new'); [] when there is none or they agree.

  A path spelled another way that names the same file is no change: a run resumed from another
  folder binds its relative paths as found where it trained (gin_run_paths), or the user gives
  them absolute. Relative paths of the saved config are read from the folder the run trained in
  where that is known (gin_run_paths.trained_in), else from this one."""
  path = os.path.join(model_dir, filename)
  if not os.path.isfile(path):
    return []
  with open(path, encoding='utf-8') as f:
    changes = binding_changes(f.read(), gin.config_str())
  trained_in = gin_run_paths.trained_in(path) or os.getcwd()
  parts = [_binding_parts(c) for c in changes]
  old = {name: value for sign, name, value in parts if sign == '-'}
  same = {
    name
    for sign, name, value in parts
    if sign == '+' and _same_path(old.get(name), value, trained_in)
  }
  return [c for c, (_, name, _) in zip(changes, parts) if name not in same]


def _binding_parts(change: str) -> tuple[str, str, object]:
  """('-' or '+', the bound name, the value if it is a Python literal, else None)."""
  sign, binding = change[0], change[2:]
  name, _, value = binding.partition(' = ')
  try:
    return sign, name.strip(), ast.literal_eval(value.strip())
  except (ValueError, SyntaxError, MemoryError, RecursionError):
    return sign, name.strip(), None


def _same_path(old, new, old_folder: str) -> bool:
  """Whether strings `old` (relative to old_folder) and `new` (relative to here) name one path."""
  if not (isinstance(old, str) and isinstance(new, str) and old and new and old != new):
    return False
  return os.path.normpath(os.path.join(old_folder, old)) == os.path.abspath(new)


def binding_changes(old: str, new: str) -> list[str]:
  """Binding lines of gin config text `new` that differ from `old` ('- old' / '+ new'), by
  name, each '-' before its '+'."""

  def bindings(text):  # a binding continued over lines (a long dict) is one entry
    out, current = [], ''
    for line in text.splitlines():
      if not line.strip() or line.lstrip().startswith('#'):
        continue
      if line.startswith((' ', '\t')) and current:  # gin ends a wrapped line with '\'
        current = current.removesuffix('\\').rstrip() + ' ' + line.strip()
      else:
        if current:
          out.append(current)
        current = line.strip()
    return out + ([current] if current else [])

  before, now = bindings(old), bindings(new)
  changes = [f'- {b}' for b in before if b not in now] + [f'+ {b}' for b in now if b not in before]
  # Each name's old line beside its new one: a list cut short keeps both of a change.
  return sorted(changes, key=lambda c: (c[2:].partition(' = ')[0], c[0] == '+'))


def write_config(model_dir: str, filename: str = run_layout.CONFIG) -> str:
  """Writes the resolved gin config (all bindings, not only operative ones)."""
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, filename)
  with open(path, 'w') as f:
    f.write(gin.config_str())
  return path


def write_operative_config(model_dir: str, filename: str = run_layout.OPERATIVE_CONFIG) -> str:
  """Writes the bindings actually used so far (call after the model is built)."""
  path = os.path.join(model_dir, filename)
  with open(path, 'w') as f:
    f.write(gin.operative_config_str())
  return path
