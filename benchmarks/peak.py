"""Peak: GFLOP/s of a jitted matmul on this machine (the MFU base), float32 or bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing


def matmul_peak(
  n: int = 2048, *, warmup: int = 2, repeats: int = 5, dtype: str = 'float32'
) -> dict:
  """Best-case dense [n, n] @ [n, n] throughput under jax.jit (bfloat16: the accelerators' MFU base)."""
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
  b = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
  f = jax.jit(jnp.dot)
  t = timing.seconds(lambda: f(a, b).block_until_ready(), warmup=warmup, repeats=repeats)
  flops = 2.0 * n**3
  return {
    'n': n,
    'dtype': dtype,
    'gflops': flops / t['median_s'] / 1e9,
    'gflops_best': flops / t['min_s'] / 1e9,
    'time': t,
  }


def torch_matmul_peak(n: int = 2048, *, warmup: int = 2, repeats: int = 5) -> dict:
  """The same product in PyTorch (for reference, not the MFU base)."""
  import torch  # pylint: disable=g-import-not-at-top

  a = torch.randn(n, n)
  b = torch.randn(n, n)
  t = timing.seconds(lambda: torch.mm(a, b), warmup=warmup, repeats=repeats)
  flops = 2.0 * n**3
  return {
    'n': n,
    'gflops': flops / t['median_s'] / 1e9,
    'gflops_best': flops / t['min_s'] / 1e9,
    'time': t,
  }
