"""Training-time backtranslation substitution (paper Appendix H), as a seqio preprocessor.

With probability p a text is replaced by one of its kept backtranslations, chosen uniformly; else the
original stays. Every text feature is decided independently (the three YFCC signals included).
Randomness comes from seqio's per-example stateless seeds, so the output is a function of the seed.

Candidates come from `mlit backtranslate` output directories. They are looked up by
`<example id>/<feature>` first (for multi-signal corpora, run the job with such ids), then by
`<example id>`, and used only when the text the job translated is the example's text (up to case
and whitespace): round trips of another text under the same id (a job run on other texts) would
pair the image with a caption of something else, so they are counted and warned about instead.
Likewise a text whose language (the example's `<feature>_lang`, else `language`) is known and is
not the job's `--source` (job.json): the job translated it as that language, so its round trips
are mangled ('un triangle rouge' -> 'a rouge of triangle' through en-ca-en).
Enable with gin/augment/backtranslation.gin, which binds the candidates directory
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
from tasks import language_codes
from tasks.user_error import UserError

# Joins a text's candidates in one lookup-table value, after the text they were translated from;
# unit and record separators never occur in captions.
_SEPARATOR = '\x1f'
_SOURCE_SEPARATOR = '\x1e'
FIRED_FEATURE = 'bt_fired'
TEXTS_FEATURE = 'bt_texts'
# Counted by tasks.data_stats, never seen by the model: texts with round trips of their own text,
# and texts whose id has round trips of another text.
CANDIDATES_FEATURE = 'bt_candidates'
OTHER_TEXT_FEATURE = 'bt_other_text'
# Texts with round trips of their own text, in a language that is not the job's source.
OTHER_LANGUAGE_FEATURE = 'bt_other_language'
COUNTED_FEATURES = (
  FIRED_FEATURE,
  TEXTS_FEATURE,
  CANDIDATES_FEATURE,
  OTHER_TEXT_FEATURE,
  OTHER_LANGUAGE_FEATURE,
)
JOB_FILE = 'job.json'  # mlit.translation.backtranslate_job's settings: 'source' among them


class Record(NamedTuple):
  text: str  # the text the job translated
  kept: list[str]  # its round trips with verdict "kept"


def load_candidates(directory: str) -> dict[str, Record]:
  """{id: Record} of the ids with a kept round trip, from the candidates-*.jsonl shards of a
  backtranslation job."""
  paths = sorted(glob.glob(os.path.join(directory, 'candidates-*.jsonl')))
  if not paths:
    raise FileNotFoundError(f'no candidates-*.jsonl in {directory}: run `mlit backtranslate` first')
  table = {}
  for path in paths:
    with tf.io.gfile.GFile(path) as f:
      for line_no, line in enumerate(f, start=1):
        try:
          record = json.loads(line)
          kept = [str(c['text']) for c in record['candidates'] if c['verdict'] == 'kept']
          key, text = str(record['id']), str(record['text'])
        except (ValueError, KeyError, TypeError) as e:
          raise UserError(
            f'{path}:{line_no}: not a backtranslation record ({e}); the same `mlit backtranslate` '
            'command rewrites a damaged shard once the file is removed'
          ) from e
        if kept:
          table[key] = Record(text, kept)
  return table


class _Candidates(NamedTuple):
  # id -> the text translated, _SOURCE_SEPARATOR, the id's kept round trips joined by _SEPARATOR
  table: tf.lookup.StaticHashTable
  texts: int  # ids with at least one kept round trip
  round_trips: int
  source: str | None  # the language the job translated from (None: its job.json does not say)


def _clean(text: str) -> str:
  return text.replace(_SEPARATOR, ' ').replace(_SOURCE_SEPARATOR, ' ')


@functools.lru_cache(maxsize=4)
def _candidates(directory: str) -> _Candidates:
  candidates = load_candidates(directory)  # the table keeps them; the dict goes
  keys = list(candidates) or ['']
  values = [
    _clean(r.text) + _SOURCE_SEPARATOR + _SEPARATOR.join(_clean(k) for k in r.kept)
    for r in candidates.values()
  ] or ['']
  table = tf.lookup.StaticHashTable(
    tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)), default_value=''
  )
  return _Candidates(
    table, len(candidates), sum(len(r.kept) for r in candidates.values()), _source(directory)
  )


def _source(directory: str) -> str | None:
  """The job's --source language: job.json (`mlit backtranslate`) or summary.json (the Beam job)."""
  for name in (JOB_FILE, 'summary.json'):
    path = os.path.join(directory, name)
    if not tf.io.gfile.exists(path):
      continue
    try:
      with tf.io.gfile.GFile(path) as f:
        source = json.load(f).get('source')
    except (ValueError, AttributeError) as e:
      raise UserError(f'{path}: not the file `mlit backtranslate` writes ({e})') from e
    if isinstance(source, str) and source:
      return language_codes.normalize(source)
  return None


