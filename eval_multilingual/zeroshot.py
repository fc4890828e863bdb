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

TextEncoder = Callable[[Sequence[str]], np.ndarray]


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


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
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}.npy'
  np.save(tmp, w)
  os.replace(tmp, path)  # atomic: concurrent evals never read half a file
  return w, False


def topk_classes(
  image_emb: np.ndarray, weights: np.ndarray, k: int = 5, block: int = 4096
) -> np.ndarray:
  """[N, k] indices of the k best classes per image, best first, in blocks of images."""
  k = min(k, weights.shape[0])
  out = np.empty((image_emb.shape[0], k), np.int64)
  w = l2_normalize(weights).T
  for s in range(0, image_emb.shape[0], block):
    logits = l2_normalize(image_emb[s : s + block]) @ w
    part = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(logits, part, 1), axis=1, kind='stable')
    out[s : s + block] = np.take_along_axis(part, order, 1)
  return out


def classification_metrics(topk: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """acc1, acc5 and mean per-class recall (over classes that have images)."""
  labels = np.asarray(labels)
  hit1 = topk[:, 0] == labels
  hit5 = (topk[:, :5] == labels[:, None]).any(axis=1)
  recalls = [hit1[labels == c].mean() for c in np.unique(labels)]
  return {
    'acc1': float(hit1.mean()),
    'acc5': float(hit5.mean()),
    'mean_per_class_recall': float(np.mean(recalls)),
  }


def multilabel_metrics(topk: np.ndarray, label_sets: Sequence[Sequence[int]]) -> dict[str, float]:
  """'Any correct' accuracy: a prediction counts when it is one of the image's labels."""
  hit1 = [int(p[0]) in set(s) for p, s in zip(topk, label_sets)]
  hit5 = [bool(set(map(int, p[:5])) & set(s)) for p, s in zip(topk, label_sets)]
  return {'acc1': float(np.mean(hit1)), 'acc5': float(np.mean(hit5))}


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
) -> tuple[dict, dict]:
  """Metrics of one language; images of classes outside the prompt set are skipped."""
  keep, mapped = subset_labels(labels, class_labels)
  if not keep.any():
    raise ValueError('no image has a label covered by the prompt set')
  topk = topk_classes(image_emb[keep], weights)
  metrics = classification_metrics(topk, mapped[keep])
  meta = {
    'n_examples': int(keep.sum()),
    'n_classes': len(class_labels),
    'n_images_skipped': int((~keep).sum()),
  }
  if label_sets is not None:
    lookup = dict(zip(class_labels, range(len(class_labels))))
    sets = [[lookup[l] for l in s if l in lookup] for s, k in zip(label_sets, keep) if k]
    ml = multilabel_metrics(topk, sets)
    metrics.update({f'multilabel_{k}': v for k, v in ml.items()})
  return metrics, meta
