"""Median timings after warm-up, and pairwise interleaved comparisons.

Machines shared with other work are noisy: every figure is the median of
several timed repeats after warm-up calls, and two implementations compared
with each other are timed alternately (A, B, A, B, ...) in one process, so a
load spike hits both sides of a pair rather than one of them.
"""

import os
import statistics
import time
from typing import Callable, Sequence


def load() -> list[float]:
  """1, 5 and 15 minute load averages (machine load during the run)."""
  return [round(x, 2) for x in os.getloadavg()]


def seconds(fn: Callable[[], None], *, warmup: int, repeats: int) -> dict:
  """Median wall seconds of fn() (which must block until done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return summary(times)


def paired_seconds(fns: Sequence[Callable[[], None]], *, warmup: int, repeats: int) -> list[dict]:
  """Times several fns alternately; one summary per fn."""
  for _ in range(warmup):
    for fn in fns:
      fn()
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, ts in zip(fns, times):
      t0 = time.perf_counter()
      fn()
      ts.append(time.perf_counter() - t0)
  return [summary(ts) for ts in times]


def summary(times: Sequence[float]) -> dict:
  return {
    'median_s': statistics.median(times),
    'min_s': min(times),
    'max_s': max(times),
    'repeats': len(times),
  }
