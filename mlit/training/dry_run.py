"""`mlit train --dry_run`: a run set up and its step compiled; nothing trained, nothing written.

For the minutes before a pod run: the gin config resolves, the task's first batch is read (files,
columns, shapes), pre-trained weights load into the model as training loads them (T5X and
EfficientNet strictly, a ViT .npz naming what stays at init; or the run's newest checkpoint
restores), the batch fits the mesh, and the train step compiles for the run's devices. XLA's
buffer plan of the compiled step (memory_analysis, per device) says what one device holds at
most: the train state and batch it is given, the activations and temporaries, and the outputs
that do not reuse the donated state. A device that reports its memory (GPU, TPU) is checked
against it; a plan that does not fit stops with one line.
"""

import math
import os
import time
from typing import Any, Iterator, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np

from mlit.training import param_rules
from mlit.training import progress_log as train_log
from tasks.user_error import UserError

_GROUPS = {'txt': 'text tower', 'img': 'image tower'}  # the rest: heads and temperature
_OTHER = 'heads and temperature'


def size_text(n_bytes: float) -> str:
  """Bytes in KiB, MiB, GiB or TiB, three significant digits."""
  for unit, scale in (('TiB', 1 << 40), ('GiB', 1 << 30), ('MiB', 1 << 20), ('KiB', 1 << 10)):
    if n_bytes >= scale:
      return f'{n_bytes / scale:.3g} {unit}'
  return f'{int(n_bytes)} B'


def _count_text(n: int) -> str:
  return f'{n / 1e6:.1f}M' if n >= 1e6 else f'{n:,}'


def step_memory(compiled) -> dict[str, int]:
  """One device's buffer plan of a compiled step (bytes): arguments + outputs - outputs written
  into donated arguments + temporaries."""
  m = compiled.memory_analysis()
  plan = {
    'arguments': m.argument_size_in_bytes,
    'outputs': m.output_size_in_bytes,
    'aliased': m.alias_size_in_bytes,
    'temporaries': m.temp_size_in_bytes,
  }
  plan['total'] = plan['arguments'] + plan['outputs'] - plan['aliased'] + plan['temporaries']
  return plan


def device_memory_limit() -> Optional[int]:
  """Bytes one local device may allocate, as it reports them (None: a CPU reports nothing)."""
  stats = jax.local_devices()[0].memory_stats()
  return int(stats['bytes_limit']) if stats and stats.get('bytes_limit') else None


def host_memory() -> Optional[int]:
  """Bytes of physical memory of this host (None where the OS does not say)."""
  try:
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  except (ValueError, OSError, AttributeError):
    return None


def check_fits(
  plan_bytes: int,
  limit: Optional[int],
  device_name: str,
  local_devices: int = 1,
  host_bytes: Optional[int] = None,
) -> str:
  """The memory line; UserError when the plan exceeds the device's memory. Host CPU devices
  report no limit and share the host's memory (host_bytes): a plan larger than it is said, not
  refused, since CPU devices may stand in for a pod's to check the set-up."""
  if limit is None:
    line = f'{device_name} reports no memory limit: the plan is {size_text(plan_bytes)} per device'
    if not host_bytes:
      return line
    total = plan_bytes * local_devices
    if local_devices > 1:
      line += f', {size_text(total)} for the {local_devices} devices of this host'
    if total > host_bytes:
      return (
        f'{line}, more than its {size_text(host_bytes)} of memory: the run would run out of '
        'memory here (as a stand-in for other devices, compare the per-device plan with theirs)'
      )
    return f'{line}, {total / host_bytes:.0%} of its {size_text(host_bytes)} of memory'
  if plan_bytes > limit:
    raise UserError(
      f'the train step needs {size_text(plan_bytes)} per device, {device_name} has {size_text(limit)}: '
      'lower BATCH_SIZE, raise train.train.num_partitions, or use more devices'
    )
  return (
    f'{device_name} has {size_text(limit)} per device; the plan uses {plan_bytes / limit:.0%} of it'
  )


def parameter_line(params: Any, locked_rules: Sequence[str]) -> str:
  """Parameters per tower, trained or locked by the run's setup and freeze rules."""
  params = nn.unbox(params)
  locked = param_rules.frozen_mask(params, locked_rules, check=False)
  groups: dict[str, list[int]] = {}  # name -> [trained, locked]
  for (path, leaf), is_locked in zip(
    jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_leaves(locked)
  ):
    name = _GROUPS.get(param_rules.path_name(path[:1]), _OTHER)
    groups.setdefault(name, [0, 0])[bool(is_locked)] += math.prod(leaf.shape)
  parts = []
  for name in [*_GROUPS.values(), _OTHER]:
    if name in groups:
      trained, frozen = groups[name]
      what = 'locked' if not trained else ('trained' if not frozen else 'partly locked')
      parts.append(f'{name} {_count_text(trained + frozen)} {what}')
    elif name == 'image tower':
      parts.append('no image tower (pre-computed embeddings)')
  total = sum(sum(v) for v in groups.values())
  return f'parameters {_count_text(total)}: ' + ', '.join(parts)


