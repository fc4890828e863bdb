"""Conceptual 12M: a TSV of `url<TAB>caption` (no header), one 'text' per image.

Images are looked up as `image_dir`/`path_format` with {id} = url_id(url), the
SHA-1 of the URL, because CC12M rows carry no other stable id.
"""

from typing import Iterator, Optional

import tensorflow as tf

import gin
from tasks import (
  data_stats,
  file_io,
  image_store,
  line_files,
  row_source,
  shard_image_store,
  task_builder,
  text_cleaning,
)


def read_cc12m(path: str, images=None) -> Iterator[dict]:
  for where, cols in line_files.tsv_rows(path, data_stats.skip):
    if len(cols) != 2:
      data_stats.skip('wrong_column_count', f'{where} ({len(cols)} columns)')
      continue
    url, caption = cols[0].strip(), text_cleaning.clean_text(cols[1])
    if not caption:
      data_stats.skip('all_signals_empty', where)
      continue
    example = {'example_id': image_store.url_id(url), 'text': caption}
    if not image_store.attach_image(example, images, where, url):
      continue
    data_stats.keep('cc12m')
    yield example


@gin.configurable
def register_cc12m(
  tsv_pattern: str = gin.REQUIRED,
  *,
  image_dir: Optional[str] = None,
  image_path_format: str = '{id}.jpg',
  image_shards: Optional[str] = None,
  image_shard_key: str = 'url',
  eval_tsv_pattern: Optional[str] = None,
) -> list:
  """image_dir (one file per id) or image_shards (a pattern of webdataset tars or TFRecords, joined
  by url_id(url) of the sample's json by default; see tasks.shard_image_store)."""
  images = shard_image_store.make_image_store(
    image_dir, image_path_format, image_shards, image_shard_key
  )
  names = ['example_id', 'text'] + (['image'] if images else [])
  signature = {n: tf.TensorSpec((), tf.string) for n in names}
  file_io.check_patterns('register_cc12m.tsv_pattern', tsv_pattern)
  splits = {'train': tsv_pattern}
  if eval_tsv_pattern:
    file_io.check_patterns('register_cc12m.eval_tsv_pattern', eval_tsv_pattern)
    splits['validation'] = eval_tsv_pattern
  source = row_source.RowSource(lambda p: read_cc12m(p, images), signature, splits, name='cc12m')
  task_builder.add_task('cc12m', source, text_names=('text',), image='image' if images else None)
  return ['cc12m']
