"""Bindings of the user's own gin files and --gin flags that nothing in the run read.

Gin accepts a binding to any parameter a configurable has and a macro of any name, whether or not
the run ever calls that configurable or refers to that macro: `LEARNING_RAT = 3e-1` in a file of
yours defines a macro nobody reads, and `text_tower.TextTower.pooling` binds a class the model
builds with its own arguments. After set-up the trainer compares what the user bound with gin's
operative config (what was read) and warns about the rest. mlit's own gin files are not checked:
their macros (VOCABULARY for evaluation, ...) need not all be read by every command; nor is a
run's config.gin, which holds every binding of the run's files, mlit's included.
"""

import dataclasses
import difflib
import os
from typing import Sequence

import gin
from gin import config_parser
from mlit.inference import run_spec


@dataclasses.dataclass(frozen=True)
class _Binding:
  scope: str
  selector: str  # as written; a macro's name
  arg: str  # '' for a macro
  where: str  # 'FILE:LINE' or '--gin flag'
  # False for a run's config.gin: the trainer wrote every binding of the run's gin files there,
  # mlit's own included, so a command given it (a resume, a continued run) reads only some.
  checked: bool = True

  @property
  def name(self) -> str:
    scoped = f'{self.scope}/{self.selector}' if self.scope else self.selector
    return f'{scoped}.{self.arg}' if self.arg else scoped


_recorded: list[_Binding] = []


def _statements(text: str):
  return config_parser.ConfigParser(text, gin.config.ParserDelegate(skip_unknown=True))


def _resolve(name: str, paths: Sequence[str]) -> str | None:
  if os.path.isabs(name):
    return name if os.path.isfile(name) else None
  for prefix in ['', *paths]:
    path = os.path.join(prefix, name)
    if os.path.isfile(path):
      return path
  return None


def record(gin_files: Sequence[str], bindings: Sequence[str], paths: Sequence[str], own_dirs):
  """Notes the bindings of the given files outside `own_dirs` (mlit's gin/), of the files they
  include outside them, and of the --gin bindings; call once the config parsed."""
  _recorded.clear()
  own = [os.path.realpath(d) + os.sep for d in own_dirs]
  seen = set()

  def visit(name: str):
    path = _resolve(name, paths)
    if path is None or os.path.realpath(path) in seen:
      return
    seen.add(os.path.realpath(path))
    if any(os.path.realpath(path).startswith(d) for d in own):
      return
    with open(path, encoding='utf-8') as f:
      text = f.read()
    checked = not run_spec.is_run_config(path)
    for st in _statements(text):
      if isinstance(st, config_parser.IncludeStatement):
        visit(st.filename)
      elif isinstance(st, config_parser.BindingStatement):
        where = f'{path}:{st.location.line_num}'
        _recorded.append(_Binding(st.scope, st.selector, st.arg_name, where, checked))

  for name in gin_files:
    visit(name)
  for b in bindings:
    for st in _statements(b):
      if isinstance(st, config_parser.BindingStatement):
        _recorded.append(
          _Binding(st.scope, st.selector, st.arg_name, f'--gin.{b.split("=")[0].strip()}')
        )


def macro_bound_in(name: str) -> str | None:
  """Where the user last bound macro `name` ('FILE:LINE' or '--gin flag'); None if nowhere."""
  found = [b.where for b in _recorded if not b.arg and not b.scope and b.selector == name]
  return found[-1] if found else None


def bound_in(scope: str, selector: str, arg: str) -> str | None:
  """Where the user last bound parameter `arg` of the configurable `selector` (gin's name for it;
  a file may write it through an import alias, as a run's config.gin does) in `scope`."""
  name = selector.rsplit('.', 1)[-1]
  found = [
    b.where
    for b in _recorded
    if b.arg == arg and b.scope == scope and b.selector.rsplit('.', 1)[-1] == name
  ]
  return found[-1] if found else None


def _operative() -> dict:
  return gin.config._OPERATIVE_CONFIG  # pylint: disable=protected-access


def _read(b: _Binding) -> bool:
  if not b.arg:
    return (b.selector, 'gin.macro') in _operative()
  # The written selector may go through an import alias (a run's config.gin writes
  # `emoji_tasks.register_emoji_cldr_tasks` for tasks.emoji_cldr.tasks...): the configurable's own
  # name decides.
  # A binding applies in its scope and every scope nested in it: an unscoped one in all (the
  # tasks a gin reference registers, `MIXTURE_OR_TASK_NAME = @registered_task()`, read their
  # bindings in the scope 'MIXTURE_OR_TASK_NAME').
  name = b.selector.rsplit('.', 1)[-1]
  return any(
    b.scope in ('', *scope.split('/')) and selector.rsplit('.', 1)[-1] == name and b.arg in params
    for (scope, selector), params in _operative().items()
  )


def _hint(b: _Binding) -> str:
  if not b.arg:
    config = gin.config._CONFIG  # pylint: disable=protected-access
    defined = sorted(s for s, sel in config if sel == 'gin.macro' and s != b.selector)
    close = difflib.get_close_matches(b.selector, defined, n=1, cutoff=0.7)
    return f'; did you mean {close[0]}?' if close else '; nothing refers to it'
  readers = sorted(
    sel.rsplit('.', 2)[-2] + '.' + sel.rsplit('.', 1)[-1] + '.' + b.arg
    for (scope, sel), params in _operative().items()
    if b.arg in params and not scope
  )
  return f'; what the run read: {", ".join(readers[:3])}' if readers else ''


def unread_warning(defined_by_mlit) -> str | None:
  """One warning line naming the user's bindings nothing read so far, or None.

  `defined_by_mlit(name)`: whether mlit's gin files define macro `name` (an override of such a
  macro is not a typo, and not every command reads all of them)."""
  unread = []
  for b in _recorded:
    if not b.checked or _read(b) or (not b.arg and defined_by_mlit(b.selector)):
      continue
    unread.append(f'{b.name} ({b.where}{_hint(b)})')
  if not unread:
    return None
  return (
    'warning: gin bindings this run never read (a misspelt name, a setting the model passes '
    f'itself, or one for another command): {"; ".join(dict.fromkeys(unread))}'
  )
