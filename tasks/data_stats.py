"""Process-wide counters of data quality: skipped rows per reason, truncated texts.

Row sources run inside tf.data (Python generators) and count skipped rows here.
Truncation is marked in-graph per example ('truncated/<feature>', see
tasks.token_preprocessors) and counted by the batch consumer with `count_batch`.
The trainer writes the counters next to the run with `write_json(model_dir)`
(file `data_stats.json`).
"""

import collections
import contextlib
import json
import os
import threading

import numpy as np
import tensorflow as tf
from absl import logging

from tasks import token_preprocessors

STATS_FILENAME = 'data_stats.json'

_lock = threading.Lock()
_skipped = collections.Counter()  # reason -> rows skipped
_kept = collections.Counter()  # source name -> rows kept
_texts = collections.Counter()  # feature -> texts tokenized
_truncated = collections.Counter()  # feature -> texts longer than the length
_examples_logged = collections.Counter()  # reason -> how many were logged
_captured = threading.local()  # .counter: this thread's skips too, inside `capture()`

# Rows skipped for these reasons (the names are part of data_stats.json).
REASONS = (
  'wrong_column_count',
  'bad_percent_encoding',
  'invalid_utf8',
  'all_signals_empty',
  'unreadable_image',
  'missing_image',
  'mismatched_image',
  'bad_field',
  'not_in_subset',
  'not_a_photo',
)
_MAX_LOGGED_PER_REASON = 5


def skip(reason: str, where: str = '') -> None:
  """Counts one skipped row; logs the first few of each reason with `where`."""
  if reason not in REASONS:
    raise ValueError(f'unknown skip reason {reason!r}; known: {REASONS}')
  with _lock:
    _skipped[reason] += 1
    if getattr(_captured, 'counter', None) is not None:
      _captured.counter[reason] += 1
    log_it = _examples_logged[reason] < _MAX_LOGGED_PER_REASON
    _examples_logged[reason] += 1
  if log_it:
    logging.warning('skipping row (%s) at %s', reason, where)


@contextlib.contextmanager
def capture():
  """Yields a Counter of the rows this thread skips inside the block (per reason).

  Lets a job with many threads (Beam workers) attribute skips to the work item that made them.
  """
  previous = getattr(_captured, 'counter', None)
  _captured.counter = collections.Counter()
  try:
    yield _captured.counter
  finally:
    _captured.counter = previous


def keep(source: str) -> None:
  with _lock:
    _kept[source] += 1


def count_batch(batch) -> None:
  """Adds the 'truncated/<feature>' marks of a NumPy batch (or example) to the counters."""
  prefix = token_preprocessors.TRUNCATED_PREFIX
  counts = {
    k[len(prefix) :]: (int(np.size(v)), int(np.sum(v)))
    for k, v in batch.items()
    if k.startswith(prefix)
  }
  with _lock:
    for feature, (n, truncated) in counts.items():
      _texts[feature] += n
      _truncated[feature] += truncated


def snapshot() -> dict:
  """A JSON-ready copy of every counter."""
  with _lock:
    return {
      'skipped_rows': dict(_skipped),
      'kept_rows': dict(_kept),
      'texts': {
        f: {'n_texts': n, 'n_truncated': _truncated[f], 'truncated_share': _truncated[f] / n}
        for f, n in _texts.items()
        if n
      },
    }


def reset() -> None:
  with _lock:
    for c in (_skipped, _kept, _texts, _truncated, _examples_logged):
      c.clear()


def write_json(directory: str) -> str:
  """Logs the counters and writes them to `directory`/data_stats.json."""
  stats = snapshot()
  logging.info('data stats: %s', json.dumps(stats, sort_keys=True))
  tf.io.gfile.makedirs(directory)
  path = os.path.join(directory, STATS_FILENAME)
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(stats, f, indent=1, sort_keys=True)
  return path
