"""Zero-shot classification: prompt-ensembled classifier weights and accuracy metrics.

Classifier of a class: embed every alias in every template, L2-normalise each embedding,
average over templates (per alias), then over aliases, and renormalise (CLIP / LiT).
Weights are cached as .npy files keyed by (model fingerprint, prompt set, language,
prompt content hash), so a second evaluation of the same checkpoint is fast.
"""

import os
import re
from typing import Callable, Sequence

import numpy as np

from eval_multilingual import prompts as prompts_lib
from eval_multilingual import ranks as ranks_lib
from eval_multilingual import text_stats
from eval_multilingual.unit_norm import l2_normalize
from tasks import file_io

TextEncoder = Callable[[Sequence[str]], np.ndarray]


def classifier_weights(encode_texts: TextEncoder, prompt_set: prompts_lib.PromptSet) -> np.ndarray:
  """[num classes in the set, D] unit-norm zero-shot classifier."""
  texts, owners = [], []  # owners[i] = (class, alias) of texts[i]
  for c in range(len(prompt_set.classes)):
    for a, alias_texts in enumerate(prompt_set.prompts(c)):
      texts.extend(alias_texts)
      owners.extend([(c, a)] * len(alias_texts))
  emb = l2_normalize(encode_texts(texts))
  if emb.shape[0] != len(texts):
    raise ValueError(f'text encoder returned {emb.shape[0]} embeddings for {len(texts)} texts')
  n_t = len(prompt_set.templates)
  weights = np.zeros((len(prompt_set.classes), emb.shape[1]), np.float32)
  start = 0
  for c, aliases in enumerate(prompt_set.classes):
    per_alias = emb[start : start + n_t * len(aliases)].reshape(len(aliases), n_t, -1)
    start += n_t * len(aliases)
    weights[c] = per_alias.mean(axis=1).mean(axis=0)
  return l2_normalize(weights)


def _safe(name: str) -> str:
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)


def cached_classifier_weights(
  encode_texts: TextEncoder,
  prompt_set: prompts_lib.PromptSet,
  cache_dir: str | None,
  model_fingerprint: str,
) -> tuple[np.ndarray, bool]:
  """classifier_weights() through an on-disk cache; returns (weights, was_cached)."""
  if not cache_dir:
    return classifier_weights(encode_texts, prompt_set), False
  path = os.path.join(
    cache_dir,
    _safe(model_fingerprint),
    _safe(prompt_set.name),
    f'{_safe(prompt_set.language)}-{prompt_set.fingerprint()}.npy',
  )
  if os.path.exists(path):
    w = np.load(path)
    if w.shape[0] == len(prompt_set.classes):
      return w, True
  w = classifier_weights(encode_texts, prompt_set)
  with file_io.atomic_path(path) as tmp, open(tmp, 'wb') as f:  # concurrent evals: no half file
    np.save(f, w)
  return w, False


def class_logits(image_emb: np.ndarray, weights: np.ndarray, block: int = 4096):
  """Yields (start, [b, C] cosine logits) for blocks of `block` images."""
  w = l2_normalize(weights).T
  for s in range(0, image_emb.shape[0], block):
    yield s, l2_normalize(image_emb[s : s + block]) @ w


