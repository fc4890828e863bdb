"""Orbax checkpoints of mlit's own train state.

Layout of DIR/<step>/ (one orbax CheckpointManager step, three items):
  state/   the train state pytree ({'step', 'params', 'opt_state'} or any
           pytree of arrays), sharded arrays written by every process
  data/    JSON: the data iterator position (e.g. {'batches_consumed': n})
  config/  JSON: {'gin': <resolved gin config text>}

Saves are asynchronous by default and become visible (latest_step) only when
complete, so a run killed during a save resumes from the previous one.
Restoring takes a target tree (arrays or jax.ShapeDtypeStruct with
shardings), so each array lands directly in its target sharding on any mesh.
"""

import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from mlit import run_layout
from mlit.checkpoints import orbax_read
from tasks.user_error import UserError


class _BenignOrbaxWarnings(logging.Filter):
  """Orbax warns on every read-only restore (how mlit reads a finished run: the API, eval,
  export) and on checkpoints without its optional metadata file; neither is actionable. On a
  preemption notice each process warns, per thread, that it reached the step all of them save:
  the trainer's one line says so, with where the save is."""

  MESSAGES = (
    'CheckpointManagerOptions.read_only=True',
    'Given directory is read only',
    'Metadata file does not exist',
  )
  WITHIN = ('Reached preemption sync point',)  # after a '[process=N][thread=...]' prefix

  def filter(self, record):
    message = str(record.getMessage())
    return not (message.startswith(self.MESSAGES) or any(m in message for m in self.WITHIN))


logging.getLogger('absl').addFilter(_BenignOrbaxWarnings())

_ITEMS = ('state', 'data', 'config')


def abstract_like(tree: Any) -> Any:
  """jax.ShapeDtypeStruct tree (with shardings) of a tree of arrays."""

  def one(x):
    if isinstance(x, jax.ShapeDtypeStruct):
      return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None))

  return jax.tree_util.tree_map(one, tree)


class CheckpointUnreadableError(UserError):
  """No checkpoint of a run directory restores (damaged files, or another model's state)."""


@contextlib.contextmanager
def _ctrl_c_deferred():
  """Ctrl-C during the block takes effect when it ends. Orbax's save starts its writing thread
  before it records it, and its wait forgets the thread when the join is interrupted: a
  KeyboardInterrupt in either leaves a write nobody waits for, cut off when the process exits (a
  step's `.orbax-checkpoint-tmp` left behind)."""
  if threading.current_thread() is not threading.main_thread():
    yield  # signal handlers belong to the main thread, where Python raises KeyboardInterrupt
    return
  pressed = []
  previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)
  if pressed and callable(previous):
    previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt
  elif pressed and previous == signal.SIG_DFL:
    os.kill(os.getpid(), signal.SIGINT)


