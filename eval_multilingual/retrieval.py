"""Text<->image retrieval recall@k with block-wise similarities.

Texts [T, D] and images [I, D] (unit norm), `text_to_image[t]` = the image of text t
(several texts may share an image). Rank of a query = number of wrong candidates that
score at least as high as its best correct candidate (ties count against the model: ranks.py), so
recall@k = share of queries with rank < k, which is "a correct item is in the top k":
- text->image ('image_retrieval_recall@k'): one correct image per text.
- image->text ('text_retrieval_recall@k'): any of the image's captions in the top k.
Similarities are computed `block` queries at a time, so memory is block x candidates
(100k x 100k in blocks of 1024: 400 MB float32 per block) and never T x I.

A text that captions several images (the same string: "a red circle" under 5 images) ties with
itself for each of them, so image->text counts every one of those images wrong at R@1 (the
headline, as for any tie); and its copies are identical text->image queries for different
images, so at most one of them finds its own first. `shared_texts_merged` scores both
directions, beside the headline, with such a text counted as a caption of each of its images.
"""

from typing import Sequence

import numpy as np

from eval_multilingual import ranks as ranks_lib
from eval_multilingual.unit_norm import l2_normalize

KS = (1, 5, 10)


def text_to_image_ranks(
  text_emb: np.ndarray,
  image_emb: np.ndarray,
  text_to_image: np.ndarray,
  block: int = 1024,
  same_text: np.ndarray | None = None,
) -> np.ndarray:
  """`same_text` [T]: one id per distinct string (text_ids); a text's images are then every
  image its string captions. Without it, its own image only."""
  if same_text is not None:
    return _merged_text_to_image_ranks(text_emb, image_emb, text_to_image, same_text, block)
  t, im = l2_normalize(text_emb), l2_normalize(image_emb)
  gt = np.asarray(text_to_image, np.int64)
  ranks = np.empty(len(t), np.int64)
  for s in range(0, len(t), block):
    sims = t[s : s + block] @ im.T  # [b, I]
    ranks[s : s + block] = ranks_lib.single_correct_ranks(sims, gt[s : s + block])
  return ranks


def image_to_text_ranks(
  text_emb: np.ndarray,
  image_emb: np.ndarray,
  text_to_image: np.ndarray,
  block: int = 1024,
  same_text: np.ndarray | None = None,
) -> np.ndarray:
  """`same_text` [T]: one id per distinct string (text_ids); a text with the id of one of the
  image's captions counts as the image's own. Without it only the image's own texts do."""
  if same_text is not None:
    return _merged_image_to_text_ranks(text_emb, image_emb, text_to_image, same_text, block)
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


def text_ids(texts: Sequence[str]) -> np.ndarray:
  """One id per distinct string, in order of first appearance."""
  ids: dict[str, int] = {}
  return np.array([ids.setdefault(t, len(ids)) for t in texts], np.int64)


def _distinct_texts(text_emb, same_text):
  """(ids, unit embedding of each distinct string's first copy). Each string is scored once, so
  its copies tie exactly (the same row's product at another position can round differently)."""
  t = l2_normalize(text_emb)
  ids = np.asarray(same_text, np.int64)
  if len(ids) != len(t):
    raise ValueError(f'{len(t)} texts but {len(ids)} text ids')
  first = np.full(int(ids.max()) + 1 if len(ids) else 0, len(ids), np.int64)
  np.minimum.at(first, ids, np.arange(len(ids)))
  return ids, t[first]


def _merged_image_to_text_ranks(text_emb, image_emb, text_to_image, same_text, block):
  im, gt = l2_normalize(image_emb), np.asarray(text_to_image, np.int64)
  ids, distinct = _distinct_texts(text_emb, same_text)
  n_ids = len(distinct)
  copies = np.bincount(ids, minlength=n_ids)
  own = np.unique(gt * n_ids + ids)  # each (image, string) once
  own_image, own_id = own // n_ids, own % n_ids
  ranks = np.empty(len(im), np.int64)
  for s in range(0, len(im), block):
    sims = im[s : s + block] @ distinct.T  # [b, distinct strings]
    e = s + sims.shape[0]
    sel = (own_image >= s) & (own_image < e)
    row, ident = own_image[sel] - s, own_id[sel]
    own_scores = sims[row, ident]
    best = np.full(sims.shape[0], -np.inf, np.float32)
    np.maximum.at(best, row, own_scores)
    at_or_above = own_scores >= best[row]
    n_own = np.bincount(row[at_or_above], copies[ident][at_or_above], sims.shape[0])
    n_all = (sims >= best[:, None]) @ copies
    ranks[s:e] = n_all - n_own.astype(np.int64)
  return ranks


def _merged_text_to_image_ranks(text_emb, image_emb, text_to_image, same_text, block):
  im, gt = l2_normalize(image_emb), np.asarray(text_to_image, np.int64)
  ids, distinct = _distinct_texts(text_emb, same_text)  # one query per string: copies rank alike
  n_ids = len(distinct)
  pairs = np.unique(ids * len(im) + gt)  # each (string, image) once
  pair_id, pair_image = pairs // len(im), pairs % len(im)
  by_id = np.empty(n_ids, np.int64)
  for s in range(0, n_ids, block):
    sims = distinct[s : s + block] @ im.T  # [b, I]
    e = s + sims.shape[0]
    sel = (pair_id >= s) & (pair_id < e)
    row = pair_id[sel] - s
    scores = sims[row, pair_image[sel]]
    best = np.full(sims.shape[0], -np.inf, np.float32)
    np.maximum.at(best, row, scores)
    n_own = np.bincount(row[scores >= best[row]], minlength=sims.shape[0])
    by_id[s:e] = ranks_lib.ranks(sims, best, n_own)
  return by_id[ids]


def shared_texts(texts: Sequence[str], text_to_image: Sequence[int]) -> int:
  """How many texts have a string that also captions another image."""
  images_of: dict[str, set] = {}
  for text, image in zip(texts, text_to_image):
    images_of.setdefault(text, set()).add(int(image))
  return sum(len(images_of[text]) > 1 for text in texts)


def shared_texts_merged(
  text_emb: np.ndarray,
  image_emb: np.ndarray,
  text_to_image: Sequence[int],
  texts: Sequence[str],
  ks: Sequence[int] = KS,
  block: int = 1024,
) -> dict[str, float]:
  """Recall@k both ways with a text shared by several images counted as each one's caption:
  image->text finds any copy, text->image any of the string's images."""
  gt, ids = np.asarray(text_to_image, np.int64), text_ids(texts)
  t2i = text_to_image_ranks(text_emb, image_emb, gt, block, ids)
  i2t = image_to_text_ranks(text_emb, image_emb, gt, block, ids)
  out = {f'image_retrieval_recall@{k}': v for k, v in recall_at_k(t2i, ks).items()}
  out.update({f'text_retrieval_recall@{k}': v for k, v in recall_at_k(i2t, ks).items()})
  return out


def shared_texts_meta(text_emb, image_emb, text_to_image, texts, block: int = 1024) -> dict:
  """A retrieval's meta: n_texts_shared, and with shared texts shared_texts_merged."""
  n = shared_texts(texts, text_to_image)
  if not n:
    return {'n_texts_shared': 0}
  merged = shared_texts_merged(text_emb, image_emb, text_to_image, texts, block=block)
  return {'n_texts_shared': n, 'shared_texts_merged': merged}


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
