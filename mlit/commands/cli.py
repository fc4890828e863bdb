"""The `mlit` command: one entry point for every job, each a module with its own main().

User errors (tasks.user_error.UserError and the error types in USER_ERRORS) print one line and exit
2; Ctrl-C prints one line saying where the job stands and exits 130; `--verbose` (anywhere on the
command line) shows the traceback and third-party INFO logging.
"""

import _thread
import argparse
import contextlib
import difflib
import importlib
import logging
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from typing import Sequence

# subcommand -> module whose main(argv) runs it.
COMMANDS = {
  'train': 'mlit.training.train',
  'precompute': 'mlit.commands.precompute',
  'cache-tasks': 'mlit.commands.cache_tasks',
  'backtranslate': 'mlit.translation.backtranslate_job',
  'eval': 'eval_multilingual.run',
  'report': 'eval_multilingual.report',
  'coverage': 'eval_multilingual.coverage',
  'add-language': 'mlit.commands.add_language',
  'demo': 'mlit.commands.demo',
  'ingest': 'mlit.commands.ingest',
  'predict': 'mlit.commands.predict',
  'embed': 'mlit.commands.embed',
  'export': 'mlit.commands.export',
  'search': 'mlit.commands.search',
  'vocab': 'mlit.commands.vocab',
}

# Commands whose code never imports TensorFlow skip its load (5-6 s of every start); what they
# start (add-language run's train and eval steps) loads it in its own process.
# tests/test_cli.py and tests/test_inference.py run them with TensorFlow unimportable.
WITHOUT_TENSORFLOW = frozenset(
  {'add-language', 'coverage', 'demo', 'embed', 'export', 'predict', 'report', 'search'}
)

# subcommand -> one line for `mlit --help`.
SUMMARIES = {
  'train': 'LiT-tune a two-tower model from gin files (--gin_file, --gin.NAME=VALUE)',
  'precompute': "write a task's locked image-tower embeddings (resumable shards)",
  'cache-tasks': "cache gin-registered seqio tasks with seqio's Beam pipeline",
  'backtranslate': 'round-trip texts through pivot languages, scored and filtered',
  'eval': 'evaluate a model on gin-configured zero-shot and retrieval tasks',
  'report': 'tables and plots (Markdown, HTML) from eval run directories',
  'coverage': 'tokenizer coverage per language of a SentencePiece vocabulary',
  'add-language': 'add a language to a run: coverage, prompts, vocabulary, gin, or all (run)',
  'demo': 'the embedded emoji/CLDR pipeline end to end (data, train, eval, report)',
  'ingest': 'join metadata and image shards into mlit TFRecord shards (Apache Beam)',
  'predict': 'zero-shot labels for images with a trained run (ranked table per image)',
  'embed': 'text or image embeddings of a trained run to .npy (+ JSON sidecar)',
  'export': "a trained run's towers as transformers, T5X or big_vision files",
  'search': 'images ranked for text queries with a trained run (a folder or mlit embed output)',
  'vocab': "a SentencePiece vocabulary with T5's ids from your texts, languages balanced as mT5's",
}

# Exit status after Ctrl-C: 128 + SIGINT, as a shell reports a process Ctrl-C stopped.
INTERRUPTED = 130
BROKEN_PIPE = 128 + signal.SIGPIPE  # the status a shell reports for a reader that went away

# What running a command again keeps after Ctrl-C (during its steps, train's own line names the
# checkpoint; this is for a Ctrl-C while it sets up).
KEPT_ON_RERUN = {
  'train': 'the same command resumes from the last checkpoint in MODEL_DIR/checkpoints, if any',
  'eval': 'the same command reuses the evaluations that finished',
  'precompute': 'the same command resumes at the first unfinished shard',
  'backtranslate': 'the same command resumes at the first unfinished shard',
  'ingest': 'the same command keeps the complete shards and writes the rest',
  'demo': 'the same command reuses the stages that finished (training from its checkpoint)',
}

# Third-party loggers that are chatty at INFO (Orbax logs every checkpoint step, absl, TF).
_QUIET_LOGGERS = ('absl', 'orbax', 'tensorflow', 'jax', 'etils')


