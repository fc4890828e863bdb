"""Labelled images for zero-shot classification: a prepared TFDS dataset or embeddings.

TFDS: `tfds.builder(name, data_dir=...)` of an already prepared dataset (imagenet2012
'validation', imagenet_v2 'test', cifar100 'test', ...); nothing is ever downloaded.
Images are resized to image_size x image_size (no crop) and scaled to [-1, 1]; an image that
cannot be decoded is left out with a warning naming the first (`n_unreadable`).
`multilabel_key` (e.g. 'real_label' of imagenet2012_real) adds label sets for the
"any correct" metrics.

Embeddings (.npz): 'embeddings' float [N, D], 'labels' int [N], optional
'multi_labels' int [N, K] padded with -1.
"""

import logging
from typing import Iterator

import numpy as np

from eval_multilingual.datasets import image_store
from tasks.user_error import UserError

Batch = tuple[np.ndarray, np.ndarray, list[list[int]] | None]


class TfdsImages:
  kind = 'image'

  def __init__(
    self,
    name: str,
    split: str,
    data_dir: str | None = None,
    image_size: int = 224,
    label_key: str = 'label',
    multilabel_key: str | None = None,
    max_examples: int | None = None,
  ):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    image_store.check_image_size(image_size)
    self.builder = tfds.builder(name, data_dir=data_dir)
    if not self.builder.is_prepared():
      raise FileNotFoundError(
        f'TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} '
        f'(looked in {self.builder.data_path}); prepare it with tfds first, the '
        'evaluation never downloads'
      )
    if split not in self.builder.info.splits:
      raise UserError(
        f'TFDS dataset {name!r} in {self.builder.data_dir} has splits '
        f'{list(self.builder.info.splits)}, not {split!r} (TfdsImages.split)'
      )
    feats = self.builder.info.features
    for key in ('image', label_key) + ((multilabel_key,) if multilabel_key else ()):
      if key not in feats:
        raise UserError(f'TFDS dataset {name!r} has no feature {key!r} (has {list(feats)})')
    self.name_key = 'file_name' if 'file_name' in feats else None
    self.n_unreadable = 0  # images of the last batches() pass that could not be decoded
    self.name, self.split, self.image_size = name, split, image_size
    self.label_key, self.multilabel_key, self.max_examples = label_key, multilabel_key, max_examples
    self.cache_key = (
      f'tfds:{name}:{split}:{data_dir}:{image_size}:{label_key}:{multilabel_key}:{max_examples}'
    )

  def batches(self, batch_size: int) -> Iterator[Batch]:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    ds = self._encoded()
    size = self.image_size

    def prep(ex):
      # Decoded here, as TFDS's Image feature would, so a file that fails drops alone.
      img = tf.io.decode_image(ex['image'], channels=3, expand_animations=False)
      img = tf.image.resize(tf.cast(img, tf.float32), (size, size), antialias=True)
      out = {'image': img / 127.5 - 1.0, 'label': ex[self.label_key]}
      if self.multilabel_key:
        out['multi'] = ex[self.multilabel_key]
      if self.name_key:
        out['name'] = ex[self.name_key]
      return out

    ds = ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    if self.multilabel_key:
      ds = ds.padded_batch(
        batch_size,
        padding_values={
          'image': 0.0,
          'label': tf.constant(0, tf.int64),
          'multi': tf.constant(-1, tf.int64),
        },
      )
    else:
      ds = ds.batch(batch_size)
    n, seen = 0, set()
    for b in ds.as_numpy_iterator():
      sets = None
      if self.multilabel_key:
        sets = [[int(v) for v in row if v >= 0] for row in b['multi']]
      n += len(b['label'])
      if self.name_key:
        seen.update(b['name'].tolist())
      yield b['image'].astype(np.float32), b['label'].astype(np.int64), sets
    self._count_unreadable(n, seen)

  def _encoded(self):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    ds = self.builder.as_dataset(
      split=self.split, shuffle_files=False, decoders={'image': tfds.decode.SkipDecoding()}
    )
    return ds.take(self.max_examples) if self.max_examples else ds

  def _count_unreadable(self, n: int, seen: set) -> None:
    total = self.builder.info.splits[self.split].num_examples
    total = min(total, self.max_examples) if self.max_examples else total
    self.n_unreadable = total - n
    if self.n_unreadable <= 0:
      return
    first = ''
    if self.name_key:  # a second pass over the names only, when some image failed
      names = self._encoded().map(lambda ex: ex[self.name_key]).as_numpy_iterator()
      bad = [v.decode('utf-8', 'replace') for v in names if v not in seen]
      first = f' (first: {", ".join(bad[:3])})'
    logging.warning(
      'TFDS %s %s: %d of %d images cannot be decoded, left out%s',
      self.name,
      self.split,
      self.n_unreadable,
      total,
      first,
    )


class EmbeddingImages:
  kind = 'embedding'

  def __init__(self, path: str):
    with np.load(path, allow_pickle=False) as z:
      for key in ('embeddings', 'labels'):
        if key not in z:
          raise KeyError(f'{path}: missing array {key!r} (has {list(z.keys())})')
      self.embeddings = z['embeddings'].astype(np.float32)
      self.labels = z['labels'].astype(np.int64)
      self.multi = z['multi_labels'].astype(np.int64) if 'multi_labels' in z else None
    if self.embeddings.ndim != 2 or len(self.labels) != len(self.embeddings):
      raise ValueError(
        f'{path}: embeddings {self.embeddings.shape} and labels {self.labels.shape} do not match'
      )
    self.name = self.cache_key = f'npz:{path}'

  def batches(self, batch_size: int) -> Iterator[Batch]:
    for s in range(0, len(self.labels), batch_size):
      sets = None
      if self.multi is not None:
        sets = [[int(v) for v in row if v >= 0] for row in self.multi[s : s + batch_size]]
      yield self.embeddings[s : s + batch_size], self.labels[s : s + batch_size], sets
