"""Reading an orbax checkpoint: a failure is one line, and leaves nothing to print later.

TensorStore's error names the array, the file and the byte range; orbax wraps it in one that
ends with the whole TensorStore spec, and the reads it abandons print their own tracebacks
when they are collected. `checked` turns a failed read into the caller's one-line error.
"""

import gc
import logging
import os
import re
import sys
from typing import Any, Callable


def root_cause_line(error: BaseException) -> str:
  """The root cause's first line: orbax wraps TensorStore's error (which names the array, the
  file and the byte range) in one that ends with the whole TensorStore spec."""
  while error.__cause__ is not None:
    error = error.__cause__
  text = str(error).strip().split(' See full TensorStore details:')[0]
  return (text.splitlines() or [type(error).__name__])[0][:300]


def _is_abandoned_read_noise(unraisable) -> bool:
  """What orbax and TensorStore leave behind after one array of a checkpoint failed to read:
  the other reads' coroutines turn the GeneratorExit that closes them into a new exception, and
  reads still in flight call back into the closed event loop. Python prints each as
  'Exception ignored in ...' with a screenful of TensorStore spec, at a random later moment."""
  exc = unraisable.exc_value
  code = getattr(unraisable.object, 'cr_code', None)
  if isinstance(getattr(exc, '__cause__', None), GeneratorExit) and code is not None:
    return 'orbax' in code.co_filename
  return isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed'


class _AbandonedReadFilter:
  """sys.unraisablehook, installed by the first checked read: drops that noise (logged at debug
  level), passes everything else on."""

  def __init__(self, previous):
    self.previous = previous

  def __call__(self, unraisable):
    if _is_abandoned_read_noise(unraisable):
      logging.getLogger(__name__).debug(
        'after a failed checkpoint read: %s', root_cause_line(unraisable.exc_value)
      )
      return
    self.previous(unraisable)


_TENSORSTORE_STATUS = re.compile(
  r'(OUT_OF_RANGE|DATA_LOSS|NOT_FOUND|INVALID_ARGUMENT|FAILED_PRECONDITION|UNKNOWN|INTERNAL|'
  r'CANCELLED|ABORTED|UNAVAILABLE|PERMISSION_DENIED|RESOURCE_EXHAUSTED|DEADLINE_EXCEEDED): '
)


def _raised_in_orbax(exc) -> bool:
  """Raised in orbax's code, or a TensorStore read error (its message ends with the store's
  spec) that an orbax task awaited: the metadata read's tasks end in asyncio's own frames."""
  if 'tensorstore_spec=' in str(exc):
    return True
  tb = getattr(exc, '__traceback__', None)
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  if tb is None:
    return False
  filename = tb.tb_frame.f_code.co_filename.replace(os.sep, '/')
  # A TensorStore read future awaited by one of orbax's gathers: the error (a status code, the
  # array and the byte range, sometimes without the spec) is raised in asyncio's own frame.
  if filename.endswith('asyncio/tasks.py') and _TENSORSTORE_STATUS.match(str(exc)):
    return True
  return 'orbax' in filename


class _UnretrievedReadFilter(logging.Filter):
  """The same noise through asyncio's logger: the gather of the abandoned reads, collected with
  its exception unretrieved, logs '_GatheringFuture exception was never retrieved' and the
  whole traceback at ERROR level."""

  def filter(self, record):
    exc = record.exc_info[1] if record.exc_info else None
    return not ('exception was never retrieved' in str(record.msg) and _raised_in_orbax(exc))


def _quiet_abandoned_reads() -> None:
  if not isinstance(sys.unraisablehook, _AbandonedReadFilter):
    sys.unraisablehook = _AbandonedReadFilter(sys.unraisablehook)
    logging.getLogger('asyncio').addFilter(_UnretrievedReadFilter())


def checked(read: Callable[[], Any], what: str, error: type, hint: str = '') -> Any:
  """read(), or `error` (a UserError type) naming `what` and the root cause in one line; the
  root cause's line is also the error's `cause` attribute.

  The orbax error is dropped (not chained) and garbage collected before raising: its traceback
  keeps the abandoned reads alive, and they would print their tracebacks wherever they die."""
  _quiet_abandoned_reads()  # before the read: some of the noise comes while it fails
  try:
    return read()
  except Exception as e:  # orbax and TensorStore raise many types (bare Exception too)
    cause = root_cause_line(e)
  gc.collect()
  failure = error(f'{what}: checkpoint unreadable ({cause}){hint}')
  failure.cause = cause
  raise failure
