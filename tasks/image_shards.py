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
import zlib
from typing import Iterator, Optional

import tensorflow as tf
from google.protobuf import message
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
  problem: Optional[tuple[str, str]] = None  # (reason, message) of a record that did not parse
  text_problem: Optional[str] = None  # why its caption was unreadable (invalid_utf8), if it was


def is_tar(path: str) -> bool:
  return path.endswith('.tar')


def read_samples(path: str, on_damage=None) -> Iterator[Sample]:
  """Every sample of one shard (.tar: webdataset; anything else: TFRecord). A damaged shard ends
  after the samples before its damage, raising DamagedShard or, given `on_damage`, calling it
  with the error."""
  try:
    for sample, _ in read_located(path):
      yield sample
  except DamagedShard as e:
    if on_damage is None:
      raise
    on_damage(e)


def read_located(path: str) -> Iterator[tuple[Sample, Optional[tuple[str, int, int]]]]:
  """(sample, (path, offset, size)) per sample: where its image (tar) or record lies, for seeks."""
  return _read_tar(path) if is_tar(path) else _read_tfrecord(path)


class DamagedShard(ValueError):
  """A shard cut short or corrupt: the samples before the damage were yielded, the rest cannot be
  read (a truncated tar or a TFRecord whose framing is broken has no next sample to find)."""


def _read_tar(path):
  sample, location, samples = None, None, 0
  try:
    with file_io.open_binary(path) as f, tarfile.open(fileobj=f, mode='r|') as tar:
      for member in tar:
        if not member.isfile():
          continue
        stem, _, ext = os.path.basename(member.name).partition('.')
        if sample is None or sample.key != stem:
          if sample is not None:
            yield sample, location
            samples += 1
          sample, location = Sample(key=stem, where=f'{path}:{member.name}'), None
        ext = ext.lower()
        add_member(sample, ext, tar.extractfile(member).read())
        if ext in IMAGE_EXTENSIONS:
          location = (path, member.offset_data, member.size)
  except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
    # The sample being read when the damage came is dropped: its members may be incomplete.
    raise DamagedShard(f'{path}: damaged tar after {samples} samples ({e})') from e
  if sample is not None:
    yield sample, location


def add_member(sample: Sample, ext: str, data: bytes) -> None:
  """Files `{key}.{ext}` (or img2dataset's feature `ext`) into the sample."""
  if ext in IMAGE_EXTENSIONS:
    sample.image = data
  elif ext == 'txt':
    try:
      sample.text = data.decode('utf-8')
    except UnicodeDecodeError:  # no caption rather than one with U+FFFD in it
      sample.text_problem = f'{sample.where}: the caption ({ext}) is not UTF-8'
  elif ext == 'json':
    try:
      meta = json.loads(data)
    except ValueError:
      meta = None
    # Only an object has fields to join on and check; anything else counts as no json.
    sample.meta = meta if isinstance(meta, dict) else {'_unparsable_json': True}


def _read_tfrecord(path):
  """Records read directly (uint64 length, its crc, data, data crc), so each has an offset. The
  length's crc is checked: a file that is not a TFRecord, or one cut short, is a DamagedShard."""
  with file_io.open_binary(path) as f:
    offset = 0
    while True:
      header = f.read(12)
      if not header:
        return
      length = int.from_bytes(header[:8], 'little')
      if len(header) < 12 or _masked_crc32c(header[:8]) != int.from_bytes(header[8:], 'little'):
        raise DamagedShard(
          f'{path}: not a TFRecord or damaged at byte {offset} (bad record header)'
        )
      record = f.read(length)
      if len(record) < length or len(f.read(4)) < 4:
        raise DamagedShard(f'{path}: cut short in the record at byte {offset}')
      where = f'{path}@{offset}'
      try:
        sample = parse_example(record, where)
      except (message.DecodeError, UnicodeDecodeError) as e:
        sample = Sample(
          key='', where=where, problem=('unreadable_image', f'{where}: bad record: {e}')
        )
      yield sample, (path, offset + 12, length)
      offset += 16 + length


def _crc32c_table():
  table = []
  for n in range(256):
    for _ in range(8):
      n = (n >> 1) ^ 0x82F63B78 if n & 1 else n >> 1
    table.append(n)
  return table


_CRC32C = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC-32C (Castagnoli) of `data` (used here on the 8 length bytes only)."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


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
  if sample.problem is not None:
    return sample.problem
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
  if width is None or height is None:
    return None
  try:
    json_size = (int(width), int(height))
  except (TypeError, ValueError):
    return 'bad_field', f'{sample.where}: json size {width!r}x{height!r} is not two numbers'
  if json_size != size:
    return 'mismatched_image', f'{sample.where}: json size {width}x{height} != image {size}'
  return None
