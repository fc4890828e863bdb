"""Process-wide counters of data quality: skipped rows per reason, truncated texts.

Row sources run inside tf.data (Python generators) and count skipped rows here.
Truncation is marked in-graph per example ('truncated/<feature>', see
tasks.token_preprocessors) and counted by the batch consumer with `count_batch`.
The trainer writes the counters next to the run with `write_json(path)` (the path is
the run directory's data_stats.json, mlit.run_layout). Its fields:

  corpus        {source: {files_read, rows, kept, skipped: {reason: n}}}: the corpus itself,
                each file counted once, when it is first read to its end (a file the run
                never finished reading is not in it yet; files_read says how many are).
                rows = kept + every skipped row (blank lines are not rows).
  consumed      {steps, examples, batch_size}: what the training took, from step 0 (a resumed
                run counts the steps before its restart too), not what the input read ahead.
  texts         {feature: {n_texts, n_truncated, truncated_share}}: the texts of the batches
                trained on (every process's part, from step 0 across resumes), and how many
                were cut to the length.
  backtranslation  {texts, with_candidates, other_text, other_language, replaced,
                candidates_share, replaced_share}: of the texts backtranslation considered in
                those batches, how many had a kept round trip of their own text, how many had
                round trips of another text under their id (not used), how many had round trips
                of their own text but are in another language than the job's source (not used),
                and how many it replaced (absent when backtranslation is off). Counted like
                `texts`, as is `languages`.
  skipped_rows, kept_rows  every read of a row: each epoch and the input's read-ahead count
                again, so these grow past the corpus; the corpus figures are in `corpus`.
With several processes, every count is the run's: each process's added up (a file that several
of them read counts once in `corpus`).
"""

import collections
import contextlib
import json
import os
import threading
from typing import Iterator

import numpy as np
import tensorflow as tf
from absl import logging

from tasks import backtranslation, token_preprocessors

_lock = threading.Lock()
_skipped = collections.Counter()  # reason -> rows skipped
_kept = collections.Counter()  # source name -> rows kept
_texts = collections.Counter()  # feature -> texts tokenized
_truncated = collections.Counter()  # feature -> texts longer than the length
# Examples per value of the tasks' 'language' feature in the batches trained on.
_languages = collections.Counter()
LANGUAGE_KEY = 'language'
# Sums of tasks.backtranslation's per-example counts: texts, with_candidates, other_text,
# other_language, replaced.
_backtranslation = collections.Counter()
_BACKTRANSLATION_FEATURES = {
  backtranslation.TEXTS_FEATURE: 'texts',
  backtranslation.CANDIDATES_FEATURE: 'with_candidates',
  backtranslation.OTHER_TEXT_FEATURE: 'other_text',
  backtranslation.OTHER_LANGUAGE_FEATURE: 'other_language',
  backtranslation.FIRED_FEATURE: 'replaced',
}
_examples_logged = collections.Counter()  # reason -> how many were logged
_places_logged = set()  # (reason, where): a row read again (a later epoch) is not logged again
_captured = threading.local()  # .counter: this thread's skips too, inside `capture()`
_reading = threading.local()  # .tally: the _FileTally of the file this thread is reading
# (source, path) -> {'kept': n, 'skipped': {reason: n}}: each file's first complete read
_files = {}
_consumed = {}  # set by the trainer: {'steps', 'examples', 'batch_size'}

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
  'failed_language_id',  # a WIT attribution whose language check failed or was not given
  'damaged_shard',  # an image shard cut short or corrupt: once per shard, its rest unreadable
  'damaged_file',  # a compressed data file cut short or corrupt: once per file, its rest unread
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
    tally = getattr(_reading, 'tally', None)
    if tally is not None:
      tally.skipped[reason] += 1
    log_it = (
      _examples_logged[reason] < _MAX_LOGGED_PER_REASON and (reason, where) not in _places_logged
    )
    if log_it:
      _examples_logged[reason] += 1
      _places_logged.add((reason, where))
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
    tally = getattr(_reading, 'tally', None)
    if tally is not None:
      tally.kept += 1


