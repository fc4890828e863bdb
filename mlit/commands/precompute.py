r"""Pre-compute locked image-tower embeddings of a task: `mlit precompute`.

  mlit precompute --gin_file=precompute.gin --gin_file=my_tasks.gin --gin.PRECOMPUTE_TASK=...

gin/precompute.gin binds `mlit.commands.precompute.precompute` (task, output dir, the tower's
kwargs, its kind -- 'vit' or 'efficientnet_lite' -- and checkpoint) from macros. One output shard per source file: a
finished shard is written to a temporary name and renamed, and the manifest lists it, so a crashed run
resumes at the first unfinished shard. The manifest records the tower (config,
checkpoint path and SHA-256) and refuses to continue into a directory made by a
different tower. Batches have one fixed size (one compilation; the last is padded) and are
sharded over the process's local devices; on a multi-host run each process takes every
process_count-th source shard and keeps its own manifest-processNNN.json, merged into
manifest.json by process 0 at the end. The manifest's last_run gives images/s. Images are resized without a crop (eval preprocessing), as a
random augmentation would make pre-computation wrong (paper, Appendix E).
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'precompute')  # `python -m`: the command, before the heavy imports

import collections
import json
import os
import sys
import time
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import seqio
import tensorflow as tf

import gin
from mlit import job_progress
from mlit.checkpoints import image_weights
from mlit.commands import gin_flags
from mlit.models import fixed_batch, two_tower
from mlit.training import input_pipeline
from tasks import data_stats, file_io, image_preprocessors, precomputed, registration
from tasks.user_error import UserError


def _manifest_name() -> str:
  if jax.process_count() == 1:
    return precomputed.MANIFEST
  return f'manifest-process{jax.process_index():03d}.json'


def shards_of_process(num_shards: int, process_index: int, process_count: int) -> list[int]:
  """The source shards one process embeds: disjoint over processes, together all of them."""
  return list(range(process_index, num_shards, process_count))


def _read_json(path: str) -> dict:
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _write_manifest(directory: str, manifest: dict, name: str = precomputed.MANIFEST) -> None:
  path = os.path.join(directory, name)
  with file_io.atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(manifest, f, indent=1, sort_keys=True)


_PROGRESS_EVERY_S = 60.0


def _remove_unfinished(path: str) -> None:
  """Removes the temporary files of `path` that a killed run left (file_io.atomic_path's
  `path.tmp-PID`, never renamed): this process writes the shard now, so they are no one's."""
  left = tf.io.gfile.glob(f'{path}.tmp-*')
  for tmp in left:
    tf.io.gfile.remove(tmp)
  if left:
    _log(
      f'removed {os.path.basename(left[0])}'
      + (f' and {len(left) - 1} more' if len(left) > 1 else '')
      + ', left unfinished by an interrupted run'
    )


def _log(msg: str) -> None:
  """A progress line on stderr (stdout is the summary); each process of a multi-host run prints its own."""
  prefix = f'process {jax.process_index()}: ' if jax.process_count() > 1 else ''
  print(f'mlit precompute: {prefix}{msg}', file=sys.stderr, flush=True)


