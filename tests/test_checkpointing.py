"""Orbax round trip of the mlit train state, keep-K, save-every-N, JSON items."""

import logging
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlit.checkpoints import run_state as checkpointing
from mlit.training import optimizer, partitioning


def _state(seed=0):
  k = jax.random.split(jax.random.PRNGKey(seed), 3)
  params = {
    'img': {'embedding': {'kernel': jax.random.normal(k[0], (40, 8))}},
    'txt': {
      'head': {'kernel': jax.random.normal(k[1], (40, 48)), 'bias': jax.random.normal(k[2], (48,))}
    },
    't': jnp.array(2.3, jnp.float32),
  }
  # Adafactor with a locked tower: factored stats, EMA, empty masked nodes.
  tx, _ = optimizer.make_optimizer(params, total_steps=10, freeze=[r'^img/'])
  opt_state = tx.init(params)
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  _, opt_state = tx.update(grads, opt_state, params)
  return {'step': jnp.array(7, jnp.int32), 'params': params, 'opt_state': opt_state}, tx


def _assert_trees_equal(a, b):
  la, ta = jax.tree_util.tree_flatten(a)
  lb, tb = jax.tree_util.tree_flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_keep_and_interval(tmp_path):
  state, _ = _state()
  ckpt = checkpointing.Checkpoints(str(tmp_path / 'ckpt'), keep=2, save_every=2)
  assert ckpt.latest_step() is None
  written = [
    ckpt.save(s, state, data_state={'batches_consumed': s}, config_text=f'TRAIN_STEPS = {s}')
    for s in range(1, 7)
  ]
  assert written == [False, True, False, True, False, True]
  assert ckpt.save(7, state, data_state={'batches_consumed': 7}, force=True)
  ckpt.wait()
  assert ckpt.all_steps() == [6, 7] and ckpt.latest_step() == 7
  zeros = jax.tree_util.tree_map(jnp.zeros_like, state)
  restored, data, gin_text = ckpt.restore(zeros, step=6)
  _assert_trees_equal(restored, state)
  assert data == {'batches_consumed': 6} and gin_text == 'TRAIN_STEPS = 6'
  _, data, gin_text = ckpt.restore(zeros)
  assert data == {'batches_consumed': 7} and gin_text == ''
  ckpt.close()
  params, step = checkpointing.read_params(str(tmp_path / 'ckpt'))
  assert step == 7
  _assert_trees_equal(params, state['params'])


def test_read_params_leaves_the_optimizer_state_unread(tmp_path, monkeypatch):
  """Inference and evaluation read the params only: Adam's moments, twice their bytes, were read
  and dropped (and a damaged moment stopped an mlit.load that never needed it)."""
  state, _ = _state()
  ckpt = checkpointing.Checkpoints(str(tmp_path / 'ckpt'), keep=1)
  ckpt.save(7, state, data_state={'batches_consumed': 7}, force=True)
  ckpt.close()
  requested = []
  real_restore = checkpointing.ocp.PyTreeCheckpointer.restore

  def restore(self, path, *args, **kwargs):
    item = kwargs['args'].item if 'args' in kwargs else kwargs.get('restore_args')
    requested.append(sorted(item))
    return real_restore(self, path, *args, **kwargs)

  monkeypatch.setattr(checkpointing.ocp.PyTreeCheckpointer, 'restore', restore)
  params, _ = checkpointing.read_params(str(tmp_path / 'ckpt'))
  _assert_trees_equal(params, state['params'])
  assert requested == [['params']]
  whole = checkpointing.read_item(str(tmp_path / 'ckpt'), 7, 'state')

  # Read without a target: plain dicts in another order, the same arrays.
  def sums(tree):
    return sorted(float(np.sum(x)) for x in jax.tree_util.tree_leaves(tree))

  assert sums(whole['opt_state']) == pytest.approx(sums(state['opt_state']), rel=1e-5)
  assert requested[-1] == ['opt_state', 'params', 'step']


def test_ctrl_c_in_save_lands_after_it_and_unfinished_writes_are_removed(tmp_path):
  state, _ = _state()
  root = tmp_path / 'ckpt'
  ckpt = checkpointing.Checkpoints(str(root), keep=None, save_every=1)
  # Ctrl-C arriving inside save: the write is started and recorded, then KeyboardInterrupt.
  real_save, seen = ckpt._mgr.save, []

  def save_hit_by_ctrl_c(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)  # runs Python's handler only after the block
    seen.append('still saving')
    return real_save(*args, **kwargs)

  ckpt._mgr.save = save_hit_by_ctrl_c
  # Python's own handler, as in a command started from a terminal (xdist's workers ignore SIGINT).
  outside = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with pytest.raises(KeyboardInterrupt):
      ckpt.save(1, state, data_state={'batches_consumed': 1})
  finally:
    signal.signal(signal.SIGINT, outside)
  assert seen == ['still saving']
  ckpt._mgr.save = real_save
  ckpt.wait()
  assert ckpt.all_steps() == [1]
  # What a process killed mid-write leaves; a new run removes it and keeps complete steps.
  (root / '2.orbax-checkpoint-tmp' / 'state').mkdir(parents=True)
  (root / '2.orbax-checkpoint-tmp' / 'state' / 'part').write_bytes(b'x')
  assert ckpt.discard_unfinished_writes() == ['2.orbax-checkpoint-tmp']
  assert sorted(p.name for p in root.iterdir()) == ['1']
  assert ckpt.discard_unfinished_writes() == []
  ckpt.close()


