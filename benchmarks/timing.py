"""Timings after warm-up, interleaved comparisons, and the machine's load.

Machines shared with other work are noisy. Two implementations compared with
each other are timed alternately (A, B, A, B, ...) in one process after
warm-up calls of both, so drift and background load hit both sides; each side
reports its median and spread, and the comparison reports the range of the
per-pair ratios (one ratio per adjacent A, B pair), not just the ratio of
medians. A figure taken while OTHER processes used more than half the cores
(machine CPU time from /proc/stat minus this process tree's own, over the
measurement) is marked unreliable; the load average, which counts the
benchmark's own threads too, is recorded beside it.
"""

import os
import statistics
import time
from typing import Callable, Sequence


def load() -> list[float]:
  """1, 5 and 15 minute load averages (machine load during the run)."""
  return [round(x, 2) for x in os.getloadavg()]


def busy_limit() -> float:
  """Cores of other work above which figures are unreliable: half the cores."""
  return (os.cpu_count() or 1) / 2


def is_busy(loads: Sequence[float]) -> bool:
  """Before a run starts (nothing of ours running yet): the 1-minute load is above the limit."""
  return loads[0] > busy_limit()


def _machine_busy_seconds() -> float | None:
  try:
    with open('/proc/stat', encoding='ascii') as f:
      ticks = [int(v) for v in f.readline().split()[1:9]]
  except (OSError, ValueError):
    return None
  busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
  return busy / os.sysconf('SC_CLK_TCK')


def snapshot() -> dict:
  """Load averages, and the CPU seconds of the machine and of this process tree, now."""
  t = os.times()
  return {
    'load': load(),
    'wall': time.monotonic(),
    'machine_cpu_s': _machine_busy_seconds(),
    'own_cpu_s': t.user + t.system + t.children_user + t.children_system,
  }


def load_record(before: dict, after: dict) -> dict:
  """Load around a measurement and whether it can be trusted: other processes' CPU use, in
  cores, over it (the machine's busy CPU minus this process tree's own)."""
  wall = max(after['wall'] - before['wall'], 1e-9)
  if before['machine_cpu_s'] is None or after['machine_cpu_s'] is None:
    others = None  # no /proc/stat: fall back to the load average
    unreliable = is_busy(before['load']) or is_busy(after['load'])
  else:
    machine = after['machine_cpu_s'] - before['machine_cpu_s']
    own = after['own_cpu_s'] - before['own_cpu_s']
    others = round(max(machine - own, 0.0) / wall, 2)
    unreliable = others > busy_limit()
  return {
    'load_before': before['load'],
    'load_after': after['load'],
    'other_cpu_cores': others,
    'busy_limit': busy_limit(),
    'unreliable': unreliable,
  }


def seconds(fn: Callable[[], None], *, warmup: int, repeats: int, warmup_s: float = 0.0) -> dict:
  """Median and spread of the wall seconds of fn() (which must block until done).

  warmup_s: keep warming up until that many seconds have passed (at least `warmup`
  calls): right after other heavy work, the first calls of a short kernel run slow.
  """
  start = time.perf_counter()
  calls = 0
  while calls < warmup or time.perf_counter() - start < warmup_s:
    fn()
    calls += 1
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
  before = snapshot()
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
    **load_record(before, snapshot()),
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