class _FileTally:
  def __init__(self):
    self.kept = 0
    self.skipped = collections.Counter()


def first_pass(source: str, path: str, rows: Iterator) -> Iterator:
  """Yields `rows` (one file's reader) and adds the file to `corpus` once: at the end of its
  first complete read. Later epochs and abandoned partial reads leave `corpus` alone.

  The tally is this thread's only while the reader runs (between two of its rows), so
  readers of several files interleaved on one thread (tf.data) are kept apart.
  """
  tally, it = _FileTally(), iter(rows)
  while True:
    previous, _reading.tally = getattr(_reading, 'tally', None), tally
    try:
      row = next(it)
    except StopIteration:
      break
    finally:
      _reading.tally = previous
    yield row
  with _lock:
    _files.setdefault((source, path), {'kept': tally.kept, 'skipped': dict(tally.skipped)})


def set_consumed(steps: int, batch_size: int) -> None:
  """Records that training has taken `steps` batches of `batch_size` examples (from step 0)."""
  with _lock:
    _consumed.update(steps=steps, examples=steps * batch_size, batch_size=batch_size)


def count_batch(batch) -> None:
  """Adds the 'truncated/<feature>' marks, the 'language' and the backtranslation counts of a NumPy
  batch to the counters."""
  prefix = token_preprocessors.TRUNCATED_PREFIX
  counts = {
    k[len(prefix) :]: (int(np.size(v)), int(np.sum(v)))
    for k, v in batch.items()
    if k.startswith(prefix)
  }
  langs = np.atleast_1d(batch[LANGUAGE_KEY]) if LANGUAGE_KEY in batch else ()
  bt = {name: int(np.sum(batch[k])) for k, name in _BACKTRANSLATION_FEATURES.items() if k in batch}
  with _lock:
    _backtranslation.update(bt)
    _languages.update(l.decode('utf-8') if isinstance(l, bytes) else str(l) for l in langs)
    for feature, (n, truncated) in counts.items():
      _texts[feature] += n
      _truncated[feature] += truncated


# The counters count_batch adds to: what the batches trained on hold. A checkpoint keeps them
# (the trainer's data_state), so a resumed run counts from step 0, as `consumed` does.
_BATCH_COUNTERS = {
  'texts': _texts,
  'truncated': _truncated,
  'languages': _languages,
  'backtranslation': _backtranslation,
}


def batch_counts() -> dict:
  """A JSON-ready copy of the counts of the batches trained on (texts, cut texts, languages,
  backtranslation): what a checkpoint keeps and what processes add up."""
  with _lock:
    return {name: dict(counter) for name, counter in _BATCH_COUNTERS.items()}


def added_batch_counts(*counts: dict) -> dict:
  """The sum of several `batch_counts()` (every process's, for the run's files)."""
  total = {name: collections.Counter() for name in _BATCH_COUNTERS}
  for c in counts:
    for name, counter in total.items():
      counter.update({k: int(v) for k, v in (c.get(name) or {}).items()})
  return {name: dict(counter) for name, counter in total.items()}


def add_batch_counts(counts: dict) -> None:
  """Adds `batch_counts()` of other batches: a checkpoint's (the steps before a resume) or
  another process's (its part of each global batch)."""
  with _lock:
    for name, added in added_batch_counts(counts).items():
      _BATCH_COUNTERS[name].update(added)


def rows_read_line() -> str:
  """E.g. 'rows kept 0, skipped 47 (missing_image 42, not_a_photo 5)': why a task gave no data."""
  with _lock:
    kept, skipped = sum(_kept.values()), dict(_skipped)
  reasons = reasons_text(skipped)
  return f'rows kept {kept:,}, skipped {sum(skipped.values()):,}' + (
    f' ({reasons})' if reasons else ''
  )


