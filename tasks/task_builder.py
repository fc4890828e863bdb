"""Adds an mlit seqio Task: a row source, cached cleaning, then random/tokenizing steps.

Everything deterministic (parsing, cleaning, language id, filters) runs before
`seqio.CacheDatasetPlaceholder`, so `seqio_cache_tasks` stores it once; random steps
(backtranslation substitution, tag shuffles, signal sampling, crops) and tokenization
run after it, so a cached task still sees fresh randomness each epoch.
Backtranslation (tasks.backtranslation, a no-op unless gin/augment/backtranslation.gin
is included) is the first step after the cache, on the texts as cached.
"""

import functools
from typing import Optional, Sequence

import seqio
import tensorflow as tf

from tasks import backtranslation, image_preprocessors, token_preprocessors, vocabularies


def _filter_equal(dataset, key, value):
  return dataset.filter(lambda ex: tf.equal(ex[key], value))


def filter_equal(key: str, value: str):
  """Pre-cache preprocessor keeping examples whose `key` equals `value`."""
  return functools.partial(_filter_equal, key=key, value=value)


def add_task(
  name: str,
  source: seqio.DataSource,
  *,
  text_names: Sequence[str],
  image: Optional[str],
  pre_cache=(),
  post_cache=(),
  train_images: bool = True,
  vocab=None,
  backtranslate_features: Optional[Sequence[str]] = None,
) -> seqio.Task:
  """Registers (replacing any same-named task) and returns the Task.

  image: 'image' (source yields encoded bytes, decoded here), 'image_embedding'
  (source yields float vectors) or None (text only, e.g. for benchmarks).
  backtranslate_features: the cached text features backtranslation may replace
  (default `text_names`; YFCC gives its three signals, before post_cache picks one).
  """
  vocab = vocab or vocabularies.vocabulary()
  decode = (
    [functools.partial(image_preprocessors.decode_image, train=train_images)]
    if image == 'image'
    else []
  )
  preprocessors = [
    *pre_cache,
    seqio.CacheDatasetPlaceholder(),
    functools.partial(
      backtranslation.maybe_backtranslate, text_features=tuple(backtranslate_features or text_names)
    ),
    *post_cache,
    functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
    token_preprocessors.trim_and_count,
    *decode,
  ]
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  return seqio.TaskRegistry.add(
    name,
    source=source,
    preprocessors=preprocessors,
    output_features=vocabularies.output_features(text_names, vocab, image),
  )


def add_mixture(name: str, tasks_and_rates) -> seqio.Mixture:
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  return seqio.MixtureRegistry.add(name, list(tasks_and_rates))
