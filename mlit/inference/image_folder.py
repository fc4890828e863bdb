"""Embeds every image file of a directory with a trained run, a batch of files at a time.

Only one batch of decoded pixels is held at once, so a folder of any size fits in memory (the
embeddings themselves are D floats per image). Unreadable files, files without an image suffix
and subdirectories are skipped and returned by name, never dropped silently (a file above PIL's
size limit under its own reason, 'too large (N pixels, ...)'); a progress line (done of total,
rate, ETA) goes to stderr every 30 s.
"""

import os
import sys
import time

import numpy as np

from mlit import job_progress
from mlit.inference import preprocess
from tasks.user_error import UserError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.gif', '.bmp', '.webp', '.tif', '.tiff')
UNREADABLE = 'unreadable image'
# Entries of the folder not read, named with the unreadable ones: nothing in it vanishes unsaid.
NOT_AN_IMAGE_NAME = f'not an image file name ({", ".join(IMAGE_SUFFIXES)})'
SUBDIRECTORY = 'subdirectory, not read'


def _entries(directory: str, flag: str) -> tuple[list[str], dict[str, list[str]]]:
  """(image file names, {reason: other entries}) directly in `directory`, sorted by name."""
  if os.path.isfile(directory):
    raise UserError(
      f'{flag} {directory}: a file; give the directory of images (every image file in it is read)'
    )
  if not os.path.isdir(directory):
    raise UserError(f'{flag} {directory}: no such directory')
  images, others = [], {NOT_AN_IMAGE_NAME: [], SUBDIRECTORY: []}
  for n in sorted(os.listdir(directory)):
    if os.path.isdir(os.path.join(directory, n)):
      others[SUBDIRECTORY].append(n)
    elif n.lower().endswith(IMAGE_SUFFIXES):
      images.append(n)
    else:
      others[NOT_AN_IMAGE_NAME].append(n)
  return images, {reason: names for reason, names in others.items() if names}


def image_names(directory: str, flag: str = '--images') -> list[str]:
  """The image files directly in `directory`, sorted by name."""
  return _entries(directory, flag)[0]


def embed_directory(model, directory: str, flag: str = '--images', log_every: float = 30.0):
  """(ids, [N, D] embeddings, {reason: skipped names}) for the images in `directory`.

  `model` is an mlit.load model with an image tower (model.image_size set)."""
  names, others = _entries(directory, flag)
  if not names:
    raise UserError(f'{flag} {directory}: no image file ({", ".join(IMAGE_SUFFIXES)})')
  batch = model.encoder.batch_size
  progress = job_progress.Progress(len(names), 'images')
  ids, parts, unreadable, last_log = [], [], {}, time.monotonic()
  for start in range(0, len(names), batch):
    pixels = []
    for name in names[start : start + batch]:
      try:
        pixels.append(preprocess.load_images([os.path.join(directory, name)], model.image_size))
        ids.append(name)
      except UserError as e:
        unreadable.setdefault(getattr(e, 'reason', UNREADABLE), []).append(name)
    if pixels:
      parts.append(model.encoder.embed_images(np.concatenate(pixels), 'image'))
    progress.advance(min(batch, len(names) - start))
    if time.monotonic() - last_log > log_every and progress.done < progress.total:
      last_log = time.monotonic()
      print(f'{flag} {directory}: {progress.line()}', file=sys.stderr, flush=True)
  if not ids:
    raise UserError(f'{flag} {directory}: no readable image among {len(names)} files')
  return ids, np.concatenate(parts), {**unreadable, **others}
