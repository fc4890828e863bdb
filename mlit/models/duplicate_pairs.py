"""Pairs of a batch that are not negatives: the same image, or the same text, in two rows.

In-batch contrastive learning takes every other row of the batch as a negative. Multilingual
data breaks that more than English data does: one image comes with texts in many languages
(WIT's descriptions, the emoji demo's CLDR names, backtranslations), and short texts repeat across
images (a keyword, a title). When row j holds row i's image, text j describes image i, yet the
loss pushes them apart; when row j holds row i's text, column j ties with the positive and no
model can rank it. `duplicate_pairs` finds both kinds from the batch's inputs, exactly, so the
loss can leave them out (mlit/models/losses.py, `duplicates=`).

Rows are compared by a fingerprint of their bits, not by their embeddings: a locked tower's
output for one image is the same in every row only up to the compiler's reduction order, and
augmented pixels of one image are not the same input (those rows stay negatives).
"""

from typing import Mapping

import jax
import jax.numpy as jnp

# Two 32-bit hashes per row: a chance pair of different rows collides with odds of about 2^-64,
# so a batch of 16,384 (1.3e8 pairs) has about 1e-11 chance of one false duplicate.
_HASHES = 2


def _weights(width: int, k: int) -> jax.Array:
  """Hash k's multipliers, [width] odd uint32: a mix of the position, computed in the step (no
  constant of the pixels' width in the program), the same on every process and step."""
  w = jnp.arange(width, dtype=jnp.uint32) * jnp.uint32(0x9E3779B1) + jnp.uint32(
    (0x85EBCA77 * k + 1) % 2**32
  )
  w = (w ^ (w >> 15)) * jnp.uint32(0x2C1B3C6D)
  return (w ^ (w >> 12)) | jnp.uint32(1)


def row_fingerprints(x: jax.Array) -> jax.Array:
  """[B, ...] -> [B, 2] uint32: equal rows (bit for bit) give equal fingerprints."""
  flat = x.reshape(x.shape[0], -1)
  if jnp.issubdtype(flat.dtype, jnp.floating):
    flat = jax.lax.bitcast_convert_type(flat.astype(jnp.float32), jnp.uint32)
  else:
    flat = flat.astype(jnp.uint32)
  # Position-weighted sums modulo 2^32. The multipliers are odd, so rows that differ in one
  # position always differ (an odd factor is invertible); several differences cancel in a hash
  # with odds of about 2^-32.
  width = flat.shape[1]
  return jnp.stack([jnp.sum(flat * _weights(width, k), axis=1) for k in range(_HASHES)], axis=1)


def same_rows(x: jax.Array) -> jax.Array:
  """[B, B] bool: rows i and j of x are equal (fingerprints), the diagonal included."""
  f = row_fingerprints(x)
  return jnp.all(f[:, None, :] == f[None, :, :], axis=-1)


def duplicate_pairs(images: jax.Array, texts: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  """Per text signal, [B, B] bool, False on the diagonal: row j holds row i's image or row i's
  text of that signal. The images are compared once for all signals."""
  same_image = same_rows(images)
  off_diagonal = ~jnp.eye(images.shape[0], dtype=bool)
  return {name: (same_image | same_rows(t)) & off_diagonal for name, t in texts.items()}
