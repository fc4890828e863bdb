"""Trim token sequences with a sticky EOS and count how many texts were truncated."""

import numpy as np
import seqio
import tensorflow as tf

from tasks import data_stats


def _counter(feature: str):
  def count(length, limit):
    data_stats.count_text(feature, bool(length > limit))
    return np.int32(0)
  return count


def trim_and_count(dataset: tf.data.Dataset, output_features, sequence_length=None):
  """Like seqio's append_eos_after_trim (last token = EOS when a text is cut), counting
  texts longer than length - 1 tokens per feature in tasks.data_stats."""
  if sequence_length is None:
    return seqio.preprocessors.append_eos_after_trim(dataset, output_features, None)
  names = [k for k, f in output_features.items()
           if f.add_eos and k in sequence_length and sequence_length[k]]

  def count(ex):
    deps = [tf.numpy_function(_counter(k), [tf.size(ex[k]), sequence_length[k] - 1],
                              tf.int32, stateful=True) for k in names]
    with tf.control_dependencies(deps):
      return {k: tf.identity(v) for k, v in ex.items()}

  dataset = dataset.map(count, num_parallel_calls=tf.data.AUTOTUNE)
  return seqio.preprocessors.append_eos_after_trim(dataset, output_features,
                                                   sequence_length)
