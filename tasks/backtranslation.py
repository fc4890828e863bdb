"""Training-time backtranslation substitution (paper Appendix H), as a seqio preprocessor.

With probability p a text is replaced by one of its kept backtranslations, chosen uniformly; else the
original stays. Every text feature is decided independently (the three YFCC signals included).
Randomness comes from seqio's per-example stateless seeds, so the output is a function of the seed.

Candidates come from `mlit backtranslate` output directories. They are looked up by
`<example id>/<feature>` first (for multi-signal corpora, run the job with such ids), then by
`<example id>`. Enable with gin/augment/backtranslation.gin, which binds the candidates directory
and p; tasks put `backtranslation.maybe_backtranslate` in their preprocessor list before tokenizing.
"""

import functools
import glob
import json
import os
from typing import NamedTuple

import seqio
import tensorflow as tf

import gin
from tasks.user_error import UserError

# Joins a text's candidates in one lookup-table value; a unit separator never occurs in captions.
_SEPARATOR = '\x1f'
FIRED_FEATURE = 'bt_fired'
TEXTS_FEATURE = 'bt_texts'
CANDIDATES_FEATURE = 'bt_candidates'  # counted by tasks.data_stats, never seen by the model


def load_candidates(directory: str) -> dict[str, list[str]]:
  """{id: [kept candidate texts]} from the candidates-*.jsonl shards of a backtranslation job."""
  paths = sorted(glob.glob(os.path.join(directory, 'candidates-*.jsonl')))
  if not paths:
    raise FileNotFoundError(f'no candidates-*.jsonl in {directory}: run `mlit backtranslate` first')
  table = {}
  for path in paths:
    with tf.io.gfile.GFile(path) as f:
      for line_no, line in enumerate(f, start=1):
        try:
          record = json.loads(line)
          kept = [c['text'] for c in record['candidates'] if c['verdict'] == 'kept']
          key = str(record['id'])
        except (ValueError, KeyError, TypeError) as e:
          raise ValueError(f'{path}:{line_no}: not a backtranslation record ({e})') from e
        if kept:
          table[key] = [k.replace(_SEPARATOR, ' ') for k in kept]
  return table


class _Candidates(NamedTuple):
  table: tf.lookup.StaticHashTable  # id -> the id's kept round trips, joined by _SEPARATOR
  texts: int  # ids with at least one kept round trip
  round_trips: int


@functools.lru_cache(maxsize=4)
def _candidates(directory: str) -> _Candidates:
  candidates = load_candidates(directory)  # the table keeps them; the dict goes
  keys = list(candidates) or ['']
  values = [_SEPARATOR.join(candidates[k]) for k in candidates] or ['']
  table = tf.lookup.StaticHashTable(
    tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)), default_value=''
  )
  return _Candidates(table, len(candidates), sum(len(c) for c in candidates.values()))


def describe(directory: str, probability: float) -> str:
  """One line for the run's log: p, and how many texts of the directory have a kept round trip."""
  c = _candidates(directory)
  return (
    f'backtranslation: p = {probability:g}; {c.texts:,} texts with {c.round_trips:,} kept round '
    f'trips in {directory}'
  )


def substitute(text, candidates_joined, seed, probability):
  """Returns (new text, fired) for one text given its joined candidates and a stateless seed."""
  candidates = tf.strings.split(candidates_joined, _SEPARATOR)
  n = tf.shape(candidates)[0]
  has_candidates = tf.strings.length(candidates_joined) > 0
  draws = tf.random.stateless_uniform([2], seed=seed)
  fired = tf.logical_and(has_candidates, draws[0] < probability)
  index = tf.minimum(tf.cast(draws[1] * tf.cast(n, tf.float32), tf.int32), n - 1)
  chosen = tf.cond(fired, lambda: candidates[index], lambda: text)
  return chosen, fired


def settings() -> tuple[str, float] | None:
  """(candidates directory, probability) when gin turns backtranslation on
  (gin/augment/backtranslation.gin binds them), else None."""
  bindings = gin.get_bindings(maybe_backtranslate)
  directory, probability = bindings.get('candidates_dir'), float(bindings.get('probability', 0.0))
  return (directory, probability) if directory and probability > 0.0 else None