def user_error_types() -> tuple:
  """Exception types whose message alone tells a user what to fix."""
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  # FileNotFoundError/IsADirectoryError: a data, checkpoint or config file that is not there.
  return (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError)


def print_skipped(command: str, skipped: dict[str, list[str]]) -> None:
  """One stderr line per reason input was skipped, naming the first 10 (the rest counted)."""
  for reason, names in skipped.items():
    shown = ', '.join(names[:10]) + (f' and {len(names) - 10} more' if len(names) > 10 else '')
    print(f'mlit {command}: skipped {len(names)} ({reason}): {shown}', file=sys.stderr)


def usage() -> str:
  width = max(map(len, COMMANDS))
  lines = [
    'usage: mlit [--verbose] COMMAND [options]',
    '',
    'COMMAND --help shows its options and an example; --verbose shows tracebacks and',
    'third-party INFO logging.',
    '',
    'commands:',
  ]
  lines += [f'  {name:<{width}}  {SUMMARIES[name]}' for name in COMMANDS]
  return '\n'.join(lines)


class _InstalledPackagesBelowWarning(logging.Filter):
  """Drops INFO/DEBUG records of installed libraries that log through the root logger (gin,
  parts of Orbax), and their reports of a Ctrl-C; the commands' own INFO lines (e.g. eval's
  progress) stay."""

  def filter(self, record):
    path = record.pathname.replace(os.sep, '/')
    if '-packages/' not in path:
      return True
    if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
      return False  # Orbax logs Ctrl-C in its wait as an ERROR with a traceback; main says it
    return record.levelno >= logging.WARNING


_ROOT_FILTER = _InstalledPackagesBelowWarning()


@contextlib.contextmanager
def _ctrl_c_never_swallowed():
  """A Ctrl-C that lands while Python runs a gc callback or a __del__ (JAX has a gc callback) is
  swallowed there as an 'unraisable' exception, and the job ran on to its end with exit 0. The
  hook has another thread deliver the signal again 10 ms later (delivered at once, it would raise
  into this same hook): the main thread then gets its KeyboardInterrupt where it is."""
  previous = sys.unraisablehook
  active = True

  def hook(unraisable):
    if (
      active
      and isinstance(unraisable.exc_value, KeyboardInterrupt)
      and callable(signal.getsignal(signal.SIGINT))
    ):
      redeliver = threading.Timer(0.01, _thread.interrupt_main, args=(signal.SIGINT,))
      redeliver.daemon = True
      redeliver.start()
    else:
      previous(unraisable)

  sys.unraisablehook = hook
  try:
    yield
  finally:
    active = False
    # A hook the command installed over this one stays (orbax_read's filter of the noise that
    # abandoned checkpoint reads print, some of it at exit); it passes the rest on to this one.
    if sys.unraisablehook is hook:
      sys.unraisablehook = previous


def quiet_third_party_logging() -> None:
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  for name in ('', *_QUIET_LOGGERS):  # '' is the root logger
    logger = logging.getLogger(name)
    if name:
      logger.setLevel(logging.WARNING)
    if _ROOT_FILTER not in logger.filters:  # a library may lower the level again (Orbax does)
      logger.addFilter(_ROOT_FILTER)
  try:
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

    absl_logging.set_verbosity(absl_logging.WARNING)
  except ImportError:
    pass


def load_tensorflow_quietly() -> None:
  """For scripts outside the `mlit` command (benchmarks/): third-party logging and TensorFlow as
  `main` sets them up, TF kept off the GPUs with its loading chatter off stderr. Call it before
  anything imports TensorFlow."""
  from tasks import tf_host  # pylint: disable=g-import-not-at-top

  quiet_third_party_logging()
  with tf_host.stderr_silenced():
    tf_host.keep_tensorflow_on_host()


# gin appends the chain of configurables to an error raised inside one.
_GIN_CALL_CHAIN = re.compile(r"\s*In call to configurable '[^']*' \(<[^>]*>\)| in scope '[^']*'")


