"""Raw image bytes looked up by photo id in a local (or gfile) directory.

Layout: `image_dir`/`path_format`, where path_format may use {id} (YFCC photo id,
or url_id(url) for CC12M/WIT) and {hash} (YFCC multimedia-commons photo hash),
e.g. '{id}.jpg' (default) or '{hash}.jpg'. Bytes are checked with Pillow so that
an unreadable image is counted and skipped at the source instead of failing the
TF decoder later.
"""

import hashlib
import io
import os
from typing import Optional

import tensorflow as tf
from PIL import Image

import gin
from tasks import data_stats


class ImageError(ValueError):
  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason


@gin.configurable
class ImageStore:
  def __init__(self, image_dir: str, path_format: str = '{id}.jpg'):
    self.image_dir = image_dir
    self.path_format = path_format

  def path(self, photo_id: str, photo_hash: Optional[str] = None) -> str:
    return os.path.join(self.image_dir, self.path_format.format(id=photo_id, hash=photo_hash or ''))

  def read(self, photo_id: str, photo_hash: Optional[str] = None) -> bytes:
    """Returns verified encoded bytes; raises ImageError(missing/unreadable)."""
    path = self.path(photo_id, photo_hash)
    try:
      with tf.io.gfile.GFile(path, 'rb') as f:
        data = f.read()
    except tf.errors.NotFoundError as e:
      raise ImageError('missing_image', f'no image file {path}') from e
    check_image_bytes(data, path)
    return data


def check_image_bytes(data: bytes, where: str) -> None:
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.verify()
  except Exception as e:  # Pillow raises many types for corrupt data.
    raise ImageError('unreadable_image', f'{where}: cannot decode image: {e}') from e


def url_id(url: str) -> str:
  """Stable id for rows identified only by an image URL (CC12M, WIT)."""
  return hashlib.sha1(url.encode('utf-8')).hexdigest()


def attach_image(
  example: dict, images: Optional['ImageStore'], where: str, url: Optional[str] = None
) -> bool:
  """Adds example['image'] from the store (keyed by example_id) when there is one.

  Returns False, with the row counted as skipped under the image's failure reason, when the image
  is missing or unreadable; the caller drops the row. `url`: the row's image URL, when its id is
  url_id(url): a missing image's line says how the file is named.
  """
  if images is None:
    return True
  try:
    example['image'] = images.read(example['example_id'])
  except ImageError as e:
    named = f' (the image of {url}: files are named by the sha1 of the URL)' if url else ''
    data_stats.skip(e.reason, f'{where}: {e}{named if e.reason == "missing_image" else ""}')
    return False
  return True
