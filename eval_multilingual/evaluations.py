"""Evaluations that run.py iterates over: each has `key` ('<dataset>/<task>'),
`languages()` and `run(encoder, language) -> (metrics, meta)`."""

import logging
import os
from typing import Sequence

import numpy as np

from eval_multilingual import (
  clip_benchmark_prompts,
  language_choice,
  retrieval,
  text_stats,
  zeroshot,
)
from eval_multilingual import prompts as prompts_lib
from eval_multilingual.datasets import coco, image_store, wit, xm3600
from tasks import file_io
from tasks.user_error import UserError


class RetrievalEvaluation:
  """Text<->image recall@k per language on WIT, XM3600 or COCO captions.

  Images whose key is not in the store, or whose file cannot be decoded, are dropped with
  their captions: the share found is recorded per language ('image_found_share'), the
  dropped ones counted ('n_images_missing', 'n_images_unreadable') and the first named in a
  warning. 'skipped' counts the language's skipped rows by reason; 'skipped_in_files' the
  rows of the data files no language could hold (e.g. WIT's wrong column counts, XM3600's
  lines that are no JSON), the same in every language. `name` replaces the dataset's in the
  results' key (`NAME/retrieval`) for pairs of your own in one of these formats.
  """

  def __init__(
    self,
    dataset: str,
    path,
    image_dir: str | None = None,
    embeddings: str | None = None,
    languages: Sequence[str] | None = None,
    max_pairs: int | None = 5000,
    text_fields: Sequence[str] = wit.DEFAULT_TEXT_FIELDS,
    image_size: int = 224,
    block: int = 1024,
    name: str | None = None,
  ):
    if dataset not in ('wit', 'xm3600', 'coco'):
      raise UserError(f'RetrievalEvaluation.dataset {dataset!r}: not wit, xm3600 or coco')
    if max_pairs is not None and (not isinstance(max_pairs, int) or max_pairs < 1):
      raise UserError(
        f'RetrievalEvaluation.max_pairs (WIT_MAX_PAIRS) {max_pairs!r}: the pairs kept per '
        'language, >= 1, or None for all'
      )
    if name is not None and (not name or '/' in name or name != name.strip()):
      raise UserError(f'retrieval name {name!r}: a non-empty name without "/" or spaces around it')
    self.dataset, self.path, self.block = dataset, path, block
    self.key = f'{name or dataset}/retrieval'  # name: pairs of your own in one of the formats
    self._languages, self.max_pairs, self.text_fields = languages, max_pairs, tuple(text_fields)
    self.store = image_store.open_store(image_dir, embeddings, image_size)
    self._pairs, self._counts = None, None
    self._image_cache: dict[str, np.ndarray] = {}
    self._unreadable: dict[str, str] = {}  # key -> 'path: reason', files Pillow cannot decode
    self._cache_owner = None

  def _read(self):
    if self._pairs is None:
      if self.dataset == 'wit':
        self._pairs, self._counts = wit.read_wit(
          self.path,
          text_fields=self.text_fields,
          max_pairs=self.max_pairs,
        )
      elif self.dataset == 'xm3600':
        self._pairs, self._counts = xm3600.read_xm3600(self.path)
      else:
        self._pairs, self._counts = coco.read_coco(self.path, self.max_pairs)
    return self._pairs

  def settings(self) -> dict:
    """What the scores depend on besides the model (run.py reuses a per_task file only for the
    same): the data files by path and size, the image store and size, the cap and text fields."""
    files = wit.expand(self.path) if self.dataset == 'wit' else [self.path]
    return {
      'files': [[os.path.abspath(f), os.path.getsize(f)] for f in files],
      'images': os.path.abspath(self.store.source),
      'image_size': getattr(self.store, 'image_size', None),
      'max_pairs': self.max_pairs,
      'text_fields': list(self.text_fields),
    }

  def languages(self) -> list[str]:
    have = sorted(lang for lang, p in self._read().items() if p.texts)
    return language_choice.chosen(self._languages, have, self.key, f'no texts in {self.path} for')

  def _embed_images(self, encoder, keys: list[str]) -> None:
    """Embeds the keys not yet cached; undecodable files go to self._unreadable instead."""
    if self._cache_owner != encoder.fingerprint:  # images shared across languages
      self._image_cache, self._cache_owner = {}, encoder.fingerprint
    todo = sorted({k for k in keys if k not in self._image_cache and k not in self._unreadable})
    for s in range(0, len(todo), 1024):  # bounded memory for decoded images
      chunk = todo[s : s + 1024]
      bad: dict[str, str] = {}
      pixels = self.store.load(chunk, bad)
      ok = [i for i, k in enumerate(chunk) if k not in bad]
      self._unreadable.update(bad)
      if ok:
        emb = encoder.embed_images(pixels[ok], self.store.kind)
        self._image_cache.update(zip([chunk[i] for i in ok], emb))

  def run(self, encoder, language: str) -> tuple[dict, dict]:
    pairs = self._read().get(language)
    if pairs is None or not pairs.texts:
      raise KeyError(f'{self.key}: no data for language {language!r}')
    stored = np.array([self.store.has(k) for k in pairs.image_keys])
    self._embed_images(encoder, [k for k, f in zip(pairs.image_keys, stored) if f])
    unreadable = [k for k, f in zip(pairs.image_keys, stored) if f and k in self._unreadable]
    found = stored & np.array([k not in self._unreadable for k in pairs.image_keys])
    missing = [k for k, f in zip(pairs.image_keys, stored) if not f]
    meta = {
      'n_images_total': len(pairs.image_keys),
      'n_texts_total': len(pairs.texts),
      'image_found_share': float(found.mean()),
      'n_images_missing': len(missing),
      'n_images_unreadable': len(unreadable),
      'skipped': dict(pairs.skipped),
      'skipped_in_files': dict(self._counts),
    }
    if missing:
      logging.warning(
        '%s %s: %d of %d images not in the store, left out with their texts (first: %s)',
        self.key,
        language,
        len(missing),
        len(found),
        ', '.join(repr(k) for k in missing[:3]),
      )
    if unreadable:
      logging.warning(
        '%s %s: %d images cannot be decoded, left out with their texts (first: %s)',
        self.key,
        language,
        len(unreadable),
        '; '.join(self._unreadable[k] for k in unreadable[:3]),
      )
    if not found.any():
      logging.warning('%s %s: none of %d images found and readable', self.key, language, len(found))
      return {}, {**meta, 'n_examples': 0}
    new_index = np.cumsum(found) - 1
    keys = [k for k, f in zip(pairs.image_keys, found) if f]
    keep = [i for i, im in enumerate(pairs.text_to_image) if found[im]]
    texts = [pairs.texts[i] for i in keep]
    t2i = new_index[np.asarray(pairs.text_to_image)[keep]]
    img = np.stack([self._image_cache[k] for k in keys])
    txt = encoder.embed_texts(texts)
    metrics = retrieval.retrieval_metrics(txt, img, t2i, block=self.block)
    meta.update(n_examples=len(texts), n_images=len(keys), n_texts=len(texts))
    meta.update(retrieval.shared_texts_meta(txt, img, t2i, texts, self.block))
    tokenizer = text_stats.tokenizer_of(encoder)
    if tokenizer is not None:
      meta['text'] = text_stats.caption_text_stats(tokenizer, texts)
    return metrics, meta


