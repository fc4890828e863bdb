"""Decode encoded image bytes into the ViT's input: [size, size, 3] float32 in [-1, 1].

Training uses an Inception crop (random area 5-100%, aspect 3/4-4/3) plus a random
horizontal flip; evaluation resizes the whole image (no crop), as in the paper.
"""

import functools

import seqio
import tensorflow as tf

import gin


def _to_range(image, size):
  image = tf.clip_by_value(tf.cast(image, tf.float32), 0, 255) / 127.5 - 1.0
  return tf.ensure_shape(image, (size, size, 3))  # slicing loses static shapes


@gin.configurable
def decode_image(
  dataset: tf.data.Dataset, *, train: bool = True, size: int = 224, area_min: float = 0.05
) -> tf.data.Dataset:
  """seqio preprocessor: 'image' bytes -> float32 [size, size, 3] in [-1, 1]."""
  if train:
    return _train_map(dataset, size=size, area_min=area_min)

  @seqio.map_over_dataset
  def resize(ex):
    image = tf.io.decode_image(ex['image'], channels=3, expand_animations=False)
    image = tf.image.resize(image, (size, size), method='bilinear', antialias=True)
    return {**ex, 'image': _to_range(image, size)}

  return resize(dataset)


def _train_map(dataset, *, size, area_min):
  @seqio.map_over_dataset(num_seeds=2)
  def crop(ex, seeds):
    # decode_image (not decode_and_crop_jpeg) so PNG/GIF work too.
    image = tf.io.decode_image(ex['image'], channels=3, expand_animations=False)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image),
      tf.zeros([0, 0, 4], tf.float32),
      seed=seeds[0],
      area_range=(area_min, 1.0),
      aspect_ratio_range=(3 / 4, 4 / 3),
      min_object_covered=0.0,
      use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, (size, size), method='bilinear', antialias=True)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    return {**ex, 'image': _to_range(image, size)}

  return crop(dataset)


train_images = functools.partial(decode_image, train=True)
eval_images = functools.partial(decode_image, train=False)
