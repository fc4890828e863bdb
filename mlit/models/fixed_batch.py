"""A jitted function applied in fixed-size batches, sharded over this process's local devices.

One batch shape means one compilation: a short last batch is padded with zeros and its padding
rows dropped from the result. The mesh covers the local devices only, so processes of a multi-host
job run independently on their own shards (a process with fewer shards never stalls a collective).
"""

from typing import Callable

import jax
import numpy as np

from mlit.training import partitioning


class FixedBatchApply:
  """fn(params, x[batch, ...]) -> y[batch, ...] on batches of exactly `batch_size` rows."""

  def __init__(self, fn: Callable, params, batch_size: int):
    devices = jax.local_devices()
    self.mesh = partitioning.make_mesh(devices=devices)
    # Round up so the batch splits evenly over the devices.
    self.batch_size = -(-batch_size // len(devices)) * len(devices)
    self.params = jax.device_put(params, partitioning.replicated(self.mesh))
    self._fn = jax.jit(fn)

  def __call__(self, x: np.ndarray) -> np.ndarray:
    n = len(x)
    if n > self.batch_size:
      raise ValueError(f'{n} rows > batch size {self.batch_size}')
    if n < self.batch_size:
      x = np.concatenate([x, np.zeros((self.batch_size - n, *x.shape[1:]), x.dtype)])
    x = jax.device_put(x, partitioning.batch_sharding(self.mesh, x.ndim))
    return np.asarray(self._fn(self.params, x))[:n]
