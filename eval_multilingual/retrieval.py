"""Text<->image retrieval recall@k with block-wise similarities.

Texts [T, D] and images [I, D] (unit norm), `text_to_image[t]` = the image of text t
(several texts may share an image). Rank of a query = number of wrong candidates that
score at least as high as its best correct candidate (ties count against the model: ranks.py), so
recall@k = share of queries with rank < k, which is "a correct item is in the top k":
- text->image ('image_retrieval_recall@k'): one correct image per text.
- image->text ('text_retrieval_recall@k'): any of the image's captions in the top k.
Similarities are computed `block` queries at a time, so memory is block x candidates
(100k x 100k in blocks of 1024: 400 MB float32 per block) and never T x I.
"""

from typing import Sequence

import numpy as np

from eval_multilingual import ranks as ranks_lib
from eval_multilingual.unit_norm import l2_normalize

KS = (1, 5, 10)


def text_to_image_ranks(
  text_emb: np.ndarray, image_emb: np.ndarray, text_to_image: np.ndarray, block: int = 1024
) -> np.ndarray:
  t, im = l2_normalize(text_emb), l2_normalize(image_emb)
  gt = np.asarray(text_to_image, np.int64)
  ranks = np.empty(len(t), np.int64)
  for s in range(0, len(t), block):
    sims = t[s : s + block] @ im.T  # [b, I]
    ranks[s : s + block] = ranks_lib.single_correct_ranks(sims, gt[s : s + block])
  return ranks


def image_to_text_ranks(
  text_emb: np.ndarray, image_emb: np.ndarray, text_to_image: np.ndarray, block: int = 1024
) -> np.ndarray:
  t, im = l2_normalize(text_emb), l2_normalize(image_emb)
  gt = np.asarray(text_to_image, np.int64)
  order = np.argsort(gt, kind='stable')  # texts grouped by image
  bounds = np.searchsorted(gt[order], np.arange(len(im) + 1))
  ranks = np.empty(len(im), np.int64)
  for s in range(0, len(im), block):
    sims = im[s : s + block] @ t.T  # [b, T]
    e = s + sims.shape[0]
    own = order[bounds[s] : bounds[e]]  # captions of this block
    row = gt[own] - s
    own_scores = sims[row, own]
    best = np.full(sims.shape[0], -np.inf, np.float32)
    np.maximum.at(best, row, own_scores)  # best caption per image
    n_own_ge = np.bincount(row[own_scores >= best[row]], minlength=sims.shape[0])
    ranks[s:e] = ranks_lib.ranks(sims, best, n_own_ge)
  return ranks


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[int, float]:
  return {k: float(np.mean(ranks < k)) for k in ks}


def retrieval_metrics(
  text_emb: np.ndarray,
  image_emb: np.ndarray,
  text_to_image: Sequence[int],
  ks: Sequence[int] = KS,
  block: int = 1024,
) -> dict[str, float]:
  """CLIP_benchmark-named recall@k in both directions."""
  gt = np.asarray(text_to_image, np.int64)
  if len(gt) != len(text_emb):
    raise ValueError(f'{len(text_emb)} texts but {len(gt)} text->image links')
  if len(gt) and (gt.min() < 0 or gt.max() >= len(image_emb)):
    raise ValueError(f'text->image link out of range [0, {len(image_emb)})')
  has_text = np.zeros(len(image_emb), bool)
  has_text[gt] = True
  if not has_text.all():
    raise ValueError(f'{int((~has_text).sum())} images have no caption')
  out = {}
  for k, v in recall_at_k(text_to_image_ranks(text_emb, image_emb, gt, block), ks).items():
    out[f'image_retrieval_recall@{k}'] = v
  for k, v in recall_at_k(image_to_text_ranks(text_emb, image_emb, gt, block), ks).items():
    out[f'text_retrieval_recall@{k}'] = v
  return out
