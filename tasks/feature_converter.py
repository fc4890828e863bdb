"""seqio feature converter for LiT: padded text features plus an image input.

Task features -> model features:
  every text feature F (int32 token ids) -> F int32 [L_F], padded with 0; when
    a text was truncated its last token is forced to EOS (id 1), the "sticky"
    EOS of contrastive text towers;
  'image' float32 [H, W, 3] or 'image_embedding' float32 [D] passes through;
  optional scalar extras ('bt_fired', 'bt_texts', 'bt_candidates', 'bt_other_text', 'language',
    'truncated/<feature>') pass through when present.
LiT never packs examples (each example is one image-text pair), so pack=True
is refused.
"""

from typing import Mapping, Sequence

import seqio
import tensorflow as tf

from tasks import backtranslation, length_buckets
from tasks.user_error import UserError

EOS_ID = 1
IMAGE_KEYS = ('image', 'image_embedding')
_Spec = seqio.FeatureConverter.FeatureSpec


def sticky_eos(tokens: tf.Tensor, length: int) -> tf.Tensor:
  """Trims to `length`; a truncated text keeps EOS as its last token.

  A text that already fills `length` tokens but does not end in EOS was cut
  (seqio's own trimming or ours), since tasks tokenize with add_eos=True.
  """
  tokens = tokens[:length]
  n = tf.shape(tokens)[0]
  # Slicing (not indexing) keeps empty texts safe.
  cut = tf.logical_and(tf.equal(n, length), tf.reduce_any(tf.not_equal(tokens[-1:], EOS_ID)))
  fixed = tf.concat([tokens[: length - 1], tf.constant([EOS_ID], tokens.dtype)], axis=0)
  return tf.cond(cut, lambda: fixed, lambda: tokens)


def sticky_eos_batch(tokens: tf.RaggedTensor, length) -> tf.Tensor:
  """sticky_eos on every row of a ragged [B, None] batch, padded to [B, length]
  (`length` an int, or an int32 scalar tensor for per-batch widths)."""
  tokens = tokens[:, :length]
  n = tf.cast(tokens.row_lengths(), tf.int32)
  # A trailing 0 keeps the gather in range when every row is empty.
  flat = tf.concat([tokens.flat_values, tf.zeros([1], tokens.dtype)], axis=0)
  last = tf.gather(flat, tf.maximum(tokens.row_limits() - 1, 0))
  cut = tf.logical_and(tf.equal(n, length), tf.not_equal(last, EOS_ID))
  dense = tokens.to_tensor(default_value=0)
  dense = tf.pad(dense, [[0, 0], [0, length - tf.shape(dense)[1]]])
  if isinstance(length, int):
    dense = tf.ensure_shape(dense, [None, length])
  eos_col = tf.one_hot(length - 1, length, on_value=True, off_value=False, dtype=tf.bool)
  fix = tf.logical_and(cut[:, None], eos_col[None, :])
  return tf.where(fix, tf.constant(EOS_ID, dense.dtype), dense)


