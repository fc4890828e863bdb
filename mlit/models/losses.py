"""Contrastive losses for two-tower image-text models.

All losses take the *global* batch of embeddings. Under `jax.jit` with a
batch sharded over a device mesh, the similarity matrix below is the full
[B, B] matrix, so every example sees every other example of the global batch
as a negative (XLA inserts the gathers). The paper found this better than
per-device losses.

Masking: `mask[i] == False` removes pair i entirely (as a query and as a
negative), so a masked loss equals the unmasked loss on the sub-batch of valid
pairs. This is what an empty text signal (e.g. a YFCC photo without a
description) needs.

Duplicates: `duplicates[i, j] == True` (i != j) says column j matches row i's
positive (the same image or the same text: mlit/models/duplicate_pairs.py);
the pair is then neither a positive nor a negative, in both directions.
"""

from typing import Callable, Mapping, Optional

import jax
import jax.numpy as jnp

# A large finite negative instead of -inf keeps gradients NaN-free.
_NEG = -1e9


def _valid_mask(batch_size: int, mask: Optional[jax.Array]) -> jax.Array:
  if mask is None:
    return jnp.ones((batch_size,), bool)
  if mask.shape != (batch_size,):
    raise ValueError(f'mask must have shape ({batch_size},), got {mask.shape}')
  return mask.astype(bool)


def _check_pair(zimg: jax.Array, ztxt: jax.Array) -> None:
  if zimg.ndim != 2 or zimg.shape != ztxt.shape:
    raise ValueError(
      f'zimg and ztxt must both be [B, D] with equal shapes, got {zimg.shape} and {ztxt.shape}'
    )


def _off_diagonal(b: int, duplicates: Optional[jax.Array]) -> Optional[jax.Array]:
  """The duplicates as bool [B, B] without the diagonal (a row's own pair is its positive)."""
  if duplicates is None:
    return None
  if duplicates.shape != (b, b):
    raise ValueError(f'duplicates must have shape ({b}, {b}), got {duplicates.shape}')
  return duplicates.astype(bool) & ~jnp.eye(b, dtype=bool)


def _pairs(valid: jax.Array, duplicates: Optional[jax.Array]) -> jax.Array:
  """[B, B] bool: the pairs the loss compares (both rows valid, not a duplicate)."""
  pair = valid[:, None] & valid[None, :]
  return pair if duplicates is None else pair & ~duplicates


def _duplicate_metrics(duplicates: Optional[jax.Array], valid: jax.Array) -> dict:
  if duplicates is None:
    return {}
  rows = jnp.any(duplicates & valid[None, :], axis=1) & valid
  return {'duplicate_rows': jnp.sum(rows)}  # valid rows with a valid pair left out


def _accuracies(logits: jax.Array, valid: jax.Array, n: jax.Array, pair: jax.Array) -> dict:
  """In-batch top-1 accuracy per direction over the valid pairs."""
  idx = jnp.arange(logits.shape[0])
  # Masked columns (invalid rows, duplicates) must never win the argmax.
  masked = jnp.where(pair, logits, _NEG)
  i2t = (jnp.argmax(masked, axis=1) == idx) & valid
  t2i = (jnp.argmax(masked, axis=0) == idx) & valid
  return {
    'img2txt_acc': jnp.sum(i2t) / n,
    'txt2img_acc': jnp.sum(t2i) / n,
  }


def softmax_contrastive_loss(
  zimg: jax.Array,
  ztxt: jax.Array,
  temperature: jax.Array,
  mask: Optional[jax.Array] = None,
  duplicates: Optional[jax.Array] = None,
) -> tuple[jax.Array, dict]:
  """Bidirectional softmax (InfoNCE / CLIP) loss over the global batch.

  Args:
    zimg: [B, D] image embeddings (normally L2-normalised).
    ztxt: [B, D] text embeddings; row i is the positive for image i.
    temperature: scalar multiplier of the logits (exp of the learned `t`).
    mask: optional bool [B]; False removes pair i from the loss.
    duplicates: optional bool [B, B]; True leaves pair (i, j) out of both
      softmaxes (module doc).

  Returns:
    (loss, metrics): loss is the mean of the image->text and text->image
    cross-entropies over valid pairs (0 when none is valid); metrics hold
    'loss', 'img2txt_loss', 'txt2img_loss', 'img2txt_acc', 'txt2img_acc',
    'n_valid' (and 'duplicate_rows' with duplicates).
  """
  _check_pair(zimg, ztxt)
  b = zimg.shape[0]
  valid = _valid_mask(b, mask)
  n = jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
  logits = jnp.einsum('id,jd->ij', zimg.astype(jnp.float32), ztxt.astype(jnp.float32)) * temperature
  duplicates = _off_diagonal(b, duplicates)
  pair = _pairs(valid, duplicates)
  masked = jnp.where(pair, logits, _NEG)
  diag = jnp.diagonal(logits)
  i2t = jax.nn.logsumexp(masked, axis=1) - diag
  t2i = jax.nn.logsumexp(masked, axis=0) - diag
  i2t_loss = jnp.sum(jnp.where(valid, i2t, 0.0)) / n
  t2i_loss = jnp.sum(jnp.where(valid, t2i, 0.0)) / n
  loss = 0.5 * (i2t_loss + t2i_loss)
  metrics = {
    'loss': loss,
    'img2txt_loss': i2t_loss,
    'txt2img_loss': t2i_loss,
    'n_valid': jnp.sum(valid),
    **_duplicate_metrics(duplicates, valid),
  }
  metrics.update(_accuracies(logits, valid, n, pair))
  return loss, metrics


