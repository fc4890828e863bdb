"""Timings after warm-up, interleaved comparisons, and the machine's load.

Machines shared with other work are noisy. Two implementations compared with
each other are timed alternately (A, B, A, B, ...) in one process after
warm-up calls of both, so drift and background load hit both sides; each side
reports its median and spread, and the comparison reports the range of the
per-pair ratios (one ratio per adjacent A, B pair), not just the ratio of
medians. A figure taken while the load average exceeded half the cores is
marked unreliable.
"""

import os
import statistics
import time
from typing import Callable, Sequence


def load() -> list[float]:
  """1, 5 and 15 minute load averages (machine load during the run)."""
  return [round(x, 2) for x in os.getloadavg()]


def busy_limit() -> float:
  """The 1-minute load above which figures are unreliable: half the cores."""
  return (os.cpu_count() or 1) / 2


def is_busy(loads: Sequence[float]) -> bool:
  return loads[0] > busy_limit()


def load_record(before: Sequence[float], after: Sequence[float]) -> dict:
  """Load before/after a measurement and whether it can be trusted."""
  return {
    'load_before': list(before),
    'load_after': list(after),
    'busy_limit': busy_limit(),
    'unreliable': is_busy(before) or is_busy(after),
  }


def seconds(fn: Callable[[], None], *, warmup: int, repeats: int) -> dict:
  """Median and spread of the wall seconds of fn() (which must block until done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return summary(times)


def interleaved_times(
  fns: Sequence[Callable[[], None]], *, warmup: int, repeats: int
) -> list[list[float]]:
  """Each fn timed `repeats` times, alternately, after `warmup` rounds of all."""
  for _ in range(warmup):
    for fn in fns:
      fn()
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, ts in zip(fns, times):
      t0 = time.perf_counter()
      fn()
      ts.append(time.perf_counter() - t0)
  return times


def paired_seconds(fns: Sequence[Callable[[], None]], *, warmup: int, repeats: int) -> list[dict]:
  """Times several fns alternately; one summary per fn."""
  return [summary(ts) for ts in interleaved_times(fns, warmup=warmup, repeats=repeats)]


def compare(a: Callable[[], None], b: Callable[[], None], *, warmup: int, repeats: int) -> dict:
  """A against B, interleaved: each side's summary, the speed ratio's range, the load.

  speed ratio = B's seconds / A's seconds of one adjacent pair (> 1: A is faster).
  """
  before = load()
  ta, tb = interleaved_times([a, b], warmup=warmup, repeats=repeats)
  ratios = [y / x for x, y in zip(ta, tb)]
  return {
    'a': summary(ta),
    'b': summary(tb),
    'speed_ratio': {
      'of_medians': statistics.median(tb) / statistics.median(ta),
      'median': statistics.median(ratios),
      'min': min(ratios),
      'max': max(ratios),
      'pairs': ratios,
    },
    **load_record(before, load()),
  }


def _quartiles(times: Sequence[float]) -> tuple[float, float]:
  if len(times) < 2:
    return times[0], times[0]
  q = statistics.quantiles(times, n=4, method='inclusive')
  return q[0], q[2]


def summary(times: Sequence[float]) -> dict:
  q1, q3 = _quartiles(times)
  return {
    'median_s': statistics.median(times),
    'min_s': min(times),
    'max_s': max(times),
    'q1_s': q1,
    'q3_s': q3,
    'repeats': len(times),
    'times_s': list(times),
  }
