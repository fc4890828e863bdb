"""Length-bucketed LiT batches: a batch is padded only to the bound its texts need.

A text tower's step costs about in proportion to the padded text length, and caption-like texts
are mostly short: the demo's emoji names and keywords have a median of 4 tokens and 99% fit in
16 of the 24 that the longest names need. With bounds (8, 16, 24) every batch holds texts of one
bucket (previous bound < tokens <= bound) padded to its bound, so most steps run at 8 tokens.

Every shard and process must agree on the padded length of step s (their batches are
concatenated): the bucket of step s is drawn from a sequence seeded by (seed, s) with each
bucket's share of the texts, estimated from the first `SAMPLE` examples of shard 0 of the
shuffled stream. Each bucket reads its own pass of the repeated stream, so over many steps each
text is seen about as often as without buckets, and a resumed run skips exactly the batches it
consumed. The cost: in-batch negatives are texts of similar length.
"""

import dataclasses
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

SAMPLE = 8192  # examples read to estimate the buckets' shares


@dataclasses.dataclass(frozen=True)
class LengthBuckets:
  """Bucket upper bounds (tokens, increasing, the last = the feature length) and shares."""

  bounds: tuple[int, ...]
  shares: tuple[float, ...]
  seed: int = 0

  def __post_init__(self):
    if len(self.bounds) != len(self.shares):
      raise ValueError(f'{len(self.bounds)} bounds but {len(self.shares)} shares')
    if not np.isclose(sum(self.shares), 1.0):
      raise ValueError(f'bucket shares must sum to 1, got {self.shares}')


def check_bounds(bounds: Sequence[int], max_length: int) -> tuple[int, ...]:
  """Increasing positive bounds ending at the feature length (added when missing)."""
  out = tuple(int(b) for b in bounds)
  if not out or any(b <= 0 for b in out) or list(out) != sorted(set(out)):
    raise ValueError(f'length_buckets must be increasing positive token counts, got {bounds}')
  if out[-1] > max_length:
    raise ValueError(f'length_buckets {out} exceed the text feature length {max_length}')
  return out if out[-1] == max_length else out + (max_length,)


def _bucket(tokens: tf.Tensor, bounds: tuple[int, ...]) -> tf.Tensor:
  n = tf.minimum(tf.shape(tokens)[0], bounds[-1])
  return tf.reduce_sum(tf.cast(n > tf.constant(bounds[:-1], tf.int32), tf.int32))


def estimate(
  ds: tf.data.Dataset, key: str, bounds: tuple[int, ...], seed: int, sample: int = SAMPLE
) -> LengthBuckets:
  """Shares of each bucket among the first `sample` examples of `ds` (unbatched)."""
  counts = np.zeros(len(bounds), np.int64)
  for b in ds.take(sample).map(lambda ex: _bucket(ex[key], bounds)).as_numpy_iterator():
    counts[b] += 1
  if not counts.sum():
    raise ValueError(f'no examples to estimate length buckets from (feature {key!r})')
  return LengthBuckets(bounds, tuple(float(c) for c in counts / counts.sum()), seed)


def batches(
  ds: tf.data.Dataset,
  key: str,
  buckets: LengthBuckets,
  batch_size: int,
  convert: Callable[[dict, int], dict],
) -> tf.data.Dataset:
  """Batches of one bucket each; `convert(ragged_batch, length)` pads them to the bound."""
  bounds = buckets.bounds
  live = [i for i, s in enumerate(buckets.shares) if s > 0]  # an empty bucket would never fill
  parts = []
  for i in live:
    part = ds.filter(lambda ex, i=i: tf.equal(_bucket(ex[key], bounds), i))
    part = part.ragged_batch(batch_size, drop_remainder=True)
    parts.append(
      part.map(lambda b, n=bounds[i]: convert(b, n), num_parallel_calls=tf.data.AUTOTUNE)
    )
  logits = tf.math.log(tf.constant([buckets.shares[i] for i in live], tf.float32))[None]

  def choose(step):
    seed = tf.stack([tf.constant(buckets.seed, tf.int64), step])
    return tf.cast(tf.random.stateless_categorical(logits, 1, seed)[0, 0], tf.int64)

  choice = tf.data.Dataset.counter().map(choose)
  return tf.data.Dataset.choose_from_datasets(parts, choice)
