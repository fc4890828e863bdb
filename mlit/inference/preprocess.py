"""Images -> the model's input: RGB, resized to size x size (whole image, no crop, bilinear, as
the evaluation protocol), float32 in [-1, 1] (the image contract of mlit's towers)."""

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


def load_images(images: Sequence[Any], size: int) -> np.ndarray:
  """PIL images, uint8 arrays or file paths -> float32 [N, size, size, 3] in [-1, 1]."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  out = np.empty((len(images), size, size, 3), np.float32)
  for i, image in enumerate(images):
    im = _pil(image, f'image {i}').convert('RGB')
    if im.size != (size, size):
      im = im.resize((size, size), Image.BILINEAR)
    out[i] = to_unit_range(np.asarray(im))
  return out