def reasons_text(counts) -> str:
  """{reason: rows} -> 'missing_image 42, not_a_photo 5', most first (one spelling for every
  job's skip line)."""
  return ', '.join(f'{r} {n:,}' for r, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))


def read_counts() -> dict:
  """A JSON-ready copy of what the readers counted: every read of a row (`skipped_rows`,
  `kept_rows`) and each file's first complete read (`files`: [source, path, kept, skipped])."""
  with _lock:
    return {
      'skipped_rows': dict(_skipped),
      'kept_rows': dict(_kept),
      'files': [[s, p, f['kept'], dict(f['skipped'])] for (s, p), f in _files.items()],
    }


def added_read_counts(*reads: dict) -> dict:
  """Several processes' read_counts() as one: reads added up; a file read by several processes
  (a task with fewer files than processes shards each file's rows) counted once."""
  skipped, kept, files = collections.Counter(), collections.Counter(), {}
  for r in reads:
    skipped.update(r.get('skipped_rows') or {})
    kept.update(r.get('kept_rows') or {})
    for source, path, n_kept, n_skipped in r.get('files') or ():
      files.setdefault((source, path), [source, path, n_kept, n_skipped])
  return {'skipped_rows': dict(skipped), 'kept_rows': dict(kept), 'files': list(files.values())}


def _corpus_of(files) -> dict:
  corpus = {}
  for source, _, kept, skipped in files:
    entry = corpus.setdefault(source, {'files_read': 0, 'rows': 0, 'kept': 0, 'skipped': {}})
    entry['files_read'] += 1
    entry['kept'] += kept
    entry['rows'] += kept + sum(skipped.values())
    for reason, n in skipped.items():
      entry['skipped'][reason] = entry['skipped'].get(reason, 0) + n
  return corpus


def snapshot(counts: dict | None = None, reads: dict | None = None) -> dict:
  """A JSON-ready copy of every counter; `counts` and `reads` (batch_counts() and read_counts()
  of the whole run, every process's added up) in place of this process's."""
  counts = batch_counts() if counts is None else counts
  reads = read_counts() if reads is None else reads
  texts, truncated = counts.get('texts') or {}, counts.get('truncated') or {}
  bt = collections.Counter(counts.get('backtranslation') or {})
  with _lock:
    return {
      'skipped_rows': dict(reads.get('skipped_rows') or {}),
      'kept_rows': dict(reads.get('kept_rows') or {}),
      'corpus': _corpus_of(reads.get('files') or ()),
      'consumed': dict(_consumed),
      'texts': {
        f: {
          'n_texts': n,
          'n_truncated': truncated.get(f, 0),
          'truncated_share': truncated.get(f, 0) / n,
        }
        for f, n in texts.items()
        if n
      },
      'languages': dict(counts.get('languages') or {}),
      **({'backtranslation': _backtranslation_shares(bt)} if bt['texts'] else {}),
    }


# A run is told once when more than this share of a text feature's texts is cut to its length.
_TRUNCATION_WARN_SHARE = 0.5
_TRUNCATION_CHECK_TEXTS = 1000


