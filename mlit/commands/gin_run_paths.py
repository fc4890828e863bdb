"""A run's config.gin read from another folder: its relative input paths, found where it trained.

The trainer writes config.gin with paths as the training command was given them, relative to the
folder it ran in (`EMOJI_DATA = 'runs/demo/data'`). Given to `mlit eval` (or any command) from
another folder, those paths name nothing. The folder the run trained in is known: config.gin sits
in MODEL_DIR, so MODEL_DIR's absolute path less its bound relative form is that folder. A macro or
parameter (`register_wit.tsv_pattern = 'data/wit-*.tsv.gz'`) of the run's config.gin whose relative
path is not here but is there is bound to the path there, with one warning naming them; the
MODEL_DIR macro itself is left to the commands (they find the run by its config.gin, see
mlit.inference.encoder).
"""

import ast
import glob
import os
import sys
from typing import Sequence

import gin
from mlit.commands import gin_unread
from mlit.inference import run_spec

# Found by the commands themselves: the run is where its config.gin is.
_LEFT_TO_THE_COMMANDS = ('MODEL_DIR',)


def trained_in(config_path: str) -> str | None:
  """The folder a run's config.gin was written from, or None: `config_path` must be a run's
  config.gin (mlit_model.json beside it) binding a relative MODEL_DIR that its folder ends with."""
  if not run_spec.is_run_config(config_path):
    return None
  run = os.path.dirname(os.path.abspath(config_path))
  bound = _model_dir_in(config_path)  # as the file binds it: a flag may bind another
  if not bound or os.path.isabs(bound):
    return None
  parts = os.path.normpath(bound).split(os.sep)
  if '..' in parts or run.split(os.sep)[-len(parts) :] != parts:
    return None
  return os.sep.join(run.split(os.sep)[: -len(parts)]) or os.sep


def _model_dir_in(config_path: str) -> str | None:
  """MODEL_DIR as a config.gin the trainer wrote binds it (`MODEL_DIR = 'runs/demo/train'`)."""
  with open(config_path, encoding='utf-8') as f:
    for line in f:
      name, eq, value = line.partition('=')
      if eq and name.strip() == 'MODEL_DIR':
        try:
          bound = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
          return None
        return bound if isinstance(bound, str) else None
  return None


def _exists(path: str) -> bool:
  return bool(glob.glob(path)) if glob.has_magic(path) else os.path.exists(path)


def rebind_moved_paths(gin_files: Sequence[str]) -> list[str]:
  """Binds each relative path of a run's config.gin in `gin_files` (a macro's, or a parameter's:
  `tasks.wit.register_wit.tsv_pattern = 'data/wit-*.tsv.gz'`) that is not found here but is found
  where the run trained; returns the names rebound (one warning names them)."""
  configs = {os.path.abspath(f): trained_in(f) for f in gin_files}
  if not any(configs.values()):  # no run's config.gin from another folder: every command's case
    return []
  rebound = {}  # (config.gin, the folder it trained in) -> names
  for (scope, selector), params in list(gin.config._CONFIG.items()):  # pylint: disable=protected-access
    for arg, value in list(params.items()):
      if not isinstance(value, str) or not value or os.path.isabs(value) or _exists(value):
        continue
      if selector == 'gin.macro':  # (name, 'gin.macro'): {'value': ...}
        if scope in _LEFT_TO_THE_COMMANDS:
          continue
        name, key, where = scope, f'{scope}/gin.macro.value', gin_unread.macro_bound_in(scope)
      else:
        key = f'{scope}/{selector}.{arg}' if scope else f'{selector}.{arg}'
        name = key.replace(selector, selector.rsplit('.', 1)[-1])
        where = gin_unread.bound_in(scope, selector, arg)
      # The last binding: a flag or a later file wins.
      config = os.path.abspath(where.rsplit(':', 1)[0]) if where else None
      origin = configs.get(config)
      there = os.path.join(origin, value) if origin else ''
      if not origin or not _exists(there):
        continue
      if selector != 'gin.macro' and os.sep not in value and not os.path.isfile(there):
        continue  # a parameter's word ('train', 'mean') that a folder there happens to hold
      gin.bind_parameter(key, there)
      rebound.setdefault((config, origin), []).append(name)
  for (config, origin), names in rebound.items():
    print(
      f'warning: {config} names {", ".join(sorted(names))} relative to the folder the run '
      f'trained in; they are not in this one ({os.getcwd()}): reading them from {origin}',
      file=sys.stderr,
      flush=True,
    )
  return sorted(n for names in rebound.values() for n in names)
