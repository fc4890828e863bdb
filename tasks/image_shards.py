"""Image samples from sharded files: webdataset tars, img2dataset TFRecords and mlit's own TFRecords.

- webdataset (img2dataset's default output): a POSIX tar per shard; a sample is the consecutive
  members sharing a key (the name up to the first dot of the basename): `{key}.jpg|jpeg|png|webp`,
  `{key}.txt` (caption) and `{key}.json` (url, caption, width, height, extra columns, status).
- img2dataset TFRecord: one tf.train.Example per sample with bytes features `key`, `jpg` (or
  `png`/`webp`), `txt`, `json`.
- mlit's own shards (written by `mlit ingest`): one tf.train.Example per sample with bytes features
  `example_id`, `image` and the texts (`text`, or YFCC's `title`/`description`/`tags`), `language`.

A file is one shard: seqio.FileDataSource gives each process its own subset of files
(seqio.ShardInfo(index=process_index, num_shards=process_count)).
"""

import dataclasses
import io
import json
import os
import tarfile
from typing import Iterator, Optional

import tensorflow as tf
from PIL import Image

from tasks import file_io, image_store

IMAGE_EXTENSIONS = ('jpg', 'jpeg', 'png', 'webp')
PROJECT_ID = 'example_id'  # the id feature of mlit's own shards
PROJECT_IMAGE = 'image'


@dataclasses.dataclass
class Sample:
  key: str
  where: str  # shard path and position, for messages
  image: Optional[bytes] = None
  text: Optional[str] = None
  meta: dict = dataclasses.field(default_factory=dict)  # the sidecar json, if any
  features: dict = dataclasses.field(default_factory=dict)  # other string features (mlit shards)


def is_tar(path: str) -> bool:
  return path.endswith('.tar')


def read_samples(path: str) -> Iterator[Sample]:
  """Every sample of one shard (.tar: webdataset; anything else: TFRecord)."""
  return (sample for sample, _ in read_located(path))


def read_located(path: str) -> Iterator[tuple[Sample, Optional[tuple[str, int, int]]]]:
  """(sample, (path, offset, size)) per sample: where its image (tar) or record lies, for seeks."""
  return _read_tar(path) if is_tar(path) else _read_tfrecord(path)


def _read_tar(path):
  sample, location = None, None
  with file_io.open_binary(path) as f, tarfile.open(fileobj=f, mode='r|') as tar:
    for member in tar:
      if not member.isfile():
        continue
      stem, _, ext = os.path.basename(member.name).partition('.')
      if sample is None or sample.key != stem:
        if sample is not None:
          yield sample, location
        sample, location = Sample(key=stem, where=f'{path}:{member.name}'), None
      ext = ext.lower()
      add_member(sample, ext, tar.extractfile(member).read())
      if ext in IMAGE_EXTENSIONS:
        location = (path, member.offset_data, member.size)
  if sample is not None:
    yield sample, location


def add_member(sample: Sample, ext: str, data: bytes) -> None:
  """Files `{key}.{ext}` (or img2dataset's feature `ext`) into the sample."""
  if ext in IMAGE_EXTENSIONS:
    sample.image = data
  elif ext == 'txt':
    sample.text = data.decode('utf-8', 'replace')
  elif ext == 'json':
    try:
      sample.meta = json.loads(data)
    except ValueError:
      sample.meta = {'_unparsable_json': True}


def _read_tfrecord(path):
  """Records read directly (uint64 length, its crc, data, data crc), so each has an offset."""
  with file_io.open_binary(path) as f:
    offset = 0
    while True:
      header = f.read(12)
      if len(header) < 12:
        return
      length = int.from_bytes(header[:8], 'little')
      record = f.read(length)
      f.read(4)
      yield parse_example(record, f'{path}@{offset}'), (path, offset + 12, length)
      offset += 16 + length


def parse_example(record: bytes, where: str) -> Sample:
  """A Sample from an img2dataset or mlit tf.train.Example."""
  feats = {
    k: v.bytes_list.value[0]
    for k, v in tf.train.Example.FromString(record).features.feature.items()
    if v.bytes_list.value
  }
  if PROJECT_ID in feats:  # mlit's own shard
    strings = {k: v.decode('utf-8') for k, v in feats.items() if k != PROJECT_IMAGE}
    key = strings.pop(PROJECT_ID)
    return Sample(key, where, feats.get(PROJECT_IMAGE), strings.get('text'), features=strings)
  sample = Sample(feats.get('key', b'').decode('utf-8'), where)
  for k, v in feats.items():
    if k != 'key':
      add_member(sample, k, v)
  return sample


def project_example(features: dict) -> bytes:
  """mlit's shard record: every value (str or bytes) as a one-element bytes feature."""
  feats = {
    k: tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[v if isinstance(v, bytes) else v.encode('utf-8')])
    )
    for k, v in sorted(features.items())
  }
  return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def sample_id(sample: Sample, shard_key: str) -> Optional[str]:
  """The id a metadata row is joined on: the sample key, url_id(json url) or a json field."""
  if shard_key == 'key':
    return sample.key
  if shard_key == 'url':
    url = sample.meta.get('url')
    return image_store.url_id(url) if url else None
  value = sample.meta.get(shard_key)
  return None if value is None else str(value)


def image_problem(sample: Sample) -> Optional[tuple[str, str]]:
  """(reason, message) when the sample's image cannot be used, else None.

  missing_image: no image member. unreadable_image: Pillow cannot decode it. mismatched_image:
  its sidecar json names another key, or gives a width/height other than the image's own.
  """
  if not sample.image:
    return 'missing_image', f'{sample.where}: no image for key {sample.key!r}'
  try:
    image_store.check_image_bytes(sample.image, sample.where)
    with Image.open(io.BytesIO(sample.image)) as im:
      size = im.size
  except image_store.ImageError as e:
    return e.reason, str(e)
  meta_key = sample.meta.get('key')
  if meta_key is not None and str(meta_key) != sample.key:
    return 'mismatched_image', f'{sample.where}: json key {meta_key!r} != {sample.key!r}'
  width, height = sample.meta.get('width'), sample.meta.get('height')
  if width is not None and height is not None and (int(width), int(height)) != size:
    return 'mismatched_image', f'{sample.where}: json size {width}x{height} != image {size}'
  return None
