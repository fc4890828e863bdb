"""Peak: GFLOP/s of a jitted matmul on this machine (the MFU base), float32 or bfloat16.

Measured on a 2-core VM right after a LiT step, the first one to three 2048^2
products ran at 100-290 GFLOP/s, the following ones at 380-415: a peak timed
over two warm-up calls read low, and the MFU computed against it high. So the
warm-up lasts warmup_s seconds (run.py: 1.5 s full, 0.2 s quick) and the median is over at least MIN_REPEATS calls.
"""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing

WARMUP_S = 1.5
MIN_REPEATS = 10


def _result(n: int, t: dict, **extra) -> dict:
  flops = 2.0 * n**3
  return {
    'n': n,
    **extra,
    'gflops': flops / t['median_s'] / 1e9,
    'gflops_best': flops / t['min_s'] / 1e9,
    'time': t,
  }


def matmul(n: int = 2048, dtype: str = 'float32'):
  """The peak's product: a blocking callable of a jitted [n, n] @ [n, n], and n."""
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
  b = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
  f = jax.jit(jnp.dot)
  fn = lambda: f(a, b).block_until_ready()
  fn.n, fn.dtype = n, dtype
  return fn


def timed(fn, *, warmup: int = 2, repeats: int = 5, warmup_s: float = WARMUP_S) -> dict:
  """GFLOP/s of a `matmul` callable: warm-up for warmup_s, median of >= MIN_REPEATS products."""
  t = timing.seconds(fn, warmup=warmup, repeats=max(repeats, MIN_REPEATS), warmup_s=warmup_s)
  return _result(fn.n, t, dtype=fn.dtype)


def matmul_peak(
  n: int = 2048,
  *,
  warmup: int = 2,
  repeats: int = 5,
  dtype: str = 'float32',
  warmup_s: float = WARMUP_S,
) -> dict:
  """Best-case dense [n, n] @ [n, n] throughput under jax.jit (bfloat16: the accelerators' MFU base)."""
  return timed(matmul(n, dtype), warmup=warmup, repeats=repeats, warmup_s=warmup_s)


def torch_matmul_peak(
  n: int = 2048, *, warmup: int = 2, repeats: int = 5, warmup_s: float = WARMUP_S
) -> dict:
  """The same product in PyTorch (for reference, not the MFU base)."""
  import torch  # pylint: disable=g-import-not-at-top

  a = torch.randn(n, n)
  b = torch.randn(n, n)
  t = timing.seconds(
    lambda: torch.mm(a, b), warmup=warmup, repeats=max(repeats, MIN_REPEATS), warmup_s=warmup_s
  )
  return _result(n, t)
