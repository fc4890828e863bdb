"""Length-bucketed LiT batches: a batch is padded only to the bound its texts need.

A text tower's step costs about in proportion to the padded text length, and caption-like texts
are mostly short: the demo's emoji names and keywords have a median of 4 tokens and 99% fit in
16 of the 24 that the longest names need. Every window of `window` batches' examples (in stream
order) is sorted by token count and cut into `window` batches; each batch is padded to the
smallest bound that fits its longest text, and the window's batches come out in a seeded random
order. With bounds (8, 16, 24) and windows of 32 batches of the demo's data, about 28 of 32
steps run at 8 tokens.

Every example is used once per pass, in a deterministic order (a resumed run skips exactly the
batches it consumed). The cost: in-batch negatives are texts of similar length. Shards read
in one process are padded to their widest part before they are joined.
"""

import logging

import tensorflow as tf

WINDOW = 32  # batches per sorted window
# A window's examples are held in memory at once: 32 batches of 1,024 pre-computed embeddings
# are 0.2 GB, of 1,024 live 160-px images 10 GB (float32), so windows of large examples are
# shortened to fit this.
WINDOW_BYTES = 1 << 30


def check_bounds(bounds, max_length: int) -> tuple[int, ...]:
  """Increasing positive bounds ending at the feature length (added when missing)."""
  out = tuple(int(b) for b in bounds)
  if not out or any(b <= 0 for b in out) or list(out) != sorted(set(out)):
    raise ValueError(f'length_buckets must be increasing positive token counts, got {bounds}')
  if out[-1] > max_length:
    raise ValueError(f'length_buckets {out} exceed the text feature length {max_length}')
  return out if out[-1] == max_length else out + (max_length,)


def width_of(lengths: tf.Tensor, bounds: tuple[int, ...]) -> tf.Tensor:
  """The smallest bound that fits the longest of `lengths` (clipped to the last bound)."""
  longest = tf.minimum(tf.reduce_max(lengths), bounds[-1])
  b = tf.constant(bounds, tf.int32)
  return tf.gather(b, tf.reduce_sum(tf.cast(longest > b[:-1], tf.int32)))


def window_for(element_spec, batch_size: int, max_length: int, most: int = WINDOW) -> int:
  """Batches per window: `most`, fewer when that many batches of these examples would hold more
  than WINDOW_BYTES (a ragged text counted at `max_length`); at least 1, a window of one batch
  still padding it to the bound its texts need."""
  per_example = 0
  for spec in element_spec.values():
    size = spec.dtype.size
    for dim in spec.shape:
      size *= max_length if dim is None else dim
    per_example += size
  fits = WINDOW_BYTES // max(1, per_example * batch_size)
  if fits < most:
    logging.warning(
      'length buckets sort windows of %d batches, not %d: %d batches of these examples '
      '(%.1f MB each) would hold %.1f GB in memory',
      max(1, fits),
      most,
      most,
      per_example * batch_size / 1e6,
      most * per_example * batch_size / 1e9,
    )
  return max(1, min(most, fits))


def batches(
  ds: tf.data.Dataset,
  key: str,
  bounds: tuple[int, ...],
  batch_size: int,
  convert,
  seed: int,
  window: int = WINDOW,
) -> tf.data.Dataset:
  """Sorted-window batches; `convert(ragged_batch, width)` trims and pads them to `width`."""

  def split(index, big):
    lengths = tf.cast(big[key].row_lengths(), tf.int32)
    # Stable sort by length; ties keep stream order (already shuffled upstream).
    order = tf.argsort(lengths, stable=True)
    big = {k: tf.gather(v, order) for k, v in big.items()}
    lengths = tf.gather(lengths, order)
    chunks = tf.random.experimental.stateless_shuffle(
      tf.range(window, dtype=tf.int32), seed=tf.stack([tf.cast(seed, tf.int64), index])
    )

    def chunk(i):
      rows = tf.range(i * batch_size, (i + 1) * batch_size)
      part = {k: tf.gather(v, rows) for k, v in big.items()}
      return convert(part, width_of(tf.gather(lengths, rows), bounds))

    return tf.data.Dataset.from_tensor_slices(chunks).map(chunk)

  window = window_for(ds.element_spec, batch_size, bounds[-1], window)
  big = ds.ragged_batch(window * batch_size, drop_remainder=True).enumerate()
  return big.flat_map(split)
