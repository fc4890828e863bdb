"""Translated ImageNet prompts on emoji: the emoji that depict an ImageNet-1k class
(eval_multilingual/data/emoji_imagenet.tsv), classified among those classes from clip-benchmark's
ImageNet prompts, per language, as `mlit eval` would classify ImageNet itself: the class names
(Babel-ImageNet: up to 93 languages, each a subset of the classes; imagenet1k: 5 languages) in
every template of the language, prompt-ensembled (zeroshot.py).

subset='heldout' scores only the strictly zero-shot concepts: held out of tuning, and so is every
other concept of the same ImageNet class (a held-out 'soft ice cream' whose class also holds the
tuned 'ice cream' is not zero-shot). subset='tuning' scores the rest (their renders and names were
tuned on, not these prompts). Both rank among all mapped classes the language names.
"""

import dataclasses
import logging
import os
from typing import Sequence

import numpy as np

from eval_multilingual import clip_benchmark_prompts, language_choice, zeroshot
from eval_multilingual import prompts as prompts_lib
from tasks.emoji_cldr import data as emoji_data
from tasks.emoji_cldr import split as split_lib

MAPPING = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data', 'emoji_imagenet.tsv')
SUBSETS = ('heldout', 'tuning')
MIN_CLASSES = 2  # a language naming fewer of the mapped classes has nothing to rank


