"""Images -> the model's input: RGB, resized to size x size (whole image, no crop, bilinear, as
the evaluation protocol), float32 in [-1, 1] (the image contract of mlit's towers).

Pixels are read as stored, like TensorFlow's decode in training and the evaluation's Pillow: an
alpha channel is dropped (the colour stored under transparent pixels shows), an EXIF orientation
is not applied and an animation gives its first frame. 16-bit samples keep their top 8 bits.
A file above PIL's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS, doubled) is refused
as ImageTooLarge, saying its size; one between the limit and twice it is decoded, without PIL's
raw warning.
"""

import os
import re
import warnings
from typing import Any, Sequence

import numpy as np

from tasks.user_error import UserError


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
  """uint8 [..., 3] -> float32 in [-1, 1]."""
  return np.asarray(pixels).astype(np.float32) * (2.0 / 255.0) - 1.0


class ImageTooLarge(UserError):
  """A file above PIL's decompression-bomb limit; `reason` says by how much, for skip lines."""

  def __init__(self, path: str, error: Exception):
    sizes = re.search(r'\((\d+) pixels\) exceeds limit of (\d+) pixels', str(error))
    self.reason = (
      f"too large ({sizes[1]} pixels, PIL's limit {sizes[2]})" if sizes else f'too large ({error})'
    )
    super().__init__(f'{path}: {self.reason}; PIL.Image.MAX_IMAGE_PIXELS sets the limit')


def _open_file(path):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  # PIL warns (DecompressionBombWarning, with its own source line) above MAX_IMAGE_PIXELS and
  # refuses above twice that: the image between is decoded without the raw warning.
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', Image.DecompressionBombWarning)
    with Image.open(path) as im:
      im.load()
      return im


def _pil(image: Any, where: str):
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top

  if isinstance(image, Image.Image):
    return image
  if isinstance(image, (str, os.PathLike)):
    try:
      return _open_file(image)
    except Image.DecompressionBombError as e:
      raise ImageTooLarge(os.fspath(image), e) from e
    except (OSError, UnidentifiedImageError) as e:
      raise UserError(f'{os.fspath(image)}: not a readable image ({e})') from e
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