def truncation_warning(
  feature_lengths: dict, final: bool = False, counts: dict | None = None
) -> str | None:
  """A warning when most texts of a feature so far (at least 1,000 of them, or all of a run at its
  end, `final`) were longer than the feature's length and cut to it; `counts` as in `snapshot`."""
  with _lock:
    texts = dict(_texts) if counts is None else counts.get('texts') or {}
    truncated = dict(_truncated) if counts is None else counts.get('truncated') or {}
  cut = [
    (f, n, truncated.get(f, 0))
    for f, n in sorted(texts.items())
    if n
    and (n >= _TRUNCATION_CHECK_TEXTS or final)
    and truncated.get(f, 0) > _TRUNCATION_WARN_SHARE * n
  ]
  if not cut:
    return None
  parts = '; '.join(
    f"{100 * t / n:.0f}% of the first {n:,} '{f}' texts were longer than its "
    f'{feature_lengths.get(f, "?")} tokens (EOS included) and were cut'
    for f, n, t in cut
  )
  # The example doubles each cut feature's length and keeps the others (YFCC: title, ...).
  raised = {
    f: 2 * n if f in {c[0] for c in cut} and isinstance(n, int) else n
    for f, n in sorted(feature_lengths.items())
  }
  return (
    f'warning: {parts}: the model sees only their beginnings. Raise TASK_FEATURE_LENGTHS (e.g. '
    f'--gin.TASK_FEATURE_LENGTHS="{raised}"), or train the vocabulary on more text (one '
    'trained on few texts splits words into many pieces)'
  )


def _backtranslation_shares(sums=_backtranslation) -> dict:
  counts = {name: sums[name] for name in _BACKTRANSLATION_FEATURES.values()}
  n = max(counts['texts'], 1)
  return {
    **counts,
    'candidates_share': counts['with_candidates'] / n,
    'replaced_share': counts['replaced'] / n,
  }


def backtranslation_counts() -> dict | None:
  """The `backtranslation` entry of data_stats.json so far; None when backtranslation is off."""
  with _lock:
    return _backtranslation_shares() if _backtranslation['texts'] else None


def reset() -> None:
  with _lock:
    for c in (
      _skipped,
      _kept,
      _texts,
      _truncated,
      _examples_logged,
      _places_logged,
      _files,
      _consumed,
      _languages,
      _backtranslation,
    ):
      c.clear()


def write_language_stats(
  path: str, base_path: str | None = None, counts: dict | None = None
) -> str | None:
  """`path` (a run's language_stats.json): {lang: {n_train_examples}} from the batches trained on, the
  per-language tuning counts `mlit report` plots scores against. None when no task gave a language.

  `base_path`: the language_stats.json of the run this one continues (CONTINUE_FROM): its counts
  are added, since the model saw those batches too, and `n_this_run` keeps this run's own.
  `counts`: batch_counts() of the whole run in place of this process's, as in `snapshot`.
  """
  run = batch_counts() if counts is None else counts
  counts = dict(run.get('languages') or {})
  if not counts:
    return None
  base = _base_counts(base_path) if base_path else None
  if base is None:
    stats = {
      l: {'n_train_examples': n, 'source': 'trained batches'} for l, n in sorted(counts.items())
    }
  else:
    stats = {
      l: {
        'n_train_examples': counts.get(l, 0) + base.get(l, 0),
        'n_this_run': counts.get(l, 0),
        'source': "trained batches, the base run's included",
      }
      for l in sorted(set(counts) | set(base))
    }
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(stats, f, indent=1, ensure_ascii=False)
  return path


def _base_counts(path: str) -> dict[str, int] | None:
  """{lang: n_train_examples} of a base run's language_stats.json; None if it has none."""
  try:
    with tf.io.gfile.GFile(path) as f:
      stats = json.load(f)
  except (OSError, ValueError, tf.errors.OpError):
    return None
  if not isinstance(stats, dict):
    return None
  return {
    l: int(v['n_train_examples'])
    for l, v in stats.items()
    if isinstance(v, dict) and isinstance(v.get('n_train_examples'), int)
  }


def write_json(path: str, counts: dict | None = None, reads: dict | None = None) -> str:
  """Logs the counters and writes them to `path` (a run's data_stats.json); `counts` and
  `reads` as in `snapshot`."""
  stats = snapshot(counts, reads)
  logging.info('data stats: %s', json.dumps(stats, sort_keys=True))
  tf.io.gfile.makedirs(os.path.dirname(path) or '.')
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(stats, f, indent=1, sort_keys=True)
  return path
