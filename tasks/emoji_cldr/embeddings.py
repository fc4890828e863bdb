"""Reads the locked tower's pre-computed embeddings of the emoji renders.

The file is written by `python -m mlit.emoji_tower embed` (the model side); the
seqio tasks only read it, so loading the tasks never imports a model.
"""

import os

import numpy as np

from tasks.emoji_cldr import data as data_lib

DOMAINS = ('noto_aug', 'noto_eval', 'symbola')


def load(path: str, data: data_lib.EmojiData) -> dict[str, np.ndarray]:
  """The arrays of an embeddings .npz, checked row for row against the build in `data`."""
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f'{path} not found: write it with `python -m mlit.emoji_tower embed '
      f'--data {data.data_dir} --tower TOWER.npz --out {path}`'
    )
  with np.load(path) as f:
    arrays = {d: f[d] for d in DOMAINS if d in f.files}
  for domain in DOMAINS:
    if domain not in arrays:
      raise KeyError(f'{path}: no array {domain!r} (has {sorted(arrays)})')
    n_images = len(data.array(domain))
    if arrays[domain].ndim != 2 or len(arrays[domain]) != n_images:
      raise ValueError(
        f'{path}: {domain} has shape {arrays[domain].shape}, but '
        f'{data.data_dir} has {n_images} images: re-run embed on this build'
      )
  return arrays
