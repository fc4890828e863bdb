"""seqio tasks over TFRecord files the trainer tests write themselves.

`write_data(dir)` writes two TFRecord shards of tf.train.Examples (random
'image_embedding' [DIM], random token texts 'text', and three YFCC-like
signals 'title'/'description'/'tags', some empty). Importing this module with
MLIT_TEST_TASK_DIR set registers, over the files in that directory:

  lit_test_embeddings        'text' + 'image_embedding'
  lit_test_multi_signal      'title', 'description', 'tags' + 'image_embedding'
  lit_test_slow              as lit_test_embeddings, ~20 ms per example
                             (so a test can kill a run between checkpoints)
  lit_test_nan_after_<N>     as lit_test_embeddings, but examples from the
                             N-th on (per shard) carry a NaN embedding
"""

import os
import time

import numpy as np
import seqio
import tensorflow as tf

DIM = 16
VOCAB = 64
EXAMPLES_PER_SHARD = 256
_SIGNALS = ('text', 'title', 'description', 'tags')


def _int_feature(v):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))


def write_data(directory: str, seed: int = 0) -> list[str]:
  """Writes train-0000{0,1}-of-00002.tfrecord; returns their paths."""
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(seed)
  paths = []
  for shard in range(2):
    path = os.path.join(directory, f'train-{shard:05d}-of-00002.tfrecord')
    with tf.io.TFRecordWriter(path) as w:
      for _ in range(EXAMPLES_PER_SHARD):
        feats = {
          'image_embedding': tf.train.Feature(
            float_list=tf.train.FloatList(value=rng.normal(size=DIM).astype(np.float32))
          )
        }
        for name in _SIGNALS:
          n = int(rng.integers(0, 6)) if name != 'text' else int(rng.integers(1, 12))
          feats[name] = _int_feature(rng.integers(2, VOCAB, size=n))
        w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    paths.append(path)
  return paths


@seqio.map_over_dataset
def _densify(ex):
  out = {}
  for k, v in ex.items():
    if isinstance(v, tf.SparseTensor):
      v = tf.sparse.to_dense(v)
    out[k] = tf.cast(v, tf.int32) if v.dtype == tf.int64 else v
  return out


def _slow(ds):
  def sleep(ex):
    tf.py_function(lambda: time.sleep(0.02), [], [])
    return ex

  return ds.map(sleep)


def _with_language(ds):
  """A 'language' per example, as multilingual tasks give it (the runs count examples per
  language): 'en' or 'de' by the sign of the first embedding value."""
  return ds.map(lambda ex: {**ex, 'language': tf.where(ex['image_embedding'][0] > 0, 'en', 'de')})


def _nan_after(n):
  def fn(ds):
    ds = ds.enumerate()
    return ds.map(
      lambda i, ex: {
        **ex,
        'image_embedding': tf.where(i >= n, tf.fill([DIM], float('nan')), ex['image_embedding']),
      }
    )

  return fn


def _register(name, directory, text_keys, extra=()):
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  description = {'image_embedding': tf.io.FixedLenFeature([DIM], tf.float32)}
  description.update({k: tf.io.VarLenFeature(tf.int64) for k in text_keys})
  text = seqio.Feature(
    seqio.PassThroughVocabulary(size=VOCAB, eos_id=1), add_eos=True, dtype=tf.int32
  )
  features = {k: text for k in text_keys}
  features['image_embedding'] = seqio.Feature(
    seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.float32
  )
  seqio.TaskRegistry.add(
    name,
    source=seqio.TFExampleDataSource(
      {'train': os.path.join(directory, 'train-*.tfrecord')}, feature_description=description
    ),
    preprocessors=[*extra, _densify, seqio.preprocessors.append_eos_after_trim],
    output_features=features,
    shuffle_buffer_size=32,
  )


def register(directory: str) -> None:
  _register('lit_test_embeddings', directory, ('text',))
  _register('lit_test_multi_signal', directory, ('title', 'description', 'tags'))
  _register('lit_test_slow', directory, ('text',), (_slow, _with_language))
  for n in (40, 100):
    _register(f'lit_test_nan_after_{n}', directory, ('text',), (_nan_after(n),))


if os.environ.get('MLIT_TEST_TASK_DIR'):
  register(os.environ['MLIT_TEST_TASK_DIR'])