def requested() -> bool:
  """Whether gin turns backtranslation on."""
  return settings() is not None


# A run that reads this many texts without one kept round trip among them is told so.
_COVERAGE_CHECK_TEXTS = 1000


def coverage_warning(counts: dict, directory: str | None) -> str | None:
  """A warning when the texts read so far (tasks.data_stats.backtranslation_counts) had no
  candidate at all: the ids of the candidates then match none of the task's example ids.
  `directory` is None when a task binds it itself rather than through gin."""
  if counts['texts'] < _COVERAGE_CHECK_TEXTS or counts['with_candidates']:
    return None
  where = directory or 'its candidates directory'
  return (
    f'warning: backtranslation is on, but none of the first {counts["texts"]:,} texts has a kept '
    f"round trip in {where}: the candidates' ids must be the task's example ids (for "
    'emoji_cldr, `python -m tasks.emoji_cldr texts` writes them); no text is being replaced'
  )


def check_applied(task_name: str, features) -> None:
  """Refuses a run that asks for backtranslation on a task whose pipeline never applies it."""
  if requested() and FIRED_FEATURE not in features:
    raise UserError(
      f'backtranslation is on (maybe_backtranslate.candidates_dir is bound, e.g. by '
      f'augment/backtranslation.gin) but task {task_name!r} does not apply it: its preprocessors '
      'have no tasks.backtranslation.maybe_backtranslate. Drop the gin file or use a task that '
      'applies it (tasks built by tasks.task_builder, emoji_cldr)'
    )


@gin.configurable(denylist=['dataset'])
def maybe_backtranslate(
  dataset: tf.data.Dataset,
  *,
  candidates_dir: str | None = None,
  probability: float = 0.0,
  text_features=('text',),
  id_feature: str = 'example_id',
  seed: int = 0,
) -> tf.data.Dataset:
  """Substitutes backtranslations with `probability`; a no-op unless gin sets candidates_dir.

  Adds int32 features `bt_fired` (how many text features of the example were substituted),
  `bt_texts` (how many were considered) and `bt_candidates` (how many had a kept round trip), so
  the trainer can log the substitution rate and tell when the candidates' ids match no text.
  """
  if not candidates_dir or probability <= 0.0:
    return dataset
  if not 0.0 <= probability <= 1.0:
    raise ValueError(f'maybe_backtranslate.probability must be in [0, 1], got {probability}')
  table = _candidates(candidates_dir).table
  features = tuple(text_features)

  def present(example):
    missing = [f for f in (id_feature, *features) if f not in example]
    if missing:
      raise KeyError(
        f'maybe_backtranslate: example has no feature(s) {missing}; it has {sorted(example)}'
      )

  @seqio.map_over_dataset(num_seeds=max(len(features), 2))
  def apply(example, seeds):
    present(example)
    example = dict(example)
    example_id = (
      tf.strings.as_string(example[id_feature])
      if example[id_feature].dtype != tf.string
      else example[id_feature]
    )
    fired_count = tf.constant(0, tf.int32)
    with_candidates = tf.constant(0, tf.int32)
    for i, feature in enumerate(features):
      by_feature = table.lookup(tf.strings.join([example_id, '/', feature]))
      joined = tf.where(tf.strings.length(by_feature) > 0, by_feature, table.lookup(example_id))
      feature_seed = tf.cast(seeds[i], tf.int32) + tf.constant([seed, 0], tf.int32)
      example[feature], fired = substitute(example[feature], joined, feature_seed, probability)
      fired_count += tf.cast(fired, tf.int32)
      with_candidates += tf.cast(tf.strings.length(joined) > 0, tf.int32)
    example[FIRED_FEATURE] = fired_count
    example[CANDIDATES_FEATURE] = with_candidates
    example[TEXTS_FEATURE] = tf.constant(len(features), tf.int32)
    return example

  return apply(dataset)
