"""mlit.training.input_pipeline.close_input: the end of a run says why it waits on TensorFlow.

Deleting a tf.data iterator can wait up to a minute for TF's autotuning thread (measured at the
end of two-process YFCC runs; not reproducible on demand), so these tests use generators whose
close takes a known time.
"""

import threading
import time

import pytest

from mlit.training import input_pipeline


def _batches(close_s, fail=False):
  closed = threading.Event()

  def gen():
    try:
      while True:
        yield {'text': [1, 2]}
    finally:
      time.sleep(close_s)
      closed.set()
      if fail:
        raise OSError('reader failed while closing')

  batches = gen()
  next(batches)  # started, as the trainer's input is
  return batches, closed


def test_a_slow_close_is_said_once_and_awaited():
  batches, closed = _batches(close_s=0.6)
  said = []
  input_pipeline.close_input(batches, said.append, patience_s=0.1)
  assert closed.is_set()  # returns only once the input is closed
  assert said == [input_pipeline.AUTOTUNE_STOP_NOTE]
  assert 'up to a minute' in said[0] and 'Ctrl-C here loses nothing' in said[0]


def test_a_quick_close_says_nothing():
  batches, closed = _batches(close_s=0)
  said = []
  input_pipeline.close_input(batches, said.append, patience_s=5)
  assert closed.is_set() and said == []


def test_an_error_while_closing_reaches_the_caller():
  batches, closed = _batches(close_s=0, fail=True)
  with pytest.raises(OSError, match='reader failed while closing'):
    input_pipeline.close_input(batches, print, patience_s=5)
  assert closed.is_set()
