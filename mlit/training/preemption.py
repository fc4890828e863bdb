"""Stopping at a preemption notice (SIGTERM) with a checkpoint of the step reached.

Cloud schedulers send SIGTERM some seconds before they reclaim a machine (a spot/preemptible VM,
a TPU pod slice, a Kubernetes pod). The trainer then saves the step it has reached and exits, so
the same command loses no step on resume. Every process must save the same step: with several
processes JAX's preemption service (started by jax.distributed.initialize, as T5X and Orbax use
it) agrees on the step; one process only needs its own SIGTERM handler.
"""

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

import jax
from jax.experimental import multihost_utils

# Exit status after a preemption stop: 128 + SIGTERM, what the signal would have given.
PREEMPTED = 143


class TrainingPreempted(Exception):
  """SIGTERM during training: the step reached is saved; the message names it."""


def _jax_preemption_service() -> bool:
  from jax._src import distributed  # pylint: disable=g-import-not-at-top

  return getattr(distributed.global_state, 'preemption_sync_manager', None) is not None


@contextlib.contextmanager
def notice() -> Iterator[Callable[[int], bool]]:
  """Yields `reached(step)`, called once per finished step on every process: True at the step
  all processes save and stop at after a SIGTERM reached any of them."""
  if jax.process_count() > 1:
    if _jax_preemption_service():
      # Every process must call it at every step; it returns True on all at the same step.
      yield multihost_utils.reached_preemption_sync_point
    else:  # a process stopping alone would hang the others: SIGTERM keeps its default
      yield lambda step: False
    return
  if threading.current_thread() is not threading.main_thread():
    yield lambda step: False  # signal handlers belong to the main thread
    return
  received = []
  previous = signal.signal(signal.SIGTERM, lambda *_: received.append(True))
  try:
    yield lambda step: bool(received)
  finally:
    signal.signal(signal.SIGTERM, previous)