def sigmoid_contrastive_loss(
  zimg: jax.Array,
  ztxt: jax.Array,
  temperature: jax.Array,
  bias: jax.Array,
  mask: Optional[jax.Array] = None,
  duplicates: Optional[jax.Array] = None,
) -> tuple[jax.Array, dict]:
  """SigLIP pairwise sigmoid loss over the global batch.

  Every (image i, text j) pair is an independent binary problem with label
  +1 on the diagonal and -1 elsewhere; logits are temperature * zimg.ztxt +
  bias. As in SigLIP the summed loss is normalised by the number of (valid)
  images, not the number of pairs.

  Args:
    zimg: [B, D] image embeddings.
    ztxt: [B, D] text embeddings.
    temperature: scalar logit scale.
    bias: scalar logit bias.
    mask: optional bool [B]; False removes pair i (its row and column).
    duplicates: optional bool [B, B]; True leaves pair (i, j) out of the sum.

  Returns:
    (loss, metrics) with 'loss', 'img2txt_acc', 'txt2img_acc', 'n_valid' (and
    'duplicate_rows' with duplicates).
  """
  _check_pair(zimg, ztxt)
  b = zimg.shape[0]
  valid = _valid_mask(b, mask)
  n = jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
  logits = (
    jnp.einsum('id,jd->ij', zimg.astype(jnp.float32), ztxt.astype(jnp.float32)) * temperature + bias
  )
  labels = 2.0 * jnp.eye(b) - 1.0
  duplicates = _off_diagonal(b, duplicates)
  pair = _pairs(valid, duplicates)
  nll = -jax.nn.log_sigmoid(labels * logits)
  loss = jnp.sum(jnp.where(pair, nll, 0.0)) / n
  metrics = {'loss': loss, 'n_valid': jnp.sum(valid), **_duplicate_metrics(duplicates, valid)}
  metrics.update(_accuracies(logits, valid, n, pair))
  return loss, metrics


def text_signal_mask(tokens: jax.Array, eos_id: int = 1) -> jax.Array:
  """True for rows of int tokens [B, L] that hold any token besides PAD/EOS.

  An empty text tokenised with add_eos=True becomes [EOS, 0, 0, ...]; such a
  row carries no signal and must be masked out of the loss.
  """
  return jnp.any((tokens != 0) & (tokens != eos_id), axis=-1)


def multi_signal_loss(
  loss_fn: Callable[..., tuple[jax.Array, dict]],
  zimg: jax.Array,
  ztxts: Mapping[str, jax.Array],
  masks: Optional[Mapping[str, jax.Array]] = None,
  duplicates: Optional[Mapping[str, jax.Array]] = None,
  **loss_kwargs,
) -> tuple[jax.Array, dict]:
  """Sum of one contrastive loss per text signal (paper Appendix C).

  Args:
    loss_fn: `softmax_contrastive_loss` or `sigmoid_contrastive_loss`.
    zimg: [B, D] image embeddings shared by all signals.
    ztxts: signal name (e.g. 'title') -> [B, D] text embeddings.
    masks: signal name -> bool [B] (e.g. from `text_signal_mask`); a missing
      name means all valid.
    duplicates: signal name -> bool [B, B] (duplicate_pairs.duplicate_pairs);
      a missing name leaves every pair in.
    **loss_kwargs: passed on (temperature, bias).

  Returns:
    (total loss, metrics) where metrics are '<signal>/<name>' plus 'loss'.
  """
  if not ztxts:
    raise ValueError('multi_signal_loss needs at least one text signal')
  masks, duplicates = masks or {}, duplicates or {}
  for what, given in (('masks', masks), ('duplicates', duplicates)):
    unknown = set(given) - set(ztxts)
    if unknown:
      raise KeyError(f'{what} given for unknown text signals: {sorted(unknown)}')
  total = 0.0
  metrics = {}
  for name in sorted(ztxts):
    loss, m = loss_fn(
      zimg, ztxts[name], mask=masks.get(name), duplicates=duplicates.get(name), **loss_kwargs
    )
    total = total + loss
    metrics.update({f'{name}/{k}': v for k, v in m.items()})
  metrics['loss'] = total
  return total, metrics