def label_ranks(
  image_emb: np.ndarray,
  weights: np.ndarray,
  labels: np.ndarray,
  class_groups: np.ndarray | None = None,
  block: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
  """Per image: (rank of its class, ties against (ranks.py); best-scoring wrong class).

  class_groups [C]: classes with the same group id are merged (a prediction of any member of
  the label's group is correct), e.g. classes whose texts have identical token ids.
  """
  labels = np.asarray(labels, np.int64)
  out_rank = np.empty(len(labels), np.int64)
  out_wrong = np.full(len(labels), -1, np.int64)
  for s, logits in class_logits(image_emb, weights, block):
    y = labels[s : s + len(logits)]
    rows = np.arange(len(logits))
    correct = logits[rows, y]
    if class_groups is None:
      n_own = 1
      own = np.zeros(logits.shape, bool)
      own[rows, y] = True
    else:
      own = class_groups[None, :] == class_groups[y][:, None]
      n_own = (own & (logits >= correct[:, None])).sum(axis=1)
    out_rank[s : s + len(logits)] = ranks_lib.ranks(logits, correct, n_own)
    if logits.shape[1] > 1:
      out_wrong[s : s + len(logits)] = np.where(own, -np.inf, logits).argmax(axis=1)
  return out_rank, out_wrong


def classification_metrics(rank: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """acc1, acc5 and mean per-class recall (over classes that have images) from label ranks."""
  labels = np.asarray(labels)
  hit1 = rank < 1
  recalls = [hit1[labels == c].mean() for c in np.unique(labels)]
  return {
    'acc1': float(hit1.mean()),
    'acc5': float((rank < 5).mean()),
    'mean_per_class_recall': float(np.mean(recalls)),
  }


def multilabel_ranks(
  image_emb: np.ndarray, weights: np.ndarray, label_sets: Sequence[Sequence[int]], block: int = 4096
) -> np.ndarray:
  """'Any correct' ranks: wrong classes scoring at least as high as the image's best label."""
  out = np.empty(len(label_sets), np.int64)
  for s, logits in class_logits(image_emb, weights, block):
    own = np.zeros(logits.shape, bool)
    for i, labels in enumerate(label_sets[s : s + len(logits)]):
      own[i, list(labels)] = True
    best = np.where(own, logits, -np.inf).max(axis=1)
    n_own = (own & (logits >= best[:, None])).sum(axis=1)
    out[s : s + len(logits)] = ranks_lib.ranks(logits, best, n_own)
  return out


def multilabel_metrics(rank: np.ndarray) -> dict[str, float]:
  """'Any correct' accuracy: a prediction counts when it is one of the image's labels."""
  return {'acc1': float((rank < 1).mean()), 'acc5': float((rank < 5).mean())}


def per_class_results(
  rank: np.ndarray, wrong: np.ndarray, labels: np.ndarray, class_labels: Sequence[int]
) -> dict[str, dict]:
  """{str(dataset label): {n_images, acc1, confused_with}}: confused_with is the dataset label the
  class's wrongly classified images most often scored highest (None when all are correct)."""
  out = {}
  for c in np.unique(labels):
    mask = labels == c
    miss = wrong[mask & (rank >= 1)]
    confused = None
    if len(miss) and miss.max() >= 0:
      confused = int(class_labels[int(np.bincount(miss[miss >= 0]).argmax())])
    out[str(class_labels[int(c)])] = {
      'n_images': int(mask.sum()),
      'acc1': float((rank[mask] < 1).mean()),
      'confused_with': confused,
    }
  return out


def subset_labels(labels: np.ndarray, class_labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """Maps dataset labels onto a prompt set's classes: (keep mask, index in the set)."""
  lookup = np.full(max(max(class_labels), int(np.max(labels))) + 1, -1, np.int64)
  lookup[np.asarray(class_labels)] = np.arange(len(class_labels))
  mapped = lookup[np.asarray(labels)]
  return mapped >= 0, mapped


def evaluate(
  image_emb: np.ndarray,
  labels: np.ndarray,
  weights: np.ndarray,
  class_labels: Sequence[int],
  label_sets: Sequence[Sequence[int]] | None = None,
  class_groups: np.ndarray | None = None,
) -> tuple[dict, dict]:
  """Metrics of one language; images of classes outside the prompt set are skipped.

  class_groups [C] (optional): group id per class, equal for classes whose texts have identical
  token ids. The metrics stay the raw ones (the headline: such classes tie, and ties count
  against); meta['collisions_merged'] adds acc1/acc5 with each group merged into one class, and
  meta['per_class'] the per-class accuracy and confusions (eval_multilingual/error_analysis.py).
  """
  keep, mapped = subset_labels(labels, class_labels)
  if not keep.any():
    raise ValueError('no image has a label covered by the prompt set')
  rank, wrong = label_ranks(image_emb[keep], weights, mapped[keep])
  metrics = classification_metrics(rank, mapped[keep])
  meta = {
    'n_examples': int(keep.sum()),
    'n_classes': len(class_labels),
    'n_images_skipped': int((~keep).sum()),
    'per_class': per_class_results(rank, wrong, mapped[keep], class_labels),
  }
  if class_groups is not None:
    merged, _ = label_ranks(image_emb[keep], weights, mapped[keep], np.asarray(class_groups))
    meta['collisions_merged'] = multilabel_metrics(merged)
  if label_sets is not None:
    lookup = dict(zip(class_labels, range(len(class_labels))))
    sets = [[lookup[l] for l in s if l in lookup] for s, k in zip(label_sets, keep) if k]
    ml = multilabel_metrics(multilabel_ranks(image_emb[keep], weights, sets))
    metrics.update({f'multilabel_{k}': v for k, v in ml.items()})
  return metrics, meta


def evaluate_language(
  encoder,
  prompt_set: prompts_lib.PromptSet,
  image_emb: np.ndarray,
  labels: np.ndarray,
  weights: np.ndarray,
  label_sets: Sequence[Sequence[int]] | None = None,
) -> tuple[dict, dict]:
  """evaluate() plus the prompt texts' truncation and collisions at the encoder's text length
  (meta['text']), merged into meta['per_class'] (name, tokens, truncated, collides_with)."""
  tokenizer = text_stats.tokenizer_of(encoder)
  groups = per_class_text = None
  stats = {}
  if tokenizer is not None:
    stats, groups, per_class_text = text_stats.class_text_stats(tokenizer, prompt_set)
  metrics, meta = evaluate(image_emb, labels, weights, prompt_set.labels, label_sets, groups)
  if per_class_text is not None:
    meta['text'] = stats
    for label, row in meta['per_class'].items():
      row.update(per_class_text[label])
  return metrics, meta