def test_restore_into_target_shardings(tmp_path):
  state, _ = _state(seed=1)
  ckpt = checkpointing.Checkpoints(str(tmp_path), async_save=False)
  ckpt.save(3, state, force=True)
  mesh = partitioning.make_mesh(1)
  rep = partitioning.replicated(mesh)
  target = jax.tree_util.tree_map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), state
  )
  restored, data, _ = ckpt.restore(target)
  assert data == {}
  _assert_trees_equal(restored, state)
  assert all(x.sharding == rep for x in jax.tree_util.tree_leaves(restored))


def test_errors_name_the_directory(tmp_path):
  state, _ = _state()
  ckpt = checkpointing.Checkpoints(str(tmp_path / 'empty'))
  with pytest.raises(FileNotFoundError, match='empty'):
    ckpt.restore(state)
  ckpt.save(1, state, force=True)
  with pytest.raises(FileNotFoundError, match='step 5'):
    ckpt.restore(state, step=5)
  with pytest.raises(ValueError):
    ckpt.restore({'params': state['params']}, step=1)
  with pytest.raises(ValueError, match='save_every'):
    checkpointing.Checkpoints(str(tmp_path / 'x'), save_every=0)


def _truncate_largest_file(step_dir):
  files = [p for p in (step_dir / 'state').rglob('*') if p.is_file()]
  biggest = max(files, key=lambda p: p.stat().st_size)
  biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])


def test_damaged_newest_falls_back_or_stops_naming_it(tmp_path, capsys):
  state, _ = _state()
  root = tmp_path / 'ckpt'
  ckpt = checkpointing.Checkpoints(str(root), keep=None, async_save=False)
  for step in (2, 4):
    ckpt.save(step, {**state, 'step': jnp.array(step, jnp.int32)}, force=True)
  _truncate_largest_file(root / '4')
  restored, _, _, step = ckpt.restore_newest_readable(state)
  assert step == 2 and int(restored['step']) == 2
  _assert_trees_equal(restored['params'], state['params'])
  err = capsys.readouterr().err
  # One line naming the checkpoint and TensorStore's root cause, not orbax's wrapper and its spec.
  assert f'{root}/4: checkpoint unreadable (' in err and 'TensorStore details' not in err, err
  assert len(err.strip().splitlines()) == 1, err
  assert ckpt.all_steps() == [2] and (root / 'unreadable-4').is_dir()
  # Nothing readable left: a clear error naming the checkpoints, no restart at step 0.
  _truncate_largest_file(root / '2')
  with pytest.raises(checkpointing.CheckpointUnreadableError, match=f'{root}: .*step 2'):
    ckpt.restore_newest_readable(state)
  assert (root / '2').is_dir()  # kept as it was for the user to inspect


def test_abandoned_read_noise_is_dropped_and_nothing_else():
  """What orbax leaves after a failed read reaches asyncio's logger (an unretrieved gather) and
  sys.unraisablehook (closed coroutines); mlit's filters drop those from orbax's code only."""
  from mlit.checkpoints import orbax_read

  def raised_in(filename):
    namespace = {}
    exec(compile('def read():\n  raise ValueError("OUT_OF_RANGE")\n', filename, 'exec'), namespace)
    try:
      namespace['read']()
    except ValueError as e:
      return e

  def record(exc):
    return logging.LogRecord(
      'asyncio',
      logging.ERROR,
      __file__,
      1,
      '_GatheringFuture exception was never retrieved',
      None,
      (type(exc), exc, exc.__traceback__),
    )

  log_filter = orbax_read._UnretrievedReadFilter()
  assert not log_filter.filter(record(raised_in('/site-packages/orbax/checkpoint/x.py')))
  assert log_filter.filter(record(raised_in('/site-packages/mypackage/x.py')))
  # A damaged index's metadata read: asyncio's task logs TensorStore's error, no orbax frame.
  store_error = ValueError(
    'OUT_OF_RANGE: Error reading ... [tensorstore_spec=\'{"driver": "zarr"}\']'
  )
  task_record = record(store_error)
  task_record.msg = 'Task exception was never retrieved'
  assert not log_filter.filter(task_record)

  # A read future's error without the spec, raised in asyncio's frame (fresh clone of e9c0b2d).
  def in_asyncio(message):
    namespace = {}
    source = f'def read():\n  raise ValueError({message!r})\n'
    exec(compile(source, '/usr/lib/python3.11/asyncio/tasks.py', 'exec'), namespace)
    try:
      namespace['read']()
    except ValueError as e:
      task = record(e)
      task.msg = 'Task exception was never retrieved'
      return task

  assert not log_filter.filter(in_asyncio('OUT_OF_RANGE: Error reading "x/0.0" in OCDBT database'))
  assert log_filter.filter(in_asyncio('something else went wrong'))
