"""Per-language mixture rates with temperature sampling, from language counts.

rate(lang) ∝ n_lang ** (1 / T): T = 1 follows the data, larger T up-samples
low-resource languages, T -> inf is uniform (as in mT5's language sampling).
Counts come from RUN_DIR/language_stats.json ({"<lang>": {"n_train_examples": n}}),
written by `count_languages` over a task's source.
"""

import collections
import json
import random

import tensorflow as tf

from tasks import langid
from tasks.user_error import UserError


def temperature_rates(counts: dict, temperature: float) -> dict:
  if temperature <= 0:
    raise ValueError(f'temperature must be > 0, got {temperature}')
  weights = {k: float(n) ** (1.0 / temperature) for k, n in counts.items() if n > 0}
  if not weights:
    raise ValueError('no language has a positive count')
  total = sum(weights.values())
  return {k: w / total for k, w in sorted(weights.items())}


def temperature_sample(texts: dict, total: int, temperature: float, seed: int = 0) -> dict:
  """{lang: texts drawn}: about `total` texts (at most as many as all languages hold), each
  language's share from temperature_rates of its text count. A language whose share exceeds its
  texts gives each of them that many times over (whole repeats, then a sample of the rest), as
  up-sampling a mixture repeats its examples. Deterministic for a seed."""
  counts = {lang: len(t) for lang, t in texts.items()}
  rates = temperature_rates(counts, temperature)
  total = min(total, sum(counts.values()))
  rng = random.Random(seed)
  out = {}
  for lang in sorted(rates):
    pool, want = texts[lang], max(1, round(total * rates[lang]))
    repeats, rest = divmod(want, len(pool))
    out[lang] = pool * repeats + rng.sample(pool, rest)
  return out


def load_language_counts(path: str) -> dict:
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'language counts file {path!r} does not exist')
  try:
    with tf.io.gfile.GFile(path) as f:
      stats = json.load(f)
    return {lang: int(v['n_train_examples']) for lang, v in stats.items()}
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    raise UserError(f"{path}: expected {{lang: {{'n_train_examples': int}}}} ({e!r})") from e


def count_languages(source, split: str = 'train', output_path=None, key: str = 'language') -> dict:
  """Counts `key` over a source's examples; optionally writes language_stats.json."""
  counts = collections.Counter()
  for ex in source.get_dataset(split, shuffle=False).as_numpy_iterator():
    counts[ex[key].decode('utf-8')] += 1
  if output_path:
    with tf.io.gfile.GFile(output_path, 'w') as f:
      json.dump({k: {'n_train_examples': n} for k, n in sorted(counts.items())}, f, indent=1)
  return dict(counts)


def trainable_languages(counts: dict, min_examples: int = 1) -> list:
  """Languages with enough examples, 'und' excluded."""
  return sorted(k for k, n in counts.items() if n >= min_examples and k != langid.UNDETERMINED)
