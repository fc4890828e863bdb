"""Evaluations on a built emoji_cldr directory (python -m tasks.emoji_cldr build).

Only held-out concepts are evaluated: the image tower was pre-trained and the text tower tuned on
the other concepts, so these measure zero-shot transfer. Per language, a concept is a class when
CLDR gives it a name in that language; its texts are that name in each template (default: the bare
name, the form the text tower was tuned on).
  EmojiZeroShotEvaluation   classify Noto renders (or Symbola glyphs: another visual domain)
  EmojiRetrievalEvaluation  names -> images and images -> names, recall@1/5/10
cldr_file='annotations' restricts an evaluation to the concepts CLDR names in its annotations/
files: single emoji, without the flags, keycaps and most ZWJ sequences that only
annotationsDerived/ names (a country's flag cannot be told from its name by a tower pre-trained on
subgroups). It is the concept set of the issue's reference probe.
"""

from typing import Iterator, Sequence

import numpy as np

from eval_multilingual import language_choice, retrieval, text_stats, zeroshot
from eval_multilingual import prompts as prompts_lib
from tasks.emoji_cldr import data as emoji_data
from tasks.emoji_cldr import split as split_lib

_DOMAINS = ('noto_eval', 'symbola')


def _heldout(ds: emoji_data.EmojiData, cldr_file: str | None = None) -> np.ndarray:
  return ds.concept_ids(split_lib.HELDOUT, cldr_file)


def heldout_names(
  ds: emoji_data.EmojiData, language: str, cldr_file: str | None = None
) -> dict[int, str]:
  """{concept index: CLDR name in `language`} for the held-out concepts that have one."""
  heldout = set(_heldout(ds, cldr_file).tolist())
  return {
    row['index']: row['name']
    for row in ds.texts(language)
    if row['index'] in heldout and row.get('name')
  }


class EmojiImages:
  """Held-out concept images as a zero-shot image source; labels index the held-out concepts."""

  kind = 'image'

  def __init__(self, data_dir: str, domain: str = 'noto_eval', cldr_file: str | None = None):
    if domain not in _DOMAINS:
      raise ValueError(f'emoji_cldr image domain must be one of {_DOMAINS}, got {domain!r}')
    self.data = emoji_data.load(data_dir)
    self.domain = domain
    images, concepts = self.data.images(domain)
    position = {c: i for i, c in enumerate(_heldout(self.data, cldr_file).tolist())}
    keep = np.array([c in position for c in concepts.tolist()], bool)
    self.images = images[keep]
    self.labels = np.array([position[c] for c in concepts[keep].tolist()], np.int64)
    self.name = f'emoji_cldr:{domain}' + (f':{cldr_file}' if cldr_file else '')
    self.cache_key = f'emoji_cldr:{data_dir}:{domain}:{cldr_file}:{len(self.labels)}'

  def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, None]]:
    for s in range(0, len(self.labels), batch_size):
      yield (
        emoji_data.to_float(self.images[s : s + batch_size]),
        self.labels[s : s + batch_size],
        None,
      )


class EmojiZeroShotEvaluation:
  """Zero-shot classification of held-out concepts from their names, per language."""

  def __init__(
    self,
    data_dir: str,
    domain: str = 'noto_eval',
    languages: Sequence[str] | None = None,
    templates: Sequence[str] = ('{}',),
    cache_dir: str | None = None,
    batch_size: int = 512,
    cldr_file: str | None = None,
  ):
    self.images = EmojiImages(data_dir, domain, cldr_file)
    self.data = self.images.data
    self.templates = tuple(templates)
    self._languages = languages
    self.cache_dir, self.batch_size = cache_dir, batch_size
    self.cldr_file = cldr_file
    dataset = 'emoji_cldr' if domain == 'noto_eval' else 'emoji_cldr_symbola'
    if cldr_file:
      dataset += f'_{cldr_file}'
    self.key = f'{dataset}/zeroshot_classification'
    self._embeddings = None

  def languages(self) -> list[str]:
    have = [lang for lang in self.data.languages if heldout_names(self.data, lang, self.cldr_file)]
    return language_choice.chosen(
      self._languages, have, self.key, f'no held-out names in {self.data.data_dir} for'
    )

  def prompt_set(self, language: str) -> prompts_lib.PromptSet:
    position = {c: i for i, c in enumerate(_heldout(self.data, self.cldr_file).tolist())}
    names = heldout_names(self.data, language, self.cldr_file)
    concepts = sorted(names, key=position.get)
    return prompts_lib.make_prompt_set(
      'emoji_cldr',
      language,
      [names[c] for c in concepts],
      list(self.templates),
      num_classes=len(position),
      class_indices=[position[c] for c in concepts],
      source=f'{self.data.data_dir}/texts/{language}.jsonl',
    )

  def run(self, encoder, language: str) -> tuple[dict, dict]:
    ps = self.prompt_set(language)
    if self._embeddings is None or self._embeddings[0] != encoder.fingerprint:
      embs = [
        encoder.embed_images(x, self.images.kind)
        for x, _, _ in self.images.batches(self.batch_size)
      ]
      self._embeddings = (encoder.fingerprint, np.concatenate(embs))
    weights, cached = zeroshot.cached_classifier_weights(
      encoder.embed_texts, ps, self.cache_dir, encoder.fingerprint
    )
    metrics, meta = zeroshot.evaluate_language(
      encoder, ps, self._embeddings[1], self.images.labels, weights
    )
    meta.update(
      n_templates=len(ps.templates), classifier_cached=cached, n_prompt_warnings=len(ps.warnings)
    )
    return metrics, meta


class EmojiRetrievalEvaluation:
  """Per language: the held-out names against the held-out Noto renders, both directions."""

  def __init__(
    self,
    data_dir: str,
    languages: Sequence[str] | None = None,
    block: int = 1024,
    batch_size: int = 512,
  ):
    self.images = EmojiImages(data_dir, 'noto_eval')
    self.data = self.images.data
    self._languages = languages
    self.block, self.batch_size = block, batch_size
    self.key = 'emoji_cldr/retrieval'
    self._embeddings = None

  def languages(self) -> list[str]:
    have = [lang for lang in self.data.languages if heldout_names(self.data, lang)]
    return language_choice.chosen(
      self._languages, have, self.key, f'no held-out names in {self.data.data_dir} for'
    )

  def run(self, encoder, language: str) -> tuple[dict, dict]:
    if self._embeddings is None or self._embeddings[0] != encoder.fingerprint:
      embs = [
        encoder.embed_images(x, self.images.kind)
        for x, _, _ in self.images.batches(self.batch_size)
      ]
      self._embeddings = (encoder.fingerprint, np.concatenate(embs))
    heldout = _heldout(self.data).tolist()
    names = heldout_names(self.data, language)
    rows = [i for i, c in enumerate(heldout) if c in names]  # noto_eval: one image per concept
    texts = [names[heldout[i]] for i in rows]
    image_emb = self._embeddings[1][np.searchsorted(self.images.labels, rows)]
    text_emb = encoder.embed_texts(texts)
    metrics = retrieval.retrieval_metrics(
      text_emb, image_emb, np.arange(len(rows)), block=self.block
    )
    tokenizer = text_stats.tokenizer_of(encoder)
    meta = {
      'n_examples': len(rows),
      'n_images': len(rows),
      'n_texts': len(rows),
      'n_heldout_concepts': len(heldout),
      **retrieval.shared_texts_meta(text_emb, image_emb, np.arange(len(rows)), texts, self.block),
    }
    if tokenizer is not None:
      meta['text'] = text_stats.caption_text_stats(tokenizer, texts)
    return metrics, meta
