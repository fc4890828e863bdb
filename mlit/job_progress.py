"""How far a long job is: done of total, rate and ETA, as one line for its log.

Work an earlier run finished (a resumed job's shards) is `skip`ped: it counts as done but not in the
rate, so the ETA after a resume is the remaining work at this run's own speed. The rate leaves out
the first piece of work once there is a second (it carries the compilation and warm-up: the first of
`mlit eval`'s 643 on the demo took 9 s, the others 0.03 s at the median).
"""

import time
from typing import Callable, Optional


def format_eta(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}:{m:02d}:{s:02d}' if h else f'{m}:{s:02d}'


class Progress:
  """`total` units of work (`unit`: 'texts', 'shards', ...)."""

  def __init__(self, total: int, unit: str, clock: Callable[[], float] = time.monotonic):
    self.total, self.unit, self._clock = total, unit, clock
    self._start = clock()
    self._first = None  # (time, units) at the end of this run's first piece of work
    self.skipped = 0  # done by an earlier run
    self.advanced = 0  # done by this one

  @property
  def done(self) -> int:
    return self.skipped + self.advanced

  def skip(self, n: int = 1) -> None:
    self.skipped += n

  def advance(self, n: int = 1) -> None:
    self.advanced += n
    if self._first is None:
      self._first = (self._clock(), self.advanced)

  def rate(self) -> float:
    """Units per second in this run, after its first piece of work when there are more."""
    start, before = self._start, 0
    if self._first is not None and self.advanced > self._first[1]:
      start, before = self._first
    return (self.advanced - before) / max(self._clock() - start, 1e-9)

  def line(self, rate_text: Optional[str] = None) -> str:
    """E.g. '3,000 of 6,243 texts, 74.7 texts/s, ETA 0:43'; `rate_text` replaces the units' rate
    (a job counted in shards may rather show its images/s)."""
    parts = [
      f'{self.done:,} of {self.total:,} {self.unit}',
      rate_text or f'{self.rate():.1f} {self.unit}/s',
    ]
    eta = self.eta()
    if eta is not None:
      parts.append(f'ETA {eta}')
    return ', '.join(parts)

  def eta(self) -> Optional[str]:
    """The remaining work at this run's rate, e.g. '1:02:03'; None before this run did any."""
    rate = self.rate()
    if rate <= 0:
      return None
    return format_eta((self.total - self.done) / rate)
