"""Where evaluation images come from: a local image directory or pre-computed embeddings.

Local image store: a directory (searched recursively) of image files. The image of a key
(a WIT image_url, an XM3600 image/key, a COCO file_name) is the file whose name without
extension is
  1. the key itself (XM3600 '<image/key>.jpg', COCO '<file_name>'), or
  2. sha1(key as UTF-8) in hex (tasks.image_store.url_id: the layout WIT and CC12M training
     read, so one folder serves both), or sha256(key as UTF-8) in hex, or
  3. the URL-decoded last path component of the key (a WIT URL's filename),
tried in this order. Where several files share a name without extension (a webdataset or
img2dataset folder: '<key>.jpg' beside '<key>.txt' and '<key>.json'), the one with an image
suffix is the image. Images are decoded with Pillow, converted to RGB as mlit.load does
(mlit/inference/preprocess.py: 16-bit grey keeps its top 8 bits), resized to
image_size x image_size without cropping (the LiT evaluation protocol) and scaled to [-1, 1].
An image file Pillow cannot decode is left out with its texts, counted and named by the
evaluation (evaluations.RetrievalEvaluation), not fatal.

Embedding store: an .npz with 'keys' (str [N]) and 'embeddings' (float [N, D]).
"""

import hashlib
import os
import urllib.parse
from typing import Sequence

import numpy as np
from PIL import Image

from mlit.inference import preprocess
from mlit.inference.image_folder import IMAGE_SUFFIXES
from tasks.user_error import UserError


def url_sha1(key: str) -> str:
  """tasks.image_store.url_id, the training tasks' image name (that module imports TensorFlow)."""
  return hashlib.sha1(key.encode('utf-8')).hexdigest()


def url_sha256(key: str) -> str:
  return hashlib.sha256(key.encode('utf-8')).hexdigest()


def _url_basename(key: str) -> str:
  path = urllib.parse.urlparse(key).path or key
  return urllib.parse.unquote(path.rsplit('/', 1)[-1])


def _image_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_SUFFIXES)


def check_image_size(image_size) -> None:
  """EVAL_IMAGE_SIZE (an evaluation's image_size) as pixels, or one line: at 0 every image
  failed to resize and was reported as undecodable, the run ending with no score."""
  if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
    raise UserError(
      f'image_size (EVAL_IMAGE_SIZE in eval/common.gin) {image_size!r}: a number of pixels >= 1'
    )


class LocalImageStore:
  """Images on disk; `kind` is 'image' (arrays [H, W, 3] in [-1, 1]); `source`: their folder."""

  kind = 'image'

  def __init__(self, root: str, image_size: int = 224):
    check_image_size(image_size)
    if not os.path.isdir(root):
      raise FileNotFoundError(f'image store directory {root!r} does not exist')
    self.source, self.image_size = root, image_size
    self._by_name, self._by_stem = {}, {}
    for dirpath, _, files in os.walk(root):
      for f in files:
        p = os.path.join(dirpath, f)
        self._by_name.setdefault(f, p)
        stem = os.path.splitext(f)[0]
        # An image file wins its stem over a sidecar ('<key>.txt', '<key>.json'), whatever
        # order the directory lists them in.
        if stem not in self._by_stem or (_image_name(f) and not _image_name(self._by_stem[stem])):
          self._by_stem[stem] = p

  def path(self, key: str) -> str | None:
    for name in (key, os.path.basename(key)):
      if name in self._by_name:
        return self._by_name[name]
    for stem in (key, url_sha1(key), url_sha256(key)):
      if stem in self._by_stem:
        return self._by_stem[stem]
    base = _url_basename(key)
    return self._by_name.get(base) or self._by_stem.get(os.path.splitext(base)[0])

  def has(self, key: str) -> bool:
    return self.path(key) is not None

  def load(self, keys: Sequence[str], unreadable: dict | None = None) -> np.ndarray:
    """Images of `keys`. Given `unreadable` (a dict), a file Pillow cannot decode is recorded
    there ({key: 'path: reason'}) and its row left zero; without it, that is an error."""
    out = np.zeros((len(keys), self.image_size, self.image_size, 3), np.float32)
    for i, k in enumerate(keys):
      p = self.path(k)
      if p is None:
        raise KeyError(f'no image for {k!r} in {self.source}')
      try:
        with Image.open(p) as im:
          im = preprocess.to_rgb(im, p).resize((self.image_size, self.image_size), Image.BILINEAR)
          out[i] = np.asarray(im, np.float32) / 127.5 - 1.0
      except (OSError, ValueError, UserError, Image.DecompressionBombError) as e:
        if unreadable is None:
          raise
        unreadable[k] = f'{p}: {type(e).__name__}: {e}'
    return out


class EmbeddingStore:
  """Pre-computed image embeddings; `kind` is 'embedding' (vectors [D]); `source`: their file."""

  kind = 'embedding'

  def __init__(self, path: str):
    try:
      with np.load(path, allow_pickle=False) as z:
        if 'keys' not in z or 'embeddings' not in z:
          raise KeyError(f"{path}: needs arrays 'keys' and 'embeddings', has {list(z.keys())}")
        keys, self.embeddings = z['keys'].astype(str), z['embeddings'].astype(np.float32)
    except OSError as e:
      raise FileNotFoundError(f'cannot read embedding file {path!r}: {e}') from e
    if self.embeddings.ndim != 2 or len(keys) != len(self.embeddings):
      raise ValueError(
        f"{path}: 'embeddings' must be [N, D] with N = len(keys) = {len(keys)}, "
        f'got {self.embeddings.shape}'
      )
    self.source = path
    self._index = {k: i for i, k in enumerate(keys)}

  def has(self, key: str) -> bool:
    return key in self._index

  def load(self, keys: Sequence[str], unreadable: dict | None = None) -> np.ndarray:
    del unreadable  # every stored vector is readable
    try:
      return self.embeddings[[self._index[k] for k in keys]]
    except KeyError as e:
      raise KeyError(f'no embedding for {e.args[0]!r} in {self.source}') from e


def open_store(image_dir: str | None = None, embeddings: str | None = None, image_size: int = 224):
  if (image_dir is None) == (embeddings is None):
    raise ValueError('give exactly one of image_dir / embeddings')
  if embeddings is not None:
    return EmbeddingStore(embeddings)
  return LocalImageStore(image_dir, image_size)