def _example(emb: np.ndarray, strings: Mapping[str, bytes]) -> bytes:
  feats = {'image_embedding': tf.train.Feature(float_list=tf.train.FloatList(value=emb))}
  for k, v in strings.items():
    feats[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
  return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def settings_changed(then: Mapping[str, Any], now: Mapping[str, Any]) -> str:
  """'image_size 160 then, 224 now; vit.variant ...' for the keys whose values differ (nested
  dicts by dotted key), or '' when none does."""
  return '; '.join(_changes(then, now, ''))


def _changes(then: Mapping[str, Any], now: Mapping[str, Any], prefix: str) -> list[str]:
  out = []
  for k in [*now, *(k for k in then if k not in now)]:
    a, b = then.get(k), now.get(k)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
      out += _changes(a, b, f'{prefix}{k}.')
    elif a != b:
      out.append(f'{prefix}{k} {a!r} then, {b!r} now')
  return out


@gin.configurable
def precompute(
  task_name: str = gin.REQUIRED,
  output_dir: str = gin.REQUIRED,
  vit: Mapping[str, Any] = gin.REQUIRED,
  checkpoint_path: Optional[str] = None,
  *,
  split: str = 'train',
  image_size: int = 224,
  batch_size: int = 64,
  seed: int = 0,
  kind: str = 'vit',
) -> dict:
  """Writes embedding shards + manifest.json; returns the manifest.

  `vit` is the tower's keyword arguments: a ViT's, or with kind='efficientnet_lite' an
  EfficientNet-Lite's ({'variant': 'lite0'}; checkpoint from mlit.checkpoints.efficientnet_pth).
  """
  gin_flags.check_positive(**{'precompute.batch_size': batch_size})
  if checkpoint_path and not tf.io.gfile.exists(checkpoint_path):
    # Checked first: the readers would name a missing sidecar (.json) of it instead.
    raise UserError(f'precompute.checkpoint_path {checkpoint_path}: no such file')
  model = two_tower.build_image_tower(kind, vit)
  dummy = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  params = jax.jit(model.init)(jax.random.PRNGKey(seed), dummy)['params']  # one compile
  tower = {
    **({'kind': kind} if kind != 'vit' else {}),  # ViT manifests stay as they were
    'vit': {k: list(v) if isinstance(v, tuple) else v for k, v in vit.items()},
    'image_size': image_size,
    'checkpoint': checkpoint_path,
    'checkpoint_sha256': None,
    'init_seed': None if checkpoint_path else seed,
  }
  if not checkpoint_path:  # fine for tests and toys; a LiT tower is pre-trained (paper, Sec. 3)
    _log(
      f'warning: precompute.checkpoint_path (IMAGE_CHECKPOINT_PATH) is None: embedding with a '
      f'randomly initialised tower (seed {seed}), not pre-trained weights'
    )
  if checkpoint_path:
    params, _ = image_weights.load(
      kind, checkpoint_path, params, config=vit, image_size=image_size, strict=True
    )
    tower['checkpoint_sha256'] = file_io.file_sha256(checkpoint_path)
  embed = fixed_batch.FixedBatchApply(
    lambda p, x: model.apply({'params': p}, x)[0], params, batch_size
  )
  if embed.batch_size != batch_size:  # said, as the manifest's last_run records it
    _log(
      f'precompute.batch_size {batch_size} rounded up to {embed.batch_size}, a multiple of the '
      f'{jax.local_device_count()} local devices'
    )

  try:
    task = seqio.get_mixture_or_task(task_name)
  except ValueError as e:
    raise UserError(
      f'PRECOMPUTE_TASK (precompute.task_name) {task_name!r} is not a registered seqio task'
      f'{input_pipeline.close_task_names(task_name)}; import the module that registers it in the '
      'gin file (or --module_import)'
    ) from e
  shards = task.source.list_shards(split)
  features = task.source.get_dataset(split, shuffle=False).element_spec
  if 'image' not in features:
    raise UserError(
      f'precompute.task_name {task_name!r} has no image feature (it has {sorted(features)}): '
      'pre-computation embeds the images of a task that reads them'
    )
  if features['image'].dtype != tf.string:
    raise UserError(
      f"precompute.task_name {task_name!r} gives 'image' as {features['image'].dtype.name} "
      f'{features["image"].shape} (decoded pixels, e.g. a synthetic task): pre-computation reads '
      'encoded image bytes (JPEG/PNG), as the YFCC, CC12M, WIT and ingested-shard tasks give them'
    )
  tf.io.gfile.makedirs(output_dir)
  manifest_path = os.path.join(output_dir, _manifest_name())
  if tf.io.gfile.exists(manifest_path):
    manifest = _read_json(manifest_path)
  else:
    manifest = {
      'task': task_name,
      'split': split,
      'tower': tower,
      'done': {},
      'num_shards': len(shards),
      'complete': False,
    }
  changed = settings_changed(
    {'task': manifest['task'], 'split': manifest.get('split', split), **manifest['tower']},
    {'task': task_name, 'split': split, **tower},
  )
  if changed:
    raise UserError(
      f'{output_dir} holds embeddings made with other settings ({changed}): use another '
      'output_dir (PRECOMPUTE_DIR)'
    )
  images, start, embed_seconds = 0, time.perf_counter(), 0.0

  def _rate(count: int) -> str:
    return f'{count / max(time.perf_counter() - start, 1e-9):.1f} images/s'

  own_shards = shards_of_process(len(shards), jax.process_index(), jax.process_count())
  progress = job_progress.Progress(len(own_shards), 'shards')
  for index in own_shards:
    shard = shards[index]
    out_name = f'embeddings-{index:05d}-of-{len(shards):05d}.tfrecord'
    done = manifest['done'].get(out_name)
    if done is not None:
      size = tf.io.gfile.stat(shard).length
      if done.get('source') == shard and done.get('source_bytes') == size:
        progress.skip()  # resume: finished in an earlier run
        continue
      # The source changed since it was embedded: its embeddings would be stale.
      _log(
        f'shard {index:05d}: {shard} changed since it was embedded ({done.get("source_bytes")} '
        f'-> {size} bytes): embedding it again'
      )
      del manifest['done'][out_name]
    ds = task.source.get_dataset(
      split, shuffle=False, shard_info=seqio.ShardInfo(index, len(shards))
    )
    ds = task.preprocess_precache(ds, seed=seed)
    ds = image_preprocessors.decode_image(ds, train=False, size=image_size)
    n, last_line = 0, time.perf_counter()
    skipped_before = data_stats.snapshot()['skipped_rows']
    _remove_unfinished(os.path.join(output_dir, out_name))
    with (
      file_io.atomic_path(os.path.join(output_dir, out_name)) as tmp,
      tf.io.TFRecordWriter(tmp) as writer,
    ):
      for batch in ds.batch(embed.batch_size).as_numpy_iterator():
        t0 = time.perf_counter()
        emb = np.asarray(embed(batch['image']), np.float32)
        embed_seconds += time.perf_counter() - t0
        strings = {k: v for k, v in batch.items() if k != 'image' and v.dtype == object}
        for i in range(len(emb)):
          writer.write(_example(emb[i], {k: v[i] for k, v in strings.items()}))
        n += len(emb)
        manifest['embedding_dim'] = int(emb.shape[-1])
        manifest['string_features'] = sorted(strings)
        if time.perf_counter() - last_line >= _PROGRESS_EVERY_S:  # large shards: a line a minute
          _log(f'shard {index:05d}: {n:,} images so far, {_rate(images + n)}')
          last_line = time.perf_counter()
    images += n
    progress.advance()
    _log(f'{progress.line(rate_text=_rate(images))} (shard {index:05d}: {n:,} images)')
    skipped = {
      reason: count - skipped_before.get(reason, 0)
      for reason, count in data_stats.snapshot()['skipped_rows'].items()
      if count > skipped_before.get(reason, 0)
    }
    manifest['done'][out_name] = {
      'source': shard,
      'source_bytes': tf.io.gfile.stat(shard).length,
      'examples': n,
      'skipped_rows': skipped,  # malformed rows of this shard, per reason (tasks/data_stats.py)
      'process_index': jax.process_index(),
    }
    if skipped:
      _log(f'shard {index:05d}: skipped {data_stats.reasons_text(skipped)}')
    _write_manifest(output_dir, manifest, _manifest_name())
  seconds = time.perf_counter() - start
  if not images and manifest.get('last_run'):
    _log(f'every shard of {task_name} was already embedded in {output_dir}: nothing to do')
  else:
    manifest['last_run'] = {
      'images': images,
      'seconds': round(seconds, 3),
      'images_per_s': images / seconds if images else None,
      'embed_images_per_s': images / embed_seconds if images else None,
      'batch_size': embed.batch_size,
      'local_devices': [str(d) for d in jax.local_devices()],
      'process_count': jax.process_count(),
    }
  manifest['complete'] = jax.process_count() == 1
  _write_manifest(output_dir, manifest, _manifest_name())
  if jax.process_count() > 1:
    manifest = _merge_process_manifests(output_dir, manifest)
  return manifest


def _merge_process_manifests(output_dir: str, own: dict) -> dict:
  """After every process finished: process 0 writes manifest.json with all shards."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  multihost_utils.sync_global_devices('mlit precompute: every shard written')
  merged = dict(own, done={}, complete=True)
  for i in range(jax.process_count()):
    part = _read_json(os.path.join(output_dir, f'manifest-process{i:03d}.json'))
    merged['done'].update(part['done'])
  if jax.process_index() == 0:
    _write_manifest(output_dir, merged)
  return merged


_EXAMPLE = (
  'mlit precompute --gin_file=precompute.gin --gin_file=my_tasks.gin \\\n'
  '    --gin.PRECOMPUTE_TASK=\\"cc12m\\" --gin.PRECOMPUTE_DIR=\\"/data/cc12m_embeddings\\" \\\n'
  '    --gin.IMAGE_CHECKPOINT_PATH=\\"runs/demo/image_tower.npz\\" --gin.IMAGE_SIZE=160\n'
  '  (gin/precompute.gin: the task, output directory and locked tower, EfficientNet-Lite0 unless\n'
  '  rebound; my_tasks.gin registers the task, e.g. cc12m with its TSV and images: README, Data)'
)


def main(argv: Optional[Sequence[str]] = None) -> int:
  gin_flags.parse_flags(
    list(sys.argv[1:] if argv is None else argv),
    'Pre-compute locked image-tower embeddings of a task (resumable shards + manifest.json).',
    prog='mlit precompute',
    example=_EXAMPLE,
  )
  registration.register_tasks()
  manifest = precompute()
  summary = {k: manifest[k] for k in ('task', 'complete', 'num_shards')}
  run = manifest['last_run']
  summary.update(images=run['images'], seconds=run['seconds'], images_per_s=run['images_per_s'])
  skipped = collections.Counter()
  for shard in manifest['done'].values():
    skipped.update(shard.get('skipped_rows', {}))
  summary['skipped_rows'] = dict(skipped)
  print(json.dumps(summary))
  if not sum(shard.get('examples', 0) for shard in manifest['done'].values()):
    # As mlit ingest: an empty folder would only fail later, when a run reads it.
    reasons = data_stats.reasons_text(skipped) or 'no row read'
    print(
      f'mlit precompute: error: task {manifest["task"]} kept no example in '
      f'{len(manifest["done"]):,} shards (skipped: {reasons}): nothing to train on',
      file=sys.stderr,
    )
    return 2
  return 0