def _tree_bytes(tree: Any) -> int:
  return sum(
    math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree)
  )


def _dims(shape) -> str:
  return '[' + ', '.join(str(d) for d in shape) + ']'


def batch_line(
  task: str, first: Mapping[str, np.ndarray], shapes: Mapping[str, Sequence[int]], batch_size: int
) -> str:
  """The first batch's features; where length buckets made it shorter, the length planned for."""
  line = f'first batch of {task} on process {jax.process_index()}: ' + ', '.join(
    f'{k} {_dims(v.shape)} {v.dtype}' for k, v in sorted(first.items())
  )
  shorter = [k for k, v in sorted(first.items()) if tuple(v.shape[1:]) != tuple(shapes[k])]
  if shorter:  # the step is compiled for the longest batch
    line += '; the step is planned for the global batch at the full length: ' + ', '.join(
      f'{k} {_dims((batch_size, *shapes[k]))}' for k in shorter
    )
  return line


def _compile_step(jit_step, state, batch_shardings, batch_size: int, info) -> tuple[Any, float]:
  """The step compiled for the full-length global batch (the largest of any length buckets)."""
  batch = {
    k: jax.ShapeDtypeStruct(
      (batch_size,) + tuple(shape), info.dtypes[k], sharding=batch_shardings[k]
    )
    for k, shape in info.shapes.items()
  }
  t0 = time.time()
  compiled = jit_step.lower(state, batch).compile()
  return compiled, time.time() - t0


def device_name(device) -> str:
  name = device.device_kind
  return name if device.platform in name.lower() else f'{name} ({device.platform})'


def run(
  jit_step,
  state: Mapping[str, Any],
  batches: Iterator[Mapping[str, np.ndarray]],
  *,
  mesh,
  rules,
  batch_shardings,
  info,
  batch_size: int,
  task: str,
  locked_rules: Sequence[str],
  start_step: int,
  train_steps: int,
  checkpoint_dir: str,
) -> None:
  """Reads the first batch, compiles the step and logs what one device holds; no step runs."""
  try:
    first = next(batches)
  except StopIteration as e:
    from tasks import data_stats  # pylint: disable=g-import-not-at-top  (TensorFlow: not at import)

    raise UserError(
      f'task {task!r} gave no batch of {batch_size}: {data_stats.rows_read_line()}'
    ) from e
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    compiled, seconds = _compile_step(jit_step, state, batch_shardings, batch_size, info)
  plan = step_memory(compiled)
  devices = mesh.devices.flatten()
  n, procs = len(devices), jax.process_count()
  data, model = mesh.shape['data'], mesh.shape['model']
  if start_step >= train_steps:
    where = f'the run has finished: step {start_step} of {train_steps} in {checkpoint_dir}'
  elif start_step:
    where = f'the run would resume from step {start_step} of {train_steps} ({checkpoint_dir})'
  else:
    where = f'the run would start at step 0 of {train_steps} (no checkpoint in {checkpoint_dir})'
  lines = [
    f'mesh: {n} {devices[0].device_kind} device{"s" * (n > 1)} in {procs} '
    f'process{"es" * (procs > 1)}, data {data} x model {model}; global batch {batch_size:,}, '
    f'{batch_size // data:,} per data shard',
    batch_line(task, first, info.shapes, batch_size),
    parameter_line(state['params'], locked_rules)
    + f'; optimizer state {size_text(_tree_bytes(state["opt_state"]))} in all',
    f'train step compiled in {seconds:.1f} s; per device: arguments {size_text(plan["arguments"])}'
    f' (train state and batch), temporaries {size_text(plan["temporaries"])}, outputs '
    f'{size_text(plan["outputs"])} ({size_text(plan["aliased"])} of them into the donated state): '
    f'{size_text(plan["total"])} at most',
    check_fits(
      plan['total'],
      device_memory_limit(),
      device_name(devices[0]),
      local_devices=len(jax.local_devices()),
      host_bytes=host_memory() if devices[0].platform == 'cpu' else None,
    ),
    f'{where}; nothing was trained or written',
  ]
  for line in lines:
    train_log.log(f'dry run: {line}')