class MappingError(ValueError):
  """A malformed mapping line; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class Mapping:
  codepoints: str  # space-separated hex, as concepts.jsonl joins them
  english: str
  imagenet_id: int
  imagenet_name: str


def read_mapping(path: str = MAPPING) -> list[Mapping]:
  rows, seen = [], set()
  with open(path, encoding='utf-8') as f:
    for n, line in enumerate(f, 1):
      line = line.rstrip('\n')
      if not line.strip() or line.startswith('#') or line.startswith('codepoints\t'):
        continue
      parts = line.split('\t')
      if len(parts) != 4:
        raise MappingError(f'{path}:{n}: expected 4 tab-separated fields, got {len(parts)}')
      cp, english, cid, name = parts
      if not cid.isdigit() or not 0 <= int(cid) < clip_benchmark_prompts.NUM_IMAGENET_CLASSES:
        raise MappingError(f'{path}:{n}: imagenet_id {cid!r} is not a class id in [0, 1000)')
      if cp in seen:
        raise MappingError(f'{path}:{n}: codepoints {cp} listed twice')
      seen.add(cp)
      rows.append(Mapping(cp, english, int(cid), name))
  return rows


_IMAGE_EMBEDDINGS: dict = {}  # (data_dir, mapping, domain, model fingerprint) -> [N, D]


_WARNED: set = set()  # (mapping, build, count) already reported


class EmojiImageNetImages:
  """Renders of the mapped concepts found in an emoji build; labels are ImageNet ids."""

  def __init__(self, data_dir: str, mapping: str = MAPPING, domain: str = 'noto_eval'):
    self.data_dir, self.mapping = os.path.abspath(data_dir), os.path.abspath(mapping)
    self.domain = domain
    self.data = emoji_data.load(data_dir)
    rows = read_mapping(mapping)
    index = {' '.join(c['codepoints']): c for c in self.data.concepts}
    self.rows = [r for r in rows if r.codepoints in index]
    self.n_not_in_build = len(rows) - len(self.rows)
    warning = (self.mapping, self.data_dir, self.n_not_in_build)
    if self.n_not_in_build and warning not in _WARNED:  # once, not once per evaluation of the gin
      _WARNED.add(warning)
      logging.warning(
        '%s: %d of %d mapped concepts are not in the emoji build %s',
        mapping,
        self.n_not_in_build,
        len(rows),
        data_dir,
      )
    concepts = [index[r.codepoints] for r in self.rows]
    images, owner = self.data.images(domain)
    first = {}
    for i, c in enumerate(owner.tolist()):
      first.setdefault(c, i)  # one image per concept (noto_eval has exactly one)
    self.images = images[[first[c['index']] for c in concepts]]
    self.labels = np.array([r.imagenet_id for r in self.rows], np.int64)
    tuned_classes = {
      r.imagenet_id for r, c in zip(self.rows, concepts) if c['split'] == split_lib.TUNING
    }
    self.heldout = np.array(
      [c['split'] == split_lib.HELDOUT and r.imagenet_id not in tuned_classes
       for r, c in zip(self.rows, concepts)],
      bool,
    )  # fmt: skip
    self.class_ids = sorted(set(self.labels.tolist()))


class EmojiImageNetEvaluation:
  """Zero-shot classification of mapped emoji renders with clip-benchmark ImageNet prompts."""

  def __init__(
    self,
    data_dir: str,
    prompts: str = clip_benchmark_prompts.BABEL_IMAGENET,
    subset: str = 'heldout',
    languages: Sequence[str] | None = None,
    mapping: str = MAPPING,
    cache_dir: str | None = None,
    batch_size: int = 512,
  ):
    if subset not in SUBSETS:
      raise ValueError(f'subset must be one of {SUBSETS}, got {subset!r}')
    if prompts not in (clip_benchmark_prompts.IMAGENET, clip_benchmark_prompts.BABEL_IMAGENET):
      raise ValueError(f'prompts must be a clip-benchmark ImageNet prompt set, got {prompts!r}')
    self.source = EmojiImageNetImages(data_dir, mapping)
    self.prompts, self.subset, self._languages = prompts, subset, languages
    self.cache_dir, self.batch_size = cache_dir, batch_size
    self.mask = self.source.heldout if subset == 'heldout' else ~self.source.heldout
    self.key = f'emoji_{prompts.split("/")[1]}_{subset}/zeroshot_classification'

  def prompt_set(self, language: str) -> prompts_lib.PromptSet:
    """The language's prompt set restricted to the mapped classes it names."""
    full = clip_benchmark_prompts.load(self.prompts, language)
    keep = [i for i, label in enumerate(full.labels) if label in set(self.source.class_ids)]
    if len(keep) < MIN_CLASSES:
      raise KeyError(f'{self.key}: {language!r} names {len(keep)} of the mapped classes')
    ps = prompts_lib.make_prompt_set(
      f'{full.name}:emoji',
      language,
      [list(full.classes[i]) for i in keep],
      list(full.templates),
      clip_benchmark_prompts.NUM_IMAGENET_CLASSES,
      class_indices=[full.labels[i] for i in keep],
      source=full.source,
    )
    return dataclasses.replace(ps, warnings=ps.warnings + full.warnings)

  def _covered(self, language: str) -> bool:
    try:
      ps = self.prompt_set(language)
    except KeyError:
      return False
    return bool(np.isin(self.source.labels[self.mask], ps.labels).any())

  def languages(self) -> list[str]:
    have = [l for l in clip_benchmark_prompts.languages(self.prompts) if self._covered(l)]
    return language_choice.chosen(
      self._languages, have, self.key, 'no prompts covering the mapped emoji for'
    )

  def _embed_images(self, encoder) -> np.ndarray:
    # The subsets (held-out, tuning) and prompt sets of one build share the renders: embedded
    # once per model.
    key = (self.source.data_dir, self.source.mapping, self.source.domain, encoder.fingerprint)
    if key not in _IMAGE_EMBEDDINGS:
      _IMAGE_EMBEDDINGS.clear()  # one model at a time
      x = self.source.images
      embs = [
        encoder.embed_images(emoji_data.to_float(x[s : s + self.batch_size]), 'image')
        for s in range(0, len(x), self.batch_size)
      ]
      _IMAGE_EMBEDDINGS[key] = np.concatenate(embs)
    return _IMAGE_EMBEDDINGS[key]

  def run(self, encoder, language: str) -> tuple[dict, dict]:
    ps = self.prompt_set(language)
    image_emb = self._embed_images(encoder)
    weights, cached = zeroshot.cached_classifier_weights(
      encoder.embed_texts, ps, self.cache_dir, encoder.fingerprint
    )
    metrics, meta = zeroshot.evaluate_language(
      encoder, ps, image_emb[self.mask], self.source.labels[self.mask], weights
    )
    meta.update(
      subset=self.subset,
      n_concepts=int(self.mask.sum()),
      n_mapped_concepts_not_in_build=self.source.n_not_in_build,
      n_templates=len(ps.templates),
      classifier_cached=cached,
      n_prompt_warnings=len(ps.warnings),
    )
    return metrics, meta
