"""Image bytes looked up by id in sharded files (webdataset tars, img2dataset or mlit TFRecords).

The drop-in for image_store.ImageStore when the images are held in shards rather than one file per
id: metadata rows (YFCC, CC12M, WIT TSVs) are joined with image bytes by key. The first lookup
builds an index id -> (shard, offset) by reading every shard once (checking each image), then
each lookup is a seek and a read. Tasks given the same shards share one store. Every process
builds the whole index, so this suits up to some millions of images; for pod-scale runs, join once with `mlit ingest` and
train on its shards (tasks.shard_tasks) instead.
Samples whose image cannot be used are indexed with their reason (missing, unreadable or
mismatched image) and counted when a row asks for them.
"""

import functools
import threading
from typing import Optional

import tensorflow as tf
from absl import logging

from tasks import file_io, image_shards, image_store
from tasks.user_error import UserError


class ShardImageStore:
  def __init__(self, pattern: str, shard_key: str = 'key'):
    self.pattern = pattern
    self.shard_key = shard_key
    self._index: Optional[dict] = None  # id -> (path, offset, size) or (reason, message)
    self._lock = threading.Lock()

  def read(self, photo_id: str, photo_hash: Optional[str] = None) -> bytes:
    """Returns verified encoded bytes; raises ImageError(missing/unreadable/mismatched)."""
    del photo_hash  # shards are keyed by id
    entry = self._get_index().get(photo_id)
    if entry is None:
      raise image_store.ImageError('missing_image', f'no image for id {photo_id} in {self.pattern}')
    if len(entry) == 2:
      raise image_store.ImageError(*entry)
    path, offset, size = entry
    with tf.io.gfile.GFile(path, 'rb') as f:
      f.seek(offset)
      data = f.read(size)
    if not image_shards.is_tar(path):
      data = image_shards.parse_example(data, f'{path}@{offset}').image
    return data

  def _get_index(self) -> dict:
    with self._lock:
      if self._index is None:
        self._index = {}
        for path in file_io.expand_patterns(self.pattern):
          self._add_shard(path)
      return self._index

  def _add_shard(self, path: str) -> None:
    try:
      for sample, location in image_shards.read_located(path):
        image_id = image_shards.sample_id(sample, self.shard_key)
        if image_id is None or image_id in self._index:
          continue
        problem = image_shards.image_problem(sample)
        self._index[image_id] = problem or location
    except image_shards.DamagedShard as e:  # rows of the unread rest count as missing_image
      logging.warning('%s; its remaining samples are missing', e)


@functools.lru_cache(maxsize=None)
def _shared_store(pattern: str, shard_key: str) -> ShardImageStore:
  return ShardImageStore(pattern, shard_key)


def make_image_store(
  image_dir: Optional[str],
  image_path_format: str = '{id}.jpg',
  image_shards_pattern: Optional[str] = None,
  shard_key: str = 'key',
):
  """The image lookup a task's gin options ask for: a directory, shards, or none (text only)."""
  if image_dir is not None and image_shards_pattern is not None:
    raise UserError('image_dir and image_shards are both bound: give one')
  if image_shards_pattern is not None:
    return _shared_store(image_shards_pattern, shard_key)
  if image_dir is not None:
    # Else every row is skipped as missing_image and the task is silently empty.
    if not tf.io.gfile.isdir(image_dir):
      raise FileNotFoundError(f'image_dir {image_dir!r}: no such directory')
    return image_store.ImageStore(image_dir, image_path_format)
  return None
