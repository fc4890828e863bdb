"""The trainer's input pipeline feeding a benchmarked step.

Registers a seqio task of random token texts and pre-computed image
embeddings of the benchmarked shape (an in-memory source; the rest is the
trainer's own path: seqio -> LiTFeatureConverter batches -> prefetch ->
NumPy via mlit.training.input_pipeline.make_input) and returns its batch
iterator. The texts' lengths vary (1..length tokens + EOS), as real captions do.
"""

import functools

import numpy as np
import seqio
import tensorflow as tf

from mlit.training import input_pipeline


def _dataset_fn(split, shuffle_files, seed=None, *, n, vocab, dim, length):
  del split, shuffle_files, seed  # One in-memory split: nothing to shuffle.
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, length, size=n)
  texts = [rng.integers(2, vocab, size=k).astype(np.int32) for k in lengths]
  emb = rng.standard_normal((n, dim)).astype(np.float32)
  return tf.data.Dataset.from_tensor_slices(
    {'text': tf.ragged.constant(texts, dtype=tf.int32), 'image_embedding': emb}
  )


def register(vocab: int, dim: int, length: int, n: int) -> str:
  """The task's name (registered once per shape)."""
  name = f'mlit_bench_embeddings_v{vocab}_d{dim}_l{length}_n{n}'
  if name in seqio.TaskRegistry.names():
    return name
  seqio.TaskRegistry.add(
    name,
    source=seqio.FunctionDataSource(
      functools.partial(_dataset_fn, n=n, vocab=vocab, dim=dim, length=length),
      splits=['train'],
      num_input_examples={'train': n},
    ),
    preprocessors=[seqio.preprocessors.append_eos_after_trim],
    output_features={
      'text': seqio.Feature(
        seqio.PassThroughVocabulary(size=vocab, eos_id=1), add_eos=True, dtype=tf.int32
      ),
      'image_embedding': seqio.Feature(
        seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.float32, rank=1
      ),
    },
    shuffle_buffer_size=1024,
  )
  return name


def batches(vocab: int, dim: int, length: int, batch: int):
  """An endless iterator of the trainer's NumPy batches {'text', 'image_embedding'}."""
  name = register(vocab, dim, length, n=4 * batch)
  it, info = input_pipeline.make_input(name, {'text': length}, batch, seed=0, shuffle=True)
  if info.image_key != 'image_embedding' or info.text_keys != ('text',):
    raise AssertionError(f'unexpected batch layout {info}')
  return it