@contextlib.contextmanager
def _flag_errors_raised(command: str, argv: Sequence[str]):
  """argparse prints its usage block and exits on a bad flag; here the error becomes a UserError,
  printed in one line like every other user error, naming the options a misspelled flag may
  have meant (argparse reports a missing required option first: `--lables` said only that one
  of --labels or --labels-file is required)."""

  def error(parser, message):
    options = [o for o in parser._option_string_actions if o.startswith('--')]  # pylint: disable=protected-access
    meant = {}
    for token in argv:
      flag = token.split('=', 1)[0]
      if flag.startswith('--') and flag not in options:
        close = difflib.get_close_matches(flag, options, n=2, cutoff=0.75)
        if close:
          meant[flag] = close
    if meant:
      guesses = '; '.join(f'{flag}: did you mean {" or ".join(c)}?' for flag, c in meant.items())
      if message.startswith(('the following arguments are required', 'one of the arguments')):
        message = f'unrecognized argument {guesses}'
      else:
        message = f'{message} ({guesses})'
    raise UserError(f'{message} (mlit {command} --help lists the options)')

  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  original = argparse.ArgumentParser.error
  argparse.ArgumentParser.error = error
  try:
    yield
  finally:
    argparse.ArgumentParser.error = original


# The folders of mlit's own code: its library warnings (e.g. encode_text's cut texts) are theirs.
_OWN_CODE = tuple(
  os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), name)
  + os.sep
  for name in ('mlit', 'tasks', 'eval_multilingual')
)


@contextlib.contextmanager
def _own_warnings_one_line(command: str):
  """A warning that mlit's own code raises (warnings.warn, for API users) is printed in a command
  as one `mlit COMMAND: warning: ...` line, like the commands' other warnings, not as Python's
  two lines with the source line; other libraries' warnings keep their format."""
  original = warnings.showwarning

  def show(message, category, filename, lineno, file=None, line=None):
    if not os.path.abspath(filename).startswith(_OWN_CODE):
      return original(message, category, filename, lineno, file, line)
    print(f'mlit {command}: warning: {message}', file=file or sys.stderr)

  warnings.showwarning = show
  try:
    yield
  finally:
    if warnings.showwarning is show:
      warnings.showwarning = original


class _CommandLogFormatter(logging.Formatter):
  """Logging records in a command's own line format: mlit's warnings as `mlit COMMAND: warning:
  ...` (Python's default was `WARNING:root:...`), its INFO lines (eval's progress) after the time,
  other libraries' records named by their logger; a logged exception as its one line, the
  traceback only with --verbose."""

  def __init__(self, command: str, verbose: bool):
    super().__init__()
    self.command, self.verbose = command, verbose

  def filter(self, record) -> bool:
    """Other libraries' INFO and DEBUG (Beam's, say, where eval sets the root logger to INFO for
    its progress) only with --verbose."""
    own = os.path.abspath(record.pathname).startswith(_OWN_CODE)
    return self.verbose or own or record.levelno >= logging.WARNING

  def format(self, record):
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
      text += (
        '\n' + self.formatException(record.exc_info)
        if self.verbose
        else f' ({one_line(record.exc_info[1])})'
      )
    level = record.levelname.lower()
    if not os.path.abspath(record.pathname).startswith(_OWN_CODE):
      return f'{record.name if record.name != "root" else record.module}: {level}: {text}'
    if record.levelno >= logging.WARNING:
      return f'mlit {self.command}: {level}: {text}'
    return f'{self.formatTime(record)} {text}'


def log_to_stderr(command: str, verbose: bool = False) -> logging.Handler | None:
  """One stderr handler on the root logger, in the command's line format (_CommandLogFormatter);
  set before the command runs, so no library's implicit basicConfig adds the default format.
  The handler added, to remove when the command returns; None when a command running this one
  in its process has one."""
  root = logging.getLogger()
  if any(getattr(h, 'mlit_command', False) for h in root.handlers):
    return None
  handler = logging.StreamHandler(sys.stderr)
  handler.mlit_command = True
  formatter = _CommandLogFormatter(command, verbose)
  handler.setFormatter(formatter)
  handler.addFilter(formatter)
  root.addHandler(handler)
  return handler


