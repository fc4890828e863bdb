"""Pre-computation throughput: the locked ViT's images/s and MFU, and the shard reader's images/s.

`embed` times mlit precompute's own batch function (mlit.models.fixed_batch over the local
devices) on a fixed batch already in memory; `read` times reading image shards as mlit does
(tasks.shard_tasks: webdataset tar or mlit TFRecord, Pillow check, tf.data decode + resize to the
tower's input, batching) on JPEGs written here. Whichever is lower bounds a pre-computation job
per host.
"""

import functools
import io
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf
from PIL import Image

from benchmarks import model_shapes, timing
from mlit.models import fixed_batch, image_tower
from tasks import image_preprocessors, image_shards, row_source, shard_tasks


def embed_throughput(
  vit: str,
  *,
  image_size: int,
  batch: int,
  warmup: int,
  repeats: int,
  peak_gflops: float,
  dtype: str = 'float32',
) -> dict:
  model = image_tower.ViT(**dict(model_shapes.vit_kwargs(vit), pool_type='tok', dtype=dtype))
  x = np.random.default_rng(0).uniform(-1, 1, (batch, image_size, image_size, 3))
  x = x.astype(np.float32)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.asarray(x[:1]))['params']
  apply = fixed_batch.FixedBatchApply(lambda p, b: model.apply({'params': p}, b)[0], params, batch)
  t = timing.seconds(lambda: apply(x), warmup=warmup, repeats=repeats)
  flops = apply.batch_size * model_shapes.vit_forward_flops(vit, image_size)
  gflops = flops / t['median_s'] / 1e9
  return {
    'vit': vit,
    'image_size': image_size,
    'batch': apply.batch_size,
    'dtype': dtype,
    'devices': len(jax.local_devices()),
    'time': t,
    'images_per_s': apply.batch_size / t['median_s'],
    'model_gflops_per_s': gflops,
    'mfu': gflops / peak_gflops,
  }


def _jpeg(rng, size: int) -> bytes:
  # Smooth noise compresses like a photo more than white noise does.
  small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
  image = Image.fromarray(small).resize((size, size), Image.BILINEAR)
  buf = io.BytesIO()
  image.save(buf, 'JPEG', quality=90)
  return buf.getvalue()


def write_shards(directory: str, n_images: int, source_size: int) -> dict:
  """The same JPEGs as a webdataset tar and as an mlit TFRecord shard; {format: path}."""
  import tarfile  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  images = [_jpeg(rng, source_size) for _ in range(n_images)]
  tar_path = os.path.join(directory, 'bench-00000.tar')
  with tarfile.open(tar_path, 'w') as tar:
    for i, data in enumerate(images):
      for ext, payload in (('jpg', data), ('txt', f'caption {i}'.encode())):
        info = tarfile.TarInfo(f'{i:09d}.{ext}')
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
  record_path = os.path.join(directory, 'bench-00000.tfrecord')
  with tf.io.TFRecordWriter(record_path) as w:
    for i, data in enumerate(images):
      w.write(image_shards.project_example({'example_id': f'{i:09d}', 'text': 'c', 'image': data}))
  return {'webdataset_tar': tar_path, 'mlit_tfrecord': record_path}


def read_throughput(path: str, *, image_size: int, batch: int, repeats: int) -> dict:
  """Images/s through the shard reader + decode/resize + batching (one pass per repeat)."""
  keys = ('example_id', 'image', 'language', 'text')
  source = row_source.RowSource(
    functools.partial(shard_tasks.read_shard_examples, text_features=('text',)),
    {k: tf.TensorSpec((), tf.string) for k in keys},
    {'train': path},
  )
  times, n = [], 0
  for _ in range(repeats):
    ds = source.get_dataset('train', shuffle=False)
    ds = image_preprocessors.decode_image(ds, train=False, size=image_size)
    ds = ds.batch(batch).prefetch(tf.data.AUTOTUNE)
    t0 = time.perf_counter()
    n = sum(len(b['image']) for b in ds.as_numpy_iterator())
    times.append(time.perf_counter() - t0)
  t = timing.summary(times)
  return {'images': n, 'time': t, 'images_per_s': n / t['median_s']}


def run(
  vit: str,
  *,
  image_size: int,
  batch: int,
  warmup: int,
  repeats: int,
  peak_gflops: float,
  n_images: int,
  source_size: int,
  dtype: str = 'float32',
) -> dict:
  out = {
    'embed': embed_throughput(
      vit,
      image_size=image_size,
      batch=batch,
      warmup=warmup,
      repeats=repeats,
      peak_gflops=peak_gflops,
      dtype=dtype,
    ),
    'read': {'source_image_size': source_size},
  }
  with tempfile.TemporaryDirectory() as d:
    for name, path in write_shards(d, n_images, source_size).items():
      out['read'][name] = read_throughput(
        path, image_size=image_size, batch=batch, repeats=max(1, repeats - 1)
      )
  read_best = max(r['images_per_s'] for r in out['read'].values() if isinstance(r, dict))
  out['bound'] = 'read' if read_best < out['embed']['images_per_s'] else 'embed'
  return out
