"""Embeds every image file of a directory with a trained run, a batch of files at a time.

Only one batch of decoded pixels is held at once, so a folder of any size fits in memory (the
embeddings themselves are D floats per image). Unreadable files are skipped and returned by name,
never dropped silently; a progress line (done of total, rate, ETA) goes to stderr every 30 s.
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


def image_names(directory: str, flag: str = '--images') -> list[str]:
  """The image files directly in `directory`, sorted by name."""
  if not os.path.isdir(directory):
    raise UserError(f'{flag} {directory}: no such directory')
  return sorted(
    n
    for n in os.listdir(directory)
    if n.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(directory, n))
  )


def embed_directory(model, directory: str, flag: str = '--images', log_every: float = 30.0):
  """(ids, [N, D] embeddings, {reason: skipped names}) for the images in `directory`.

  `model` is an mlit.load model with an image tower (model.image_size set)."""
  names = image_names(directory, flag)
  if not names:
    raise UserError(f'{flag} {directory}: no image file ({", ".join(IMAGE_SUFFIXES)})')
  batch = model.encoder.batch_size
  progress = job_progress.Progress(len(names), 'images')
  ids, parts, unreadable, last_log = [], [], [], time.monotonic()
  for start in range(0, len(names), batch):
    pixels = []
    for name in names[start : start + batch]:
      try:
        pixels.append(preprocess.load_images([os.path.join(directory, name)], model.image_size))
        ids.append(name)
      except UserError:
        unreadable.append(name)
    if pixels:
      parts.append(model.encoder.embed_images(np.concatenate(pixels), 'image'))
    progress.advance(min(batch, len(names) - start))
    if time.monotonic() - last_log > log_every and progress.done < progress.total:
      last_log = time.monotonic()
      print(f'{flag} {directory}: {progress.line()}', file=sys.stderr, flush=True)
  if not ids:
    raise UserError(f'{flag} {directory}: no readable image among {len(names)} files')
  return ids, np.concatenate(parts), {UNREADABLE: unreadable} if unreadable else {}