def one_line(error: BaseException) -> str:
  text = ' '.join(_GIN_CALL_CHAIN.sub('', str(error)).split())
  if isinstance(error, FileNotFoundError) and error.filename and error.filename not in text:
    text = f'{error.filename}: {text}'
  return text or type(error).__name__


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  verbose = '--verbose' in argv
  argv = [a for a in argv if a != '--verbose']
  if not argv or argv[0] in ('-h', '--help'):
    print(usage())
    return 0 if argv else 2
  command = argv[0]
  if command not in COMMANDS:
    print(f'mlit: unknown command {command!r}\n{usage()}', file=sys.stderr)
    return 2
  if not verbose:
    quiet_third_party_logging()
  handler = log_to_stderr(command, verbose)
  try:
    return _run(command, argv, verbose)
  finally:  # a caller running commands in its own process (tests) keeps its logging as it was
    if handler is not None:
      logging.getLogger().removeHandler(handler)


def _run(command: str, argv: Sequence[str], verbose: bool):
  from tasks import tf_host  # pylint: disable=g-import-not-at-top

  try:
    # TensorFlow first, kept off the GPUs (tasks/tf_host.py), then the module; without --verbose
    # what native code prints while loading stays off the terminal. A failing import still raises.
    with _ctrl_c_never_swallowed():
      with contextlib.nullcontext() if verbose else tf_host.stderr_silenced():
        if command not in WITHOUT_TENSORFLOW:
          tf_host.keep_tensorflow_on_host()
        module = importlib.import_module(COMMANDS[command])
      if not verbose:
        quiet_third_party_logging()  # importing the module may have reset absl's verbosity
      with _flag_errors_raised(command, argv[1:]), _own_warnings_one_line(command):
        return module.main(argv[1:])
  except user_error_types() as e:
    if verbose:
      traceback.print_exc()
    print(f'mlit {command}: error: {one_line(e)}', file=sys.stderr)
    return 2
  except RuntimeError as e:  # gin's "Required bindings for `train` ...": a composition mistake
    from mlit.commands import gin_flags  # pylint: disable=g-import-not-at-top

    error = gin_flags.required_bindings_error(e)
    if error is None:
      raise
    if verbose:
      traceback.print_exc()
    print(f'mlit {command}: error: {one_line(error)}', file=sys.stderr)
    return 2
  except KeyboardInterrupt as e:  # Ctrl-C: where the job stands, not the frame it was in
    if verbose:
      traceback.print_exc()
    kept = f'; {KEPT_ON_RERUN[command]}' if command in KEPT_ON_RERUN else ''
    print(f'mlit {command}: {str(e) or "interrupted (Ctrl-C)" + kept}', file=sys.stderr)
    return INTERRUPTED


def run_if_main(module_name: str, command: str) -> None:
  """At the top of a command's module: `python -m` that module runs `mlit <command>` (malloc
  settings, quiet loading, one-line errors) on the importable module, the one gin files name,
  and this __main__ copy stops before its heavy imports. A no-op when the module is imported."""
  if module_name == '__main__':
    sys.exit(program_main(command))


def program_main(command: str | None = None) -> int:
  """A process's entry: the `mlit` script, or `python -m` a command's module (command names it).

  Sets mlit's malloc settings first (re-executing the process; see malloc_settings).
  """
  from mlit.commands import malloc_settings, process_temp  # pylint: disable=g-import-not-at-top

  malloc_settings.reexec_with_settings()
  process_temp.use_own_folder()
  argv = sys.argv[1:]
  try:
    code = main([command, *argv] if command else argv)
  except BrokenPipeError:
    # Whatever read stdout stopped (`mlit --help | head`): end quietly, as Unix tools do. stdout
    # goes to /dev/null so that Python's own flush at exit does not raise the same error again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return BROKEN_PIPE
  if code == INTERRUPTED:
    # Threads that Ctrl-C left running (tf.data readers, XLA compiling) can crash the interpreter's
    # teardown (a segfault after the job's line, 1 exit in 3 when interrupted during set-up); the
    # job's own files were closed by its finally blocks, so the process ends without teardown.
    process_temp.end_without_teardown(code)
  return code


if __name__ == '__main__':
  sys.exit(program_main())
