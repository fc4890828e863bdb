"""The one rank rule behind every metric (zero-shot accuracy and retrieval recall@k).

Rank of a query = number of wrong candidates that score at least as high as its best correct
candidate; top-k / recall@k = share of queries with rank < k.

Ties count against the model. An exact tie is no evidence for the correct candidate, and ties
are real here: two class names that truncate to the same token ids get identical embeddings.
Counting ties for the model would score both such classes 100% correct; breaking them by
position (argsort) makes the number depend on class order. Counting them against gives a
conservative number that anyone can recompute from the embeddings with `>=`.
"""

import numpy as np


def ranks(scores: np.ndarray, best_correct: np.ndarray, n_correct_at_or_above) -> np.ndarray:
  """scores [B, C]; best_correct [B]: the best correct candidate's score per query;
  n_correct_at_or_above [B] or int: correct candidates scoring >= best_correct (>= 1)."""
  return (scores >= best_correct[:, None]).sum(axis=1) - n_correct_at_or_above


def single_correct_ranks(scores: np.ndarray, correct: np.ndarray) -> np.ndarray:
  """Ranks when each query has one correct candidate, `correct[b]` (an index into scores[b])."""
  return ranks(scores, scores[np.arange(len(scores)), correct], 1)