_IMAGE_EMBEDDINGS: dict = {}


def prompt_notes(warnings: Sequence[str]) -> str:
  """A prompt set's notes (repeated templates, one name for several classes) as one log line:
  Babel-ImageNet has them in most of its 93 languages, and a line each buried the run's log."""
  more = len(warnings) - 1
  return warnings[0] + (f' (and {more} more notes: meta n_prompt_warnings)' if more else '')


class ZeroShotEvaluation:
  """Zero-shot classification with per-language prompt sets.

  `prompts`: 'clip_benchmark/imagenet1k', 'clip_benchmark/babel_imagenet' (read from
  the installed clip-benchmark) or the path of a prompt set JSON file (prompts.py).
  `images`: a datasets.image_classification source (TFDS or .npz embeddings).
  """

  def __init__(
    self,
    images,
    prompts: str,
    dataset: str | None = None,
    languages: Sequence[str] | None = None,
    cache_dir: str | None = None,
    batch_size: int = 256,
  ):
    self.images, self.prompts, self.cache_dir = images, prompts, cache_dir
    self.batch_size = batch_size
    self._languages = languages
    self._file = None
    if prompts not in (clip_benchmark_prompts.IMAGENET, clip_benchmark_prompts.BABEL_IMAGENET):
      self._file = prompts_lib.load_prompt_file(prompts)
    if dataset is None:
      dataset = (
        prompts.split('/')[1] if self._file is None else next(iter(self._file.values())).name
      )
    self.key = f'{dataset}/zeroshot_classification'

  def languages(self) -> list[str]:
    have = (
      sorted(self._file)
      if self._file is not None
      else clip_benchmark_prompts.languages(self.prompts)
    )
    return language_choice.chosen(
      self._languages, have, self.key, f'no prompts in {self.prompts} for'
    )

  def settings(self) -> dict:
    """What the scores depend on besides the model: the images (source, split, size) and the
    prompts (a file by its sha256)."""
    prompts = self.prompts
    if self._file is not None:
      prompts = [os.path.abspath(self.prompts), file_io.file_sha256(self.prompts)]
    return {'images': self.images.cache_key, 'prompts': prompts}

  def prompt_set(self, language: str) -> prompts_lib.PromptSet:
    if self._file is not None:
      return self._file[language]
    return clip_benchmark_prompts.load(self.prompts, language)

  def _image_embeddings(self, encoder):
    # Shared by evaluations of the same images (ImageNet with two prompt sets).
    key = (self.images.cache_key, encoder.fingerprint)
    if key not in _IMAGE_EMBEDDINGS:
      embs, labels, sets = [], [], []
      for x, y, s in self.images.batches(self.batch_size):
        embs.append(encoder.embed_images(x, self.images.kind))
        labels.append(y)
        sets = None if s is None or sets is None else sets + s
      if not embs:
        raise UserError(f'{self.images.name}: no image could be read (see the warnings above)')
      _IMAGE_EMBEDDINGS.clear()  # keep one dataset in memory
      unreadable = getattr(self.images, 'n_unreadable', 0)  # left out by batches()
      _IMAGE_EMBEDDINGS[key] = (np.concatenate(embs), np.concatenate(labels), sets, unreadable)
    return _IMAGE_EMBEDDINGS[key]

  def run(self, encoder, language: str) -> tuple[dict, dict]:
    ps = self.prompt_set(language)
    if ps.warnings:
      logging.info('%s', prompt_notes(ps.warnings))
    emb, labels, sets, unreadable = self._image_embeddings(encoder)
    weights, cached = zeroshot.cached_classifier_weights(
      encoder.embed_texts, ps, self.cache_dir, encoder.fingerprint
    )
    metrics, meta = zeroshot.evaluate_language(encoder, ps, emb, labels, weights, sets)
    meta.update(
      n_templates=len(ps.templates),
      classifier_cached=cached,
      n_prompt_warnings=len(ps.warnings),
      n_images_unreadable=unreadable,
    )
    return metrics, meta
