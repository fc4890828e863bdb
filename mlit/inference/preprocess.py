"""Images -> the model's input: RGB, resized to size x size (whole image, no crop, bilinear, as
the evaluation protocol), float32 in [-1, 1] (the image contract of mlit's towers).

Pixels are read as stored, like TensorFlow's decode in training and the evaluation's Pillow: an
alpha channel is dropped (the colour stored under transparent pixels shows), an EXIF orientation
is not applied and an animation gives its first frame. 16-bit samples keep their top 8 bits.
"""

import os
from typing import Any, Sequence

import numpy as np

from tasks.user_error import UserError


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
  """uint8 [..., 3] -> float32 in [-1, 1]."""
  return np.asarray(pixels).astype(np.float32) * (2.0 / 255.0) - 1.0


def _pil(image: Any, where: str):
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top

  if isinstance(image, Image.Image):
    return image
  if isinstance(image, (str, os.PathLike)):
    try:
      with Image.open(image) as im:
        im.load()
        return im
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
      hint = ' (PIL.Image.MAX_IMAGE_PIXELS sets the limit)' if 'bomb' in str(e) else ''
      raise UserError(f'{os.fspath(image)}: not a readable image ({e}){hint}') from e
  arr = np.asarray(image)
  if (
    arr.dtype != np.uint8
    or arr.ndim not in (2, 3)
    or (arr.ndim == 3 and arr.shape[-1] not in (3, 4))
  ):
    raise UserError(
      f'{where}: expected a PIL image, a file path or a uint8 array [H, W(, 3|4)], '
      f'got {arr.dtype} {arr.shape}'
    )
  return Image.fromarray(arr)


def to_rgb(im, where: str):
  """A PIL image -> RGB. convert('RGB') clips 16-bit grey (PNG, TIFF: mode I;16) to white above
  255, so those keep their top 8 bits, as TensorFlow's decode and Pillow's own 16-bit RGB do."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if im.mode.startswith('I;16'):
    return Image.fromarray((np.asarray(im) >> 8).astype(np.uint8)).convert('RGB')
  if im.mode in ('I', 'F'):
    raise UserError(
      f'{where}: 32-bit {"float" if im.mode == "F" else "integer"} samples (PIL mode '
      f'{im.mode!r}) have no range to scale to 8 bits; convert the image to 8-bit RGB first'
    )
  return im.convert('RGB')


def load_images(images: Sequence[Any], size: int) -> np.ndarray:
  """PIL images, uint8 arrays or file paths -> float32 [N, size, size, 3] in [-1, 1]."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  out = np.empty((len(images), size, size, 3), np.float32)
  for i, image in enumerate(images):
    where = os.fspath(image) if isinstance(image, (str, os.PathLike)) else f'image {i}'
    im = to_rgb(_pil(image, where), where)
    if im.size != (size, size):
      im = im.resize((size, size), Image.BILINEAR)
    out[i] = to_unit_range(np.asarray(im))
  return out
