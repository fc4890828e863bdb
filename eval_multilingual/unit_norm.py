"""Unit-length embeddings: eval's one L2 normaliser (cosine similarity becomes a dot product)."""

import numpy as np


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
  """float32 `x` scaled to unit L2 norm along `axis`; an all-zero vector stays zero."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)
