"""Contrastive losses against straightforward NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlit.models import losses


def _embeddings(b=6, d=5, seed=0):
  rng = np.random.default_rng(seed)
  zi = rng.normal(size=(b, d))
  zt = zi + 0.5 * rng.normal(size=(b, d))
  zi /= np.linalg.norm(zi, axis=1, keepdims=True)
  zt /= np.linalg.norm(zt, axis=1, keepdims=True)
  return zi.astype(np.float32), zt.astype(np.float32)


def _np_softmax_loss(zi, zt, t):
  """Loops written from the definition, in float64."""
  zi, zt = zi.astype(np.float64), zt.astype(np.float64)
  b = len(zi)
  i2t = t2i = 0.0
  for i in range(b):
    row = [t * zi[i] @ zt[j] for j in range(b)]
    i2t += -row[i] + np.log(np.sum(np.exp(row)))
    col = [t * zi[j] @ zt[i] for j in range(b)]
    t2i += -col[i] + np.log(np.sum(np.exp(col)))
  return 0.5 * (i2t / b + t2i / b)


def _np_sigmoid_loss(zi, zt, t, bias):
  zi, zt = zi.astype(np.float64), zt.astype(np.float64)
  b = len(zi)
  total = 0.0
  for i in range(b):
    for j in range(b):
      label = 1.0 if i == j else -1.0
      z = label * (t * zi[i] @ zt[j] + bias)
      total += np.log1p(np.exp(-z))
  return total / b


def test_softmax_matches_numpy():
  zi, zt = _embeddings()
  loss, m = losses.softmax_contrastive_loss(jnp.asarray(zi), jnp.asarray(zt), jnp.float32(10.0))
  ref = _np_softmax_loss(zi, zt, 10.0)
  np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
  assert int(m['n_valid']) == 6


def test_softmax_accuracy_metrics():
  zi, _ = _embeddings(b=4)
  # Texts identical to images: each row's best match is its own pair.
  _, m = losses.softmax_contrastive_loss(zi, zi, 10.0)
  assert float(m['img2txt_acc']) == 1.0 and float(m['txt2img_acc']) == 1.0
  # Swap two texts: images 0 and 1 now match the wrong text.
  zt = zi[[1, 0, 2, 3]]
  _, m = losses.softmax_contrastive_loss(zi, zt, 10.0)
  assert float(m['img2txt_acc']) == pytest.approx(0.5)
  assert float(m['txt2img_acc']) == pytest.approx(0.5)


def test_sigmoid_matches_numpy():
  zi, zt = _embeddings(seed=1)
  loss, _ = losses.sigmoid_contrastive_loss(zi, zt, 10.0, -10.0)
  np.testing.assert_allclose(float(loss), _np_sigmoid_loss(zi, zt, 10.0, -10.0), rtol=1e-5)


@pytest.mark.parametrize('which', ['softmax', 'sigmoid'])
def test_mask_equals_sub_batch(which):
  zi, zt = _embeddings(b=7, seed=2)
  mask = np.array([1, 0, 1, 1, 0, 1, 1], bool)
  if which == 'softmax':
    fn = lambda a, b, m=None: losses.softmax_contrastive_loss(a, b, 7.0, m)
  else:
    fn = lambda a, b, m=None: losses.sigmoid_contrastive_loss(a, b, 7.0, -3.0, m)
  masked, mm = fn(zi, zt, jnp.asarray(mask))
  sub, sm = fn(zi[mask], zt[mask])
  np.testing.assert_allclose(float(masked), float(sub), rtol=1e-6)
  assert float(mm['img2txt_acc']) == pytest.approx(float(sm['img2txt_acc']))
  # All masked: zero loss, no NaN.
  none, _ = fn(zi, zt, jnp.zeros(7, bool))
  assert float(none) == 0.0


def test_temperature_gradient_finite():
  zi, zt = _embeddings()

  def f(t, b):
    soft, _ = losses.softmax_contrastive_loss(zi, zt, jnp.exp(t))
    sig, _ = losses.sigmoid_contrastive_loss(zi, zt, jnp.exp(t), b)
    return soft + sig

  gt, gb = jax.grad(f, argnums=(0, 1))(jnp.log(10.0), -10.0)
  assert np.isfinite(gt) and np.isfinite(gb) and gt != 0.0
  # Check d/dt against a central finite difference in float64 NumPy.
  eps = 1e-3
  fd = (
    _np_softmax_loss(zi, zt, np.exp(np.log(10) + eps))
    - _np_softmax_loss(zi, zt, np.exp(np.log(10) - eps))
  ) / (2 * eps)
  g_soft = jax.grad(lambda t: losses.softmax_contrastive_loss(zi, zt, jnp.exp(t))[0])(jnp.log(10.0))
  np.testing.assert_allclose(float(g_soft), fd, rtol=1e-3)
  # A fully masked batch must not give NaN gradients.
  g0 = jax.grad(
    lambda t: losses.softmax_contrastive_loss(zi, zt, jnp.exp(t), jnp.zeros(6, bool))[0]
  )(1.0)
  assert np.isfinite(g0)


def test_multi_signal_sum_and_text_mask():
  zi, zt = _embeddings(b=4, seed=3)
  _, zt2 = _embeddings(b=4, seed=4)
  tokens = np.array([[5, 6, 1, 0], [1, 0, 0, 0], [7, 1, 0, 0], [0, 0, 0, 0]])
  mask = losses.text_signal_mask(jnp.asarray(tokens))
  assert mask.tolist() == [True, False, True, False]
  total, m = losses.multi_signal_loss(
    losses.softmax_contrastive_loss,
    zi,
    {'title': zt, 'tags': zt2},
    {'tags': mask},
    temperature=10.0,
  )
  a, _ = losses.softmax_contrastive_loss(zi, zt, 10.0)
  b, _ = losses.softmax_contrastive_loss(zi, zt2, 10.0, mask)
  np.testing.assert_allclose(float(total), float(a + b), rtol=1e-6)
  assert 'title/img2txt_acc' in m and int(m['tags/n_valid']) == 2
  with pytest.raises(KeyError, match='descr'):
    losses.multi_signal_loss(
      losses.softmax_contrastive_loss, zi, {'title': zt}, {'descr': mask}, temperature=1.0
    )
