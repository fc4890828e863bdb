"""The output side of `mlit ingest`: shard names, deterministic assignment, sidecars, manifest.

A shard is complete when its sidecar `<shard>.json` exists: it is written (atomically) after the
shard's data file, so a crashed run leaves no sidecar and the shard is redone on resume.
"""

import hashlib
import json
import os

import tensorflow as tf

from tasks import file_io

MANIFEST = 'manifest.json'


def shard_of(example_id: str, num_shards: int) -> int:
  """The same shard for the same id on every worker, run and Python (no salted hash())."""
  digest = hashlib.sha1(example_id.encode('utf-8')).digest()
  return int.from_bytes(digest[:8], 'big') % num_shards


def shard_name(index: int, num_shards: int) -> str:
  return f'shards-{index:05d}-of-{num_shards:05d}.tfrecord'


def sidecar_path(output_dir: str, index: int, num_shards: int) -> str:
  return os.path.join(output_dir, shard_name(index, num_shards) + '.json')


def complete_shards(output_dir: str, num_shards: int) -> set[int]:
  """Shards an earlier run finished (data file and sidecar both there)."""
  done = set()
  for i in range(num_shards):
    data = os.path.join(output_dir, shard_name(i, num_shards))
    if tf.io.gfile.exists(sidecar_path(output_dir, i, num_shards)) and tf.io.gfile.exists(data):
      done.add(i)
  return done


def write_json(path: str, value: dict) -> None:
  with file_io.atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(value, f, indent=1, sort_keys=True)


def read_json(path: str) -> dict:
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def write_shard(output_dir: str, index: int, num_shards: int, records, stats: dict) -> dict:
  """Writes records [(id, serialized Example)] sorted by id, then the sidecar; returns it."""
  path = os.path.join(output_dir, shard_name(index, num_shards))
  records = sorted(records)
  with file_io.atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
    for _, record in records:
      writer.write(record)
  sidecar = dict(stats, examples=len(records), bytes=tf.io.gfile.stat(path).length)
  write_json(sidecar_path(output_dir, index, num_shards), sidecar)
  return sidecar


def build_manifest(output_dir: str, num_shards: int, run: dict, metadata_skips: dict) -> dict:
  """Totals over every shard's sidecar (this run's and earlier runs') plus the run's settings."""
  shards, skipped, counts = {}, {}, {'examples': 0, 'bytes': 0, 'image_bytes': 0}
  extra = {'images_without_metadata': 0, 'duplicate_images': 0, 'duplicate_rows': 0}
  for i in range(num_shards):
    sidecar = read_json(sidecar_path(output_dir, i, num_shards))
    shards[shard_name(i, num_shards)] = {
      k: sidecar[k] for k in ('examples', 'bytes', 'image_bytes', 'languages')
    }
    for k in counts:
      counts[k] += sidecar[k]
    for k in extra:
      extra[k] += sidecar[k]
    for reason, n in sidecar['skipped_rows'].items():
      skipped[reason] = skipped.get(reason, 0) + n
  for reason, n in metadata_skips.items():
    skipped[reason] = skipped.get(reason, 0) + n
  languages = {}
  for s in shards.values():
    for lang, n in s['languages'].items():
      languages[lang] = languages.get(lang, 0) + n
  return {
    **run,
    'num_shards': num_shards,
    **counts,
    **extra,
    'skipped_rows': dict(sorted(skipped.items())),
    'metadata_skipped_rows': dict(sorted(metadata_skips.items())),  # the rows' own faults
    'languages': dict(sorted(languages.items())),
    'shards': shards,
  }
