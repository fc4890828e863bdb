"""Image-text pairs and per-language evaluation sets of emoji_cldr, as NumPy.

Tuning pairs: every CLDR text (the name and each keyword phrase) of a tuning
concept in language L, each paired with one of the concept's augmented Noto
renders (cycling, offset by language, so languages see different renders) or
with its centred render (the form evaluation shows; tuning_images='noto_eval').

Evaluation sets: held-out concepts that have a name in L, one image each
(the centred Noto render, or the Symbola render where Symbola has the glyph);
the class names are the CLDR names in L.
"""

import dataclasses
import zlib

import numpy as np

from tasks.emoji_cldr import data as data_lib
from tasks.emoji_cldr import split as split_lib

DOMAINS = ('noto', 'symbola')


@dataclasses.dataclass
class Pairs:
  texts: list[str]
  image_index: np.ndarray  # int32 [N] rows of the image array named by `images`
  images: str  # 'noto_aug' | 'noto_eval' | 'symbola'
  example_ids: list[str]
  concept: np.ndarray  # int32 [N] concept index


TUNING_IMAGES = ('noto_aug', 'noto_eval')


def tuning_pairs(
  ds: data_lib.EmojiData, lang: str, names_only: bool = False, images: str = 'noto_aug'
) -> Pairs:
  """All texts of tuning concepts in `lang` with their augmented or centred Noto renders."""
  if images not in TUNING_IMAGES:
    raise ValueError(f'tuning images must be one of {TUNING_IMAGES}, got {images!r}')
  n_aug = ds.manifest['config']['n_aug']
  if images == 'noto_aug' and not n_aug:
    raise ValueError(
      f"{ds.data_dir} was built without augmented renders (n_aug 0): tune on 'noto_eval' "
      'or rebuild it with --n_aug'
    )
  tuning = {int(i) for i in ds.concept_ids(split_lib.TUNING)}
  offset = zlib.crc32(lang.encode('utf-8'))  # stable across processes, unlike hash()
  texts, idx, ids, concept = [], [], [], []
  for row in ds.texts(lang):
    c = row['index']
    if c not in tuning:
      continue
    phrases = [('name', row['name'])] if row['name'] else []
    if not names_only:
      phrases += [(f'kw{j}', k) for j, k in enumerate(row['keywords'])]
    for t, (kind, text) in enumerate(phrases):
      texts.append(text)
      idx.append(c * n_aug + (offset + t) % n_aug if images == 'noto_aug' else c)
      ids.append(f'{lang}/{row["emoji"]}/{kind}')
      concept.append(c)
  return Pairs(texts, np.asarray(idx, np.int32), images, ids, np.asarray(concept, np.int32))


@dataclasses.dataclass
class EvalSet:
  """One image per held-out concept with a name in `lang`; label i <-> class_names[i]."""

  lang: str
  domain: str
  images: np.ndarray  # float32 [N, H, W, 3] in [-1, 1]
  labels: np.ndarray  # int32 [N] index into class_names
  class_names: list[str]  # CLDR names in lang, one per class
  class_emoji: list[str]
  image_concepts: np.ndarray  # int32 [N] concept index of each image


def heldout_pairs(ds: data_lib.EmojiData, lang: str, domain: str = 'noto') -> Pairs:
  """Held-out concepts named in `lang`: (name, one render) pairs, for retrieval."""
  if domain not in DOMAINS:
    raise ValueError(f'domain must be one of {DOMAINS}, got {domain!r}')
  heldout = {int(i) for i in ds.concept_ids(split_lib.HELDOUT)}
  if domain == 'noto':
    row_of = {c: c for c in heldout}
    images = 'noto_eval'
  else:
    row_of = {int(c): r for r, c in enumerate(ds.array('symbola_concept'))}
    images = 'symbola'
  texts, idx, ids, concept = [], [], [], []
  for row in ds.texts(lang):
    c = row['index']
    if c in heldout and row['name'] and c in row_of:
      texts.append(row['name'])
      idx.append(row_of[c])
      ids.append(f'{lang}/{row["emoji"]}/{domain}')
      concept.append(c)
  return Pairs(texts, np.asarray(idx, np.int32), images, ids, np.asarray(concept, np.int32))


def eval_set(ds: data_lib.EmojiData, lang: str, domain: str = 'noto') -> EvalSet:
  """Zero-shot classification set: classes = every held-out concept named in lang."""
  p = heldout_pairs(ds, lang, domain)
  imgs = (
    data_lib.to_float(ds.array(p.images)[p.image_index])
    if len(p.texts)
    else (np.zeros((0,) + ds.array('noto_eval').shape[1:], np.float32))
  )
  # Class list: all held-out concepts named in lang (also in the Symbola domain,
  # whose images cover a subset of them), so both domains share the classifier.
  names = heldout_pairs(ds, lang, 'noto')
  cls_of = {int(c): i for i, c in enumerate(names.concept)}
  labels = np.asarray([cls_of[int(c)] for c in p.concept], np.int32)
  class_emoji = [ds.concepts[int(c)]['emoji'] for c in names.concept]
  return EvalSet(lang, domain, imgs, labels, list(names.texts), class_emoji, p.concept)
