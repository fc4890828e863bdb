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
    raise ValueError(f'num_partitions={num_partitions} must divide the number of devices ({n})')
  shape = (n // num_partitions, num_partitions)
  try:
    # Topology-aware placement on TPU/GPU slices.
    grid = mesh_utils.create_device_mesh(shape, devices=devices)
  except (ValueError, NotImplementedError, AssertionError):
    grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, ('data', 'model'))


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


def check_divisible(params: Any, shardings: Any) -> None:
  """Raises naming the parameter when a sharded dim does not divide evenly."""
  from mlit.training import param_rules  # pylint: disable=g-import-not-at-top

  flat_p = jax.tree_util.tree_flatten_with_path(nn.unbox(params))[0]
  flat_s = jax.tree_util.tree_leaves(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
  for (path, x), s in zip(flat_p, flat_s):
    for dim, axes in zip(x.shape, s.spec):
      if axes is None:
        continue
      axes = axes if isinstance(axes, tuple) else (axes,)
      size = int(np.prod([s.mesh.shape[a] for a in axes]))
      if dim % size:
        raise ValueError(
          f'parameter {param_rules.path_name(path)} shape '
          f'{x.shape}: dim {dim} is not divisible by mesh axes '
          f'{axes} of size {size}'
        )


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
  """Leading (batch) dimension over 'data', the rest replicated."""
  return NamedSharding(mesh, P('data', *([None] * (ndim - 1))))


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
      raise ValueError(
        f'batch feature {key!r} with local shape {x.shape} '
        f'cannot be split over the data axis '
        f'({mesh.shape["data"]} shards): {e}'
      ) from e
  return out


def sharded_init(init_fn, mesh: Mesh, *args, rules: Rules = LOGICAL_AXIS_RULES):
  """Runs a flax init function directly into sharded (unboxed) parameters.

  Args:
    init_fn: e.g. `functools.partial(model.init, text=..., image=...)`,
      called as init_fn(*args); returns a variables dict with boxed params.
    mesh: device mesh.
    *args: init_fn's positional args (rng).
    rules: logical axis rules.

  Returns:
    (variables, shardings): unboxed variables placed on the mesh and the
    matching NamedSharding tree; nothing is materialised unsharded.
  """
  abstract = jax.eval_shape(init_fn, *args)
  shardings = param_shardings(abstract, mesh, rules)
  init = jax.jit(lambda *a: nn.unbox(init_fn(*a)), out_shardings=shardings)
  return init(*args), shardings
