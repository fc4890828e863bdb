"""Reads a built emoji_cldr directory into NumPy (used by the seqio tasks, eval, pretraining)."""

import dataclasses
import functools
import json
import os

import numpy as np

from tasks.emoji_cldr import split as split_lib
from tasks.user_error import UserError

CLDR_FILES = ('annotations', 'annotationsDerived')


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity (caches)
class EmojiData:
  data_dir: str
  concepts: list[dict]  # concepts.jsonl rows; row i has index i
  subgroups: list[str]
  manifest: dict

  @property
  def languages(self) -> list[str]:
    return sorted(self.manifest['languages'])

  def concept_ids(self, split: str, cldr_file: str | None = None) -> np.ndarray:
    """Concept indices of a split; cldr_file 'annotations' or 'annotationsDerived' keeps
    the concepts CLDR names in that directory (see cldr.Cldr.base_keys)."""
    if split not in (split_lib.TUNING, split_lib.HELDOUT):
      raise ValueError(
        f'split must be {split_lib.TUNING!r} or {split_lib.HELDOUT!r}, got {split!r}'
      )
    if cldr_file is not None:
      if cldr_file not in CLDR_FILES:
        raise ValueError(f'cldr_file must be one of {CLDR_FILES}, got {cldr_file!r}')
      if self.concepts and 'cldr_file' not in self.concepts[0]:
        raise ValueError(
          f'{self.data_dir}/concepts.jsonl has no cldr_file field '
          '(built by an older version): rebuild it'
        )
    return np.array(
      [
        c['index']
        for c in self.concepts
        if c['split'] == split and (cldr_file is None or c['cldr_file'] == cldr_file)
      ],
      np.int32,
    )

  def subgroup_ids(self) -> np.ndarray:
    return np.array([c['subgroup_id'] for c in self.concepts], np.int32)

  def array(self, name: str) -> np.ndarray:
    path = os.path.join(self.data_dir, f'{name}.npy')
    return _load_array(path, os.path.getmtime(path))

  def texts(self, lang: str) -> list[dict]:
    if lang not in self.manifest['languages']:
      raise UserError(
        f'{self.data_dir}: no texts for language {lang!r}; have '
        f'{len(self.languages)} languages, e.g. {self.languages[:5]}'
      )
    return _load_jsonl(os.path.join(self.data_dir, 'texts', f'{lang}.jsonl'))

  def images(self, domain: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N,H,W,3], concept index [N]) for 'noto_aug', 'noto_eval' or 'symbola'."""
    if domain == 'noto_eval':
      imgs = self.array('noto_eval')
      return imgs, np.arange(len(imgs), dtype=np.int32)
    if domain in ('noto_aug', 'symbola'):
      return self.array(domain), self.array(f'{domain}_concept')
    raise ValueError(f"domain must be 'noto_aug', 'noto_eval' or 'symbola', got {domain!r}")


@functools.lru_cache(maxsize=16)
def _load_array(path: str, mtime: float) -> np.ndarray:
  del mtime  # part of the cache key: a rebuilt file is read again
  arr = np.load(path)
  arr.setflags(write=False)
  return arr


@functools.lru_cache(maxsize=256)
def _load_jsonl_cached(path: str, mtime: float) -> tuple:
  del mtime
  rows = []
  with open(path, encoding='utf-8') as f:
    for lineno, line in enumerate(f, 1):
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ValueError(f'{path}:{lineno}: bad JSON line: {e}') from e
  return tuple(rows)


def _load_jsonl(path: str) -> list[dict]:
  return list(_load_jsonl_cached(path, os.path.getmtime(path)))


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 [...,3] -> float32 in [-1, 1] (the image contract)."""
  return images.astype(np.float32) * (2.0 / 255.0) - 1.0


def load(data_dir: str) -> EmojiData:
  """The dataset in data_dir (cached until its manifest changes)."""
  path = os.path.join(data_dir, 'manifest.json')
  if not os.path.isfile(path):
    if not os.path.isabs(path) and not os.path.isdir(data_dir):  # e.g. a run's config.gin
      raise FileNotFoundError(
        f'{path} not found (relative to the working directory {os.getcwd()}; a config.gin names '
        'paths as the run was given them: run from the directory it was trained in, or bind the '
        "data directory as it is from here: --gin.EMOJI_DATA in the demo's gin files)"
      )
    raise FileNotFoundError(
      f'{path} not found: build the dataset first '
      f'(python -m tasks.emoji_cldr build --out {data_dir})'
    )
  return _load(data_dir, os.path.getmtime(path))


@functools.lru_cache(maxsize=4)
def _load(data_dir: str, mtime: float) -> EmojiData:
  del mtime
  path = os.path.join(data_dir, 'manifest.json')
  with open(path, encoding='utf-8') as f:
    manifest = json.load(f)
  with open(os.path.join(data_dir, 'subgroups.json'), encoding='utf-8') as f:
    subgroups = json.load(f)
  concepts = _load_jsonl(os.path.join(data_dir, 'concepts.jsonl'))
  for i, c in enumerate(concepts):
    if c.get('index') != i:
      raise ValueError(f'{data_dir}/concepts.jsonl:{i + 1}: index {c.get("index")} != {i}')
  return EmojiData(data_dir, concepts, subgroups, manifest)
