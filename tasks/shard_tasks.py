"""seqio tasks over image shards that carry their own texts.

Reads webdataset tars and img2dataset TFRecords as they come (caption from `{key}.txt` / `txt`)
and mlit's own shards from `mlit ingest` (texts, language and ids as ingested). Each file is one
shard, so every process of a multi-host run reads its own subset of files. Samples whose image is
missing, undecodable or mismatched are counted per reason (tasks.data_stats) and skipped.

In a gin file:
  tasks.registration.register_tasks.registrations = [@tasks.shard_tasks.register_image_shards]
  tasks.shard_tasks.register_image_shards.pattern = 'gs://bucket/cc12m/shards-*.tfrecord'
  tasks.shard_tasks.register_image_shards.name = 'cc12m_shards'
For shards ingested from YFCC, set text_features to ('title', 'description', 'tags') and pick a
signal mode as for tasks.yfcc.
"""

import functools
from typing import Iterator, Optional, Sequence

import tensorflow as tf

import gin
from tasks import data_stats, image_shards, langid, row_source, signals, task_builder, yfcc


def _count_damaged_shard(error: Exception) -> None:  # the samples before the damage are kept
  data_stats.skip('damaged_shard', str(error))


def read_shard_examples(
  path: str, text_features: Sequence[str], shard_key: str = 'key', language: str = ''
) -> Iterator[dict]:
  """example_id, image bytes, the texts and language of each usable sample of one shard."""
  for sample in image_shards.read_samples(path, on_damage=_count_damaged_shard):
    problem = image_shards.image_problem(sample)
    if problem is not None:
      data_stats.skip(*problem)
      continue
    texts = {name: _text(sample, name) for name in text_features}
    if not any(texts.values()):
      if sample.text_problem:
        data_stats.skip('invalid_utf8', sample.text_problem)
      else:
        data_stats.skip('all_signals_empty', f'{sample.where}: no text')
      continue
    example_id = image_shards.sample_id(sample, shard_key)
    if example_id is None:
      data_stats.skip('bad_field', f'{sample.where}: no {shard_key!r} to use as the id')
      continue
    data_stats.keep('image_shards')
    lang = sample.features.get('language') or sample.meta.get('language') or language
    yield {
      'example_id': example_id,
      'image': sample.image,
      'language': lang or langid.UNDETERMINED,
      **texts,
    }


def _text(sample: image_shards.Sample, name: str) -> str:
  if name in sample.features:
    return sample.features[name]
  if name == 'text':
    return (sample.text or sample.meta.get('caption') or '').strip()
  return ''


@gin.configurable
def register_image_shards(
  pattern: str = gin.REQUIRED,
  *,
  name: str = 'image_shards',
  eval_pattern: Optional[str] = None,
  text_features: Sequence[str] = ('text',),
  mode: str = 'joint',
  shard_key: str = 'key',
  language: str = '',
) -> list:
  """Registers task `name` over shards matching `pattern` (comma-separated patterns allowed).

  shard_key: the example id: the sample's key, 'url' (url_id of its json url, as CC12M/WIT ids)
  or a json field. language: for samples that carry none (e.g. 'en' for CC12M).
  mode: the YFCC signal mode, when text_features are YFCC's three signals.
  """
  text_features = tuple(text_features)
  if text_features == signals.SIGNALS:
    text_names, post_cache = yfcc.mode_preprocessors(mode)
  elif mode != 'joint':
    raise ValueError(
      f'mode {mode!r} applies to YFCC signals {signals.SIGNALS}, not {text_features}'
    )
  else:
    text_names, post_cache = text_features, []
  splits = {'train': pattern}
  if eval_pattern:
    splits['validation'] = eval_pattern
  keys = ('example_id', 'image', 'language', *text_features)
  source = row_source.RowSource(
    functools.partial(
      read_shard_examples, text_features=text_features, shard_key=shard_key, language=language
    ),
    {k: tf.TensorSpec((), tf.string) for k in keys},
    splits,
    name='image_shards',  # as its rows are counted kept (data_stats.json's corpus)
  )
  task_builder.add_task(
    name,
    source,
    text_names=text_names,
    image='image',
    post_cache=post_cache,
    backtranslate_features=text_features,
  )
  return [name]