class LiTFeatureConverter(seqio.FeatureConverter):
  """Pads text features, passes the image (or its embedding) through."""

  TASK_FEATURES = {}
  MODEL_FEATURES = {}
  PACKING_FEATURE_DTYPES = {}

  def __init__(
    self,
    pack: bool = False,
    use_custom_packing_ops: bool = False,
    apply_length_check: bool = True,
    bos_id: int = 0,
    passthrough_keys: Sequence[str] = (*backtranslation.COUNTED_FEATURES, 'language'),
    passthrough_prefixes: Sequence[str] = ('truncated/',),
    image_key: str | None = None,
  ):
    if pack:
      raise ValueError(
        'LiTFeatureConverter(pack=True): LiT does not pack examples (one '
        'image-text pair per row, the contrastive loss needs them aligned); '
        'use pack=False'
      )
    if image_key is not None and image_key not in IMAGE_KEYS:
      raise ValueError(f'image_key must be one of {IMAGE_KEYS}, got {image_key!r}')
    self._passthrough_keys = tuple(passthrough_keys)
    self._passthrough_prefixes = tuple(passthrough_prefixes)
    self._image_key = image_key
    # Filled per call from the dataset (text feature names vary by task).
    self.TASK_FEATURES = {}
    self.MODEL_FEATURES = {}
    super().__init__(
      pack=False,
      use_custom_packing_ops=use_custom_packing_ops,
      apply_length_check=apply_length_check,
      bos_id=bos_id,
    )

  def _find_image_key(self, spec) -> str | None:
    if self._image_key is not None:
      if self._image_key not in spec:
        raise ValueError(f'dataset has no {self._image_key!r} feature; it has {sorted(spec)}')
      return self._image_key
    present = [k for k in IMAGE_KEYS if k in spec]
    if len(present) > 1:
      raise ValueError(f'dataset has both {present}: set image_key to choose')
    return present[0] if present else None

  def _plan(
    self, spec, task_feature_lengths: Mapping[str, int]
  ) -> tuple[dict[str, int], dict[str, int]]:
    """Checks the task's features; returns (text lengths, all model lengths)
    and sets TASK_FEATURES / MODEL_FEATURES."""
    text_lengths = {k: int(v) for k, v in task_feature_lengths.items() if k not in IMAGE_KEYS}
    for k in text_lengths:
      if k not in spec:
        yfcc = (
          ' (title, description and tags are the YFCC signals: yfcc_per_batch.gin and the '
          'YFCC run files are for YFCC tasks)'
          if k in ('title', 'description', 'tags')
          else ''
        )
        raise UserError(
          f"TASK_FEATURE_LENGTHS names {k!r} but the task's features are {sorted(spec)}{yfcc}"
        )
      if not spec[k].dtype.is_integer or len(spec[k].shape) != 1:
        raise ValueError(
          f'text feature {k!r} must be rank-1 integer token '
          f'ids, got {spec[k].dtype.name} {spec[k].shape}'
        )
    image_key = self._find_image_key(spec)
    lengths = dict(text_lengths)
    features = {k: _Spec(dtype=spec[k].dtype) for k in text_lengths}
    if image_key is not None:
      shape = spec[image_key].shape
      want_rank = 3 if image_key == 'image' else 1
      if len(shape) != want_rank or spec[image_key].dtype != tf.float32:
        raise ValueError(
          f'feature {image_key!r} must be float32 of rank '
          f'{want_rank}, got {spec[image_key].dtype.name} {shape}'
        )
      if shape[0] is None:
        raise ValueError(
          f'feature {image_key!r} has no static shape ({shape}); the task must give it a fixed size'
        )
      lengths[image_key] = int(shape[0])
      features[image_key] = _Spec(dtype=tf.float32, rank=want_rank)
    passthrough = [
      k for k in spec if k in self._passthrough_keys or k.startswith(self._passthrough_prefixes)
    ]
    for k in passthrough:
      if len(spec[k].shape) != 0:
        raise ValueError(f'passthrough feature {k!r} must be a scalar')
      lengths[k] = 0
      features[k] = _Spec(dtype=spec[k].dtype, rank=0)
    self.TASK_FEATURES = features
    self.MODEL_FEATURES = features
    self._text_lengths = text_lengths
    return text_lengths, lengths

  def __call__(
    self, ds: tf.data.Dataset, task_feature_lengths: Mapping[str, int]
  ) -> tf.data.Dataset:
    text_lengths, lengths = self._plan(ds.element_spec, task_feature_lengths)
    # seqio validates input lengths <= task lengths; texts may arrive untrimmed.
    ds = ds.map(
      lambda ex: {**ex, **{k: sticky_eos(ex[k], n) for k, n in text_lengths.items()}},
      num_parallel_calls=tf.data.AUTOTUNE,
    )
    return super().__call__(ds, lengths)

  def batched(
    self,
    ds: tf.data.Dataset,
    task_feature_lengths: Mapping[str, int],
    batch_size: int,
    drop_remainder: bool = True,
    length_bounds: tuple[int, ...] | None = None,
    seed: int = 0,
  ) -> tf.data.Dataset:
    """The same batches as `self(ds, lengths).batch(batch_size)`, converted a
    batch at a time; with `length_bounds`, sorted-window batches each padded only
    to the bound its texts need (tasks/length_buckets.py; one text feature).

    Per-example maps cost tf.data ~0.1 ms of host CPU each (measured on the
    emoji task), which a small host's train step shares; one map per batch
    of ragged texts does the trimming, sticky EOS and padding at once.
    """
    text_lengths, _ = self._plan(ds.element_spec, task_feature_lengths)
    keys = list(self.MODEL_FEATURES)

    def convert(batch, width=None):
      out = {k: batch[k] for k in keys}
      for k, n in text_lengths.items():
        out[k] = sticky_eos_batch(batch[k], n if width is None else width)
      return out

    if length_bounds is None:
      return ds.ragged_batch(batch_size, drop_remainder=drop_remainder).map(
        convert, num_parallel_calls=tf.data.AUTOTUNE
      )
    (key, length), *others = text_lengths.items()
    if others or length_bounds[-1] != length or not drop_remainder:
      raise ValueError(
        f'length buckets {length_bounds} need one text feature whose length is the last bound '
        f'and full batches; got text lengths {text_lengths}'
      )
    return length_buckets.batches(ds, key, length_bounds, batch_size, convert, seed)

  def _convert_features(
    self, ds: tf.data.Dataset, task_feature_lengths: Mapping[str, int]
  ) -> tf.data.Dataset:  # seqio's per-example hook
    keys = list(self.MODEL_FEATURES)

    def convert(ex):
      out = {k: ex[k] for k in keys}
      for k, n in self._text_lengths.items():
        t = ex[k]  # already trimmed with sticky EOS in __call__
        t = tf.pad(t, [[0, n - tf.shape(t)[0]]])
        out[k] = tf.ensure_shape(t, [n])
      return out

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)

  def get_model_feature_lengths(self, task_feature_lengths: Mapping[str, int]) -> Mapping[str, int]:
    return dict(task_feature_lengths)
