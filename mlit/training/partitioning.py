"""Device mesh, T5X-style logical axis rules, parameter and batch shardings.

The mesh has axes ('data', 'model'): `num_partitions` devices form one model
replica (tensor parallel over 'model'), the rest replicate it over 'data'.
Parameters carry logical axis names (flax with_logical_partitioning); the
rules below map them to mesh axes, as T5X's standard rules do. The batch is
split over 'data'. Works multi-process: every process passes its own local
share of the batch and gets back a global jax.Array.
"""

from typing import Any, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import gin
from tasks.user_error import UserError

Rules = Sequence[tuple[str, Optional[str]]]

# T5X standard_logical_axis_rules (1-D model parallelism, no activation
# partitioning), plus the names mlit's towers use.
LOGICAL_AXIS_RULES: Rules = (
  ('batch', 'data'),
  ('vocab', 'model'),
  ('mlp', 'model'),
  ('heads', 'model'),
  ('kv', None),
  ('joined_kv', 'model'),
  ('embed', None),
  ('relpos_buckets', None),
  ('abspos_buckets', None),
  ('length', None),
  ('layers', None),
  ('stack', None),
  ('mlp_activations', None),
)


@gin.configurable
def make_mesh(num_partitions: int = 1, devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A ('data', 'model') mesh over all (global) devices.

  Args:
    num_partitions: devices per model replica (size of the 'model' axis).
    devices: defaults to jax.devices() (all processes).

  Returns:
    Mesh of shape [n // num_partitions, num_partitions].
  """
  devices = list(devices if devices is not None else jax.devices())
  n = len(devices)
  if num_partitions < 1 or n % num_partitions:
    raise UserError(
      f'num_partitions={num_partitions} (gin: train.train.num_partitions) must divide the '
      f'number of devices ({n})'
    )
  shape = (n // num_partitions, num_partitions)
  try:
    # Topology-aware placement on TPU/GPU slices.
    grid = mesh_utils.create_device_mesh(shape, devices=devices)
  except (ValueError, NotImplementedError, AssertionError):
    grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, ('data', 'model'))


def axis_rules(rules: Optional[Rules] = None) -> list[tuple[str, Optional[str]]]:
  """`rules` (e.g. from gin, lists or tuples), or LOGICAL_AXIS_RULES, as flax wants them."""
  return [tuple(r) for r in (rules or LOGICAL_AXIS_RULES)]


def logical_specs(boxed_params: Any) -> Any:
  """Logical PartitionSpecs of a boxed tree (P() for unboxed leaves)."""
  return nn.get_partition_spec(boxed_params)


def param_shardings(boxed_params: Any, mesh: Mesh, rules: Rules = LOGICAL_AXIS_RULES) -> Any:
  """NamedShardings for a boxed parameter tree (real or from jax.eval_shape).

  The result has the unboxed tree's structure, ready for jit's
  in/out_shardings or jax.device_put.
  """
  specs = logical_specs(boxed_params)
  return nn.logical_to_mesh_sharding(specs, mesh, list(rules))


def check_divisible(boxed_params: Any, mesh: Mesh, rules: Rules = LOGICAL_AXIS_RULES) -> None:
  """One line naming the parameters whose dimensions the mesh cannot split evenly (e.g. 6 heads
  over num_partitions 4), before anything is placed or restored: XLA's own error is a traceback."""
  mesh_axis = dict(axis_rules(rules))
  specs = jax.tree_util.tree_leaves_with_path(logical_specs(boxed_params), is_leaf=_is_spec)
  shapes = jax.tree_util.tree_leaves(nn.unbox(boxed_params))
  bad = []
  for (path, spec), leaf in zip(specs, shapes):
    for size, name in zip(np.shape(leaf), tuple(spec)):
      axis = mesh_axis.get(name) if isinstance(name, str) else None
      if axis and size % mesh.shape[axis]:
        bad.append((name, size, axis, jax.tree_util.keystr(path, simple=True, separator='/')))
  if not bad:
    return
  name, size, axis, where = bad[0]
  sizes = sorted({(n, s) for n, s, a, _ in bad if a == axis})
  dims = ', '.join(f'{n} ({s})' for n, s in sizes)
  count = f'{len(bad)} parameter dimension' + ('s' if len(bad) > 1 else '')
  raise UserError(
    f"train.train.num_partitions = {mesh.shape[axis]} does not divide the model's {dims}: "
    f"{count}, e.g. {where}'s {name} dimension of {size}; choose a num_partitions that divides "
    "them (and the devices' count), or 1"
  )


def _is_spec(x) -> bool:
  return isinstance(x, P)


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
  """Leading (batch) dimension over 'data', the rest replicated."""
  return NamedSharding(mesh, P('data', *([None] * (ndim - 1))))


def batch_shardings(mesh: Mesh, shapes: Mapping[str, Sequence[int]]) -> dict[str, NamedSharding]:
  """Shardings of a batch dict from its features' per-example shapes."""
  return {k: batch_sharding(mesh, 1 + len(shape)) for k, shape in shapes.items()}


def replicated(mesh: Mesh) -> NamedSharding:
  """Fully replicated sharding (scalars, step counters)."""
  return NamedSharding(mesh, P())


def shard_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Host-local batch dict -> global jax.Arrays sharded over 'data'.

  Each process passes its own rows (the global batch is the concatenation
  over processes in process order); the local row count must divide evenly
  over this process's 'data' shards.
  """
  out = {}
  for key, x in local_batch.items():
    x = np.asarray(x)
    if x.ndim == 0:
      raise ValueError(f'batch feature {key!r} has no batch dimension')
    sharding = batch_sharding(mesh, x.ndim)
    global_shape = (x.shape[0] * jax.process_count(),) + x.shape[1:]
    try:
      out[key] = jax.make_array_from_process_local_data(sharding, x, global_shape)
    except ValueError as e:
      raise UserError(
        f'batch feature {key!r} with local shape {x.shape} '
        f'cannot be split over the data axis '
        f'({mesh.shape["data"]} shards): {e}'
      ) from e
  return out