def describe(directory: str, probability: float) -> str:
  """The run's log line(s): p, how many texts of the directory have a kept round trip, and a
  warning when the job that wrote it has not finished (no summary.json yet)."""
  c = _candidates(directory)
  line = (
    f'backtranslation: p = {probability:g}; {c.texts:,} texts with {c.round_trips:,} kept round '
    f'trips in {directory}' + (f', translated from {c.source}' if c.source else '')
  )
  if not tf.io.gfile.exists(os.path.join(directory, 'summary.json')):
    shards = len(glob.glob(os.path.join(directory, 'candidates-*.jsonl')))
    line += (
      f'\nwarning: {directory} has no summary.json: the `mlit backtranslate` job writing it has '
      f'not finished ({shards} candidates files so far); texts of its missing shards are not '
      'replaced until the same command completes it'
    )
  return line


def _normalised(text):
  """A text up to case and runs of whitespace (a TSV's tabs and newlines became spaces)."""
  return tf.strings.lower(
    tf.strings.strip(tf.strings.regex_replace(text, r'\s+', ' ')), encoding='utf-8'
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


def _checked_probability(probability) -> float:
  """The substitution probability, or one line naming the binding when it is not one."""
  if isinstance(probability, bool) or not isinstance(probability, (int, float)):
    raise UserError(
      f'maybe_backtranslate.probability (BT_PROBABILITY) = {probability!r}: a number in [0, 1], '
      'e.g. --gin.BT_PROBABILITY=0.1'
    )
  if not 0.0 <= probability <= 1.0:  # NaN included
    raise UserError(
      f'maybe_backtranslate.probability (BT_PROBABILITY) = {probability!r} is not in [0, 1] '
      '(0 turns backtranslation off)'
    )
  return float(probability)


def settings() -> tuple[str, float] | None:
  """(candidates directory, probability) when gin turns backtranslation on
  (gin/augment/backtranslation.gin binds them), else None."""
  bindings = gin.get_bindings(maybe_backtranslate)
  directory = bindings.get('candidates_dir')
  probability = _checked_probability(bindings.get('probability', 0.0))
  return (directory, probability) if directory and probability > 0.0 else None


def switched_off() -> bool:
  """Whether gin names a candidates directory with probability 0 (included, then turned off)."""
  bindings = gin.get_bindings(maybe_backtranslate)
  return bool(bindings.get('candidates_dir')) and bindings.get('probability', 0.0) == 0.0


def requested() -> bool:
  """Whether gin turns backtranslation on."""
  return settings() is not None


# A run that reads this many texts without one kept round trip among them is told so.
_COVERAGE_CHECK_TEXTS = 1000


def coverage_warning(counts: dict, directory: str | None, final: bool = False) -> str | None:
  """A warning, once the run has read enough texts (or at its end, `final`), when the texts so far
  (tasks.data_stats.backtranslation_counts) had no candidate at all (the candidates' ids then
  match none of the task's example ids) or some ids had round trips of another text.
  `directory` is None when a task binds it itself rather than through gin."""
  if not counts['texts'] or (counts['texts'] < _COVERAGE_CHECK_TEXTS and not final):
    return None
  where = directory or 'its candidates directory'
  first = f'the first {counts["texts"]:,} texts'
  if counts.get('other_language'):
    return (
      f'warning: backtranslation: {counts["other_language"]:,} of {first} have round trips in '
      f'{where} but are in another language than the one it translated from (--source): the '
      'job read them as that language, so their round trips are mangled; those texts are not '
      "replaced. Give `mlit backtranslate` only the source language's texts"
    )
  if counts.get('other_text'):
    return (
      f'warning: backtranslation: {counts["other_text"]:,} of {first} have round trips in '
      f'{where} under their id that were translated from another text (the job ran on other '
      "texts than the task's): those texts are not replaced; run `mlit backtranslate` on the "
      "task's own texts"
    )
  if counts['with_candidates']:
    return None
  return (
    f'warning: backtranslation is on, but none of {first} has a kept round trip in {where}: the '
    "candidates' ids must be the task's example ids (an image shard's sample key, or its URL's "
    "sha1 with shard_key='url'; YFCC's photo id; for emoji_cldr `python -m tasks.emoji_cldr "
    'texts` writes them); no text is being replaced'
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


def _known(lang):
  return tf.logical_and(
    tf.strings.length(lang) > 0, tf.not_equal(tf.strings.lower(lang), language_codes.UNDETERMINED)
  )


def _other_language(example, feature: str, source: str | None):
  """Whether the text's known language is not `source` (a scalar bool tensor): the feature's
  own `<feature>_lang` when known, else the example's `language`."""
  keys = [k for k in (f'{feature}_lang', 'language') if k in example]
  keys = [k for k in keys if example[k].dtype == tf.string]
  if source is None or not keys:
    return tf.constant(False)
  lang = example[keys[-1]]
  if len(keys) == 2:
    lang = tf.where(_known(example[keys[0]]), example[keys[0]], lang)
  # The primary subtag: 'zh-TW' texts are 'zh' to a 'zh' job.
  primary = tf.strings.split(tf.strings.lower(lang), '-', maxsplit=1)[0]
  return tf.logical_and(_known(lang), tf.not_equal(primary, source.split('-')[0].lower()))


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
  `bt_texts` (how many were considered), `bt_candidates` (how many had a kept round trip of their
  own text, in the job's source language), `bt_other_text` (how many had round trips of another
  text under their id) and `bt_other_language` (how many had round trips of their own text but
  are in another language than the job's source), so the trainer can log the substitution rate
  and tell when the candidates do not fit the texts. A text's language is the example's
  `<feature>_lang` (YFCC's per signal), else its `language`; 'und' or none is not checked.
  """
  if not candidates_dir or _checked_probability(probability) == 0.0:
    return dataset
  candidates = _candidates(candidates_dir)
  table, source = candidates.table, candidates.source
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
    other_text = tf.constant(0, tf.int32)
    other_language = tf.constant(0, tf.int32)
    for i, feature in enumerate(features):
      by_feature = table.lookup(tf.strings.join([example_id, '/', feature]))
      value = tf.where(tf.strings.length(by_feature) > 0, by_feature, table.lookup(example_id))
      found = tf.strings.length(value) > 0
      parts = tf.strings.split(value, _SOURCE_SEPARATOR, maxsplit=1)  # [''] when none was found
      own_text = tf.equal(_normalised(parts[0]), _normalised(example[feature]))
      other_text += tf.cast(tf.logical_and(found, tf.logical_not(own_text)), tf.int32)
      own = tf.logical_and(found, own_text)
      foreign = tf.logical_and(own, _other_language(example, feature, source))
      other_language += tf.cast(foreign, tf.int32)
      own = tf.logical_and(own, tf.logical_not(foreign))
      joined = tf.where(own, parts[-1], '')
      feature_seed = tf.cast(seeds[i], tf.int32) + tf.constant([seed, 0], tf.int32)
      example[feature], fired = substitute(example[feature], joined, feature_seed, probability)
      fired_count += tf.cast(fired, tf.int32)
      with_candidates += tf.cast(own, tf.int32)
    example[FIRED_FEATURE] = fired_count
    example[CANDIDATES_FEATURE] = with_candidates
    example[OTHER_TEXT_FEATURE] = other_text
    example[OTHER_LANGUAGE_FEATURE] = other_language
    example[TEXTS_FEATURE] = tf.constant(len(features), tf.int32)
    return example

  return apply(dataset)