class Checkpoints:
  """Keep-K, save-every-N checkpoint manager for the mlit train state.

  Args:
    directory: checkpoint root (created if missing).
    keep: how many most recent checkpoints to keep (None = all).
    save_every: `save` without force writes only at multiples of this.
    async_save: write in a background thread (call `wait` before reading).
    create: make the directory now (False: a look at what is there, e.g. a dry run).
  """

  def __init__(
    self,
    directory: str,
    *,
    keep: Optional[int] = 3,
    save_every: int = 1000,
    async_save: bool = True,
    create: bool = True,
  ):
    if save_every < 1:
      raise ValueError(f'save_every must be >= 1, got {save_every}')
    self.directory = os.path.abspath(directory)
    self.save_every = save_every
    # The interval is decided here (orbax would also save the first step).
    self._mgr = ocp.CheckpointManager(
      self.directory,
      item_names=_ITEMS,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=create, enable_async_checkpointing=async_save
      ),
    )

  def discard_unfinished_writes(self) -> list[str]:
    """Removes the writes an interrupted run left unfinished (Orbax's `<step>.orbax-checkpoint-tmp`
    directories: never restored, and otherwise kept until a save of that very step); returns
    their names. Only for the run that owns the directory, before it saves."""
    names = (
      sorted(n for n in os.listdir(self.directory) if '.orbax-checkpoint-tmp' in n)
      if os.path.isdir(self.directory)
      else []
    )
    for name in names:
      shutil.rmtree(os.path.join(self.directory, name))
    return names

  def latest_step(self) -> Optional[int]:
    """The newest complete checkpoint step, or None."""
    return self._mgr.latest_step()

  def latest_on_disk(self) -> Optional[int]:
    """The newest checkpoint complete on disk. After a save that failed (another process of the
    run lost in its middle), latest_step still names the step that save began."""
    self._mgr.reload()
    return self._mgr.latest_step()

  def all_steps(self) -> list[int]:
    """All complete checkpoint steps, ascending."""
    return sorted(self._mgr.all_steps())

  def should_save(self, step: int) -> bool:
    """Whether `save(step, ...)` without force would write."""
    return step % self.save_every == 0 and step not in self.all_steps()

  def save(
    self,
    step: int,
    state: Any,
    *,
    data_state: Optional[dict] = None,
    config_text: Optional[str] = None,
    force: bool = False,
  ) -> bool:
    """Saves state (+ data position, gin text); returns whether it wrote.

    Without `force`, only steps that are multiples of save_every are written.
    """
    if not (force or self.should_save(step)):
      return False
    args = ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=ocp.args.JsonSave(dict(data_state or {})),
      config=ocp.args.JsonSave({'gin': config_text or ''}),
    )
    with _ctrl_c_deferred():
      return self._mgr.save(step, args=args, force=True)

  def restore(self, target: Any, step: Optional[int] = None) -> tuple[Any, dict, str]:
    """Restores (state, data_state, config_text) of `step` (default latest).

    Args:
      target: tree like the saved state, of arrays or ShapeDtypeStructs;
        their shardings decide where the restored arrays live.
      step: checkpoint step; the latest when None.
    """
    self.wait()
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {self.directory}')
    if step not in self.all_steps():
      raise FileNotFoundError(
        f'{self.directory}: no checkpoint for step {step} (have {self.all_steps()})'
      )
    args = ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_like(target)),
      data=ocp.args.JsonRestore(),
      config=ocp.args.JsonRestore(),
    )
    out = orbax_read.checked(
      lambda: self._mgr.restore(step, args=args),
      f'{self.directory}/{step}',
      CheckpointUnreadableError,
    )
    return out['state'], dict(out['data'] or {}), out['config']['gin']

  def restore_newest_readable(self, target: Any) -> tuple[Any, dict, str, int]:
    """Restores the newest checkpoint that reads back: (state, data_state, config_text, step).

    A newer checkpoint that fails to restore while an older one succeeds is damaged (a
    truncated or corrupted file): it is moved aside to DIR/unreadable-<step> with a message
    on stderr, and the run resumes from the older one. When none restores (damaged, or not
    this model's), the error names every checkpoint tried: never a silent restart at step 0.
    """
    self.wait()
    failed = []  # (step, root cause): no exception objects kept, see orbax_read.checked
    for step in reversed(self.all_steps()):
      try:
        state, data_state, config_text = self.restore(target, step)
      except CheckpointUnreadableError as e:
        failed.append((step, e.cause))
        continue
      for bad, why in failed:
        aside = os.path.join(self.directory, f'unreadable-{bad}')
        print(
          f'{self.directory}/{bad}: checkpoint unreadable ({why}); '
          f'moved to {aside}, resuming from step {step}',
          file=sys.stderr,
          flush=True,
        )
        if jax.process_index() == 0:
          os.replace(os.path.join(self.directory, str(bad)), aside)
      if failed:
        self._mgr.reload()
      return state, data_state, config_text, step
    if all('shape' in why.lower() for _, why in failed):
      # Every checkpoint, intact, refusing the model's shapes: a model setting changed. Which
      # array orbax names first varies, so one example stands for all.
      raise CheckpointUnreadableError(
        f"{self.directory}: no checkpoint restores: the model's shapes differ from the "
        "checkpoints' (a model setting changed since the run started? compare with "
        f'{os.path.dirname(self.directory)}/config.gin); steps '
        f'{", ".join(str(s) for s, _ in failed)}, e.g. ({failed[0][1]})'
      )
    by_cause: dict[str, list[int]] = {}
    for s, why in failed:
      by_cause.setdefault(why, []).append(s)
    raise CheckpointUnreadableError(
      f'{self.directory}: no checkpoint restores; '
      + '; '.join(
        f'step{"s" if len(steps) > 1 else ""} {", ".join(map(str, steps))}: ({why})'
        for why, steps in by_cause.items()
      )
    )

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are complete. Ctrl-C takes effect after it:
    interrupting Orbax's join forgets the write, which the process's exit then cuts off."""
    with _ctrl_c_deferred():
      self._mgr.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._mgr.close()


def checkpoints_dir(path: str) -> str:
  """The checkpoints directory of MODEL_DIR (or of extend-vocab's --out), or `path` itself."""
  if os.path.isdir(run_layout.checkpoints(path)):
    return run_layout.checkpoints(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f'no checkpoint directory {path!r}')
  return path


def read_params(directory: str, step: Optional[int] = None) -> tuple[Any, int]:
  """Host (NumPy) params of a checkpoint without a target, e.g. for eval.

  Arrays come back as NumPy whatever mesh wrote them, so a checkpoint from a pod
  or an 8-device run reads on a laptop.

  Returns:
    (params tree, step); the latest step when `step` is None.
  """
  mgr = ocp.CheckpointManager(
    os.path.abspath(directory),
    item_names=_ITEMS,
    options=ocp.CheckpointManagerOptions(read_only=True),
  )
  step = mgr.latest_step() if step is None else step
  if step is None or step not in mgr.all_steps():
    raise FileNotFoundError(
      f'{directory}: no checkpoint for step {step} (have {sorted(mgr.all_steps())})'
    )
  others = sorted(set(mgr.all_steps()) - {step})
  state = read_item(
    directory,
    step,
    'state',
    hint=f'; other steps here: {others} (to read one, give MODEL_DIR/checkpoints/<step>)'
    if others
    else '',
    only='params',  # not Adam's moments: twice the params' bytes that inference would drop
  )
  if not isinstance(state, dict) or 'params' not in state:
    raise KeyError(f'{directory}/{step}: the state has no "params" entry')
  return state['params'], step


def read_item(
  directory: str, step: int, item: str, *, hint: str = '', only: Optional[str] = None
) -> Any:
  """One item of a checkpoint as a host (NumPy) tree, whatever mesh wrote it; with `only`, just
  that top-level entry of it (the rest is not read).

  A damaged item raises CheckpointUnreadableError naming DIR/step and the root cause, + hint."""
  path = os.path.join(os.path.abspath(directory), str(step), item)
  checkpointer = ocp.PyTreeCheckpointer()

  def read():
    tree = checkpointer.metadata(path).item_metadata.tree
    partial = only is not None and isinstance(tree, dict) and only in tree
    if partial:
      tree = {only: tree[only]}
    as_numpy = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    if not partial:
      return checkpointer.restore(path, restore_args=as_numpy)
    return checkpointer.restore(
      path, args=ocp.args.PyTreeRestore(item=tree, restore_args=as_numpy, partial_restore=True)
    )

  return orbax_read.checked(read, f'{directory}/{step}', CheckpointUnreadableError, hint)
