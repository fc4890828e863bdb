"""Duplicate pairs (the same image or text in two rows of a batch) and the losses that leave them
out, against loops written from the definition; then the trainer's step on a batch that holds
one image's texts in two languages."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_losses import _embeddings

from mlit.models import duplicate_pairs, losses, text_tower, two_tower
from mlit.training import train


def _np_softmax_loss(zi, zt, t, dup):
  """The InfoNCE loss in float64, a pair (i, j) with dup[i, j] in neither softmax."""
  zi, zt = zi.astype(np.float64), zt.astype(np.float64)
  b = len(zi)
  i2t = t2i = 0.0
  for i in range(b):
    row = [t * zi[i] @ zt[j] for j in range(b) if j == i or not dup[i, j]]
    i2t += -t * zi[i] @ zt[i] + np.log(np.sum(np.exp(row)))
    col = [t * zi[j] @ zt[i] for j in range(b) if j == i or not dup[j, i]]
    t2i += -t * zi[i] @ zt[i] + np.log(np.sum(np.exp(col)))
  return 0.5 * (i2t / b + t2i / b)


def _np_sigmoid_loss(zi, zt, t, bias, dup):
  zi, zt = zi.astype(np.float64), zt.astype(np.float64)
  total = 0.0
  for i in range(len(zi)):
    for j in range(len(zi)):
      if i != j and dup[i, j]:
        continue
      z = (1.0 if i == j else -1.0) * (t * zi[i] @ zt[j] + bias)
      total += np.log1p(np.exp(-z))
  return total / len(zi)


def test_finds_the_same_image_or_text_bit_for_bit():
  rng = np.random.default_rng(0)
  images = rng.normal(size=(6, 3, 4, 2)).astype(np.float32)  # pixels, any rank
  images[3] = images[0]  # row 3: row 0's image, another text
  images[5] = np.nextafter(images[1], np.float32(np.inf))  # one ulp from row 1: another image
  texts = rng.integers(2, 50, size=(6, 5)).astype(np.int32)
  texts[4] = texts[2]  # row 4: row 2's text, another image
  dup = np.asarray(
    duplicate_pairs.duplicate_pairs(jnp.asarray(images), {'text': jnp.asarray(texts)})['text']
  )
  want = np.zeros((6, 6), bool)
  want[0, 3] = want[3, 0] = want[2, 4] = want[4, 2] = True
  np.testing.assert_array_equal(dup, want)
  # Pre-computed embeddings [B, D] and a padded text equal up to its last token.
  emb = rng.normal(size=(4, 8)).astype(np.float32)
  emb[2] = emb[1]
  texts = np.array([[5, 6, 1, 0], [5, 6, 1, 0], [5, 6, 7, 1], [9, 1, 0, 0]], np.int32)
  dup = np.asarray(
    duplicate_pairs.duplicate_pairs(jnp.asarray(emb), {'text': jnp.asarray(texts)})['text']
  )
  assert sorted(zip(*np.nonzero(dup))) == [(0, 1), (1, 0), (1, 2), (2, 1)]


def test_a_hash_collision_needs_more_than_a_permuted_or_shifted_row():
  # Position-weighted: the same values in another order, or moved by one place, are other rows.
  x = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [0, 1, 2, 3], [2, 1, 3, 4]], np.int32)
  f = np.asarray(duplicate_pairs.row_fingerprints(jnp.asarray(x)))
  assert len({tuple(r) for r in f}) == 4 and f.dtype == np.uint32


@pytest.mark.parametrize('kind', ['softmax', 'sigmoid'])
def test_losses_leave_duplicate_pairs_out(kind):
  zi, zt = _embeddings(b=6)
  zi[4] = zi[1]  # rows 1 and 4: one image, two texts
  zt[5] = zt[0]  # rows 0 and 5: one text, two images
  dup = np.zeros((6, 6), bool)
  dup[1, 4] = dup[4, 1] = dup[0, 5] = dup[5, 0] = True
  if kind == 'softmax':
    fn = lambda d: losses.softmax_contrastive_loss(zi, zt, 7.0, duplicates=d)
    ref = _np_softmax_loss(zi, zt, 7.0, dup)
    ref_all = _np_softmax_loss(zi, zt, 7.0, np.zeros_like(dup))
  else:
    fn = lambda d: losses.sigmoid_contrastive_loss(zi, zt, 7.0, -3.0, duplicates=d)
    ref = _np_sigmoid_loss(zi, zt, 7.0, -3.0, dup)
    ref_all = _np_sigmoid_loss(zi, zt, 7.0, -3.0, np.zeros_like(dup))
  loss, m = fn(jnp.asarray(dup))
  np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
  assert int(m['duplicate_rows']) == 4
  assert abs(ref - ref_all) > 1e-3  # the pairs left out changed the loss
  # A flagged diagonal is ignored (a row's own pair stays its positive); no duplicate at all
  # is the plain loss, bit for bit.
  np.testing.assert_allclose(float(fn(jnp.asarray(dup | np.eye(6, dtype=bool)))[0]), ref, rtol=1e-5)
  plain, m0 = fn(None)
  assert float(fn(jnp.zeros((6, 6), bool))[0]) == float(plain) and 'duplicate_rows' not in m0


def test_a_duplicate_never_wins_the_in_batch_accuracy():
  zi, _ = _embeddings(b=4)
  zi[2] = zi[1]  # rows 1 and 2 the same pair: without the mask, row 2's tie goes to column 1
  dup = np.zeros((4, 4), bool)
  dup[1, 2] = dup[2, 1] = True
  _, plain = losses.softmax_contrastive_loss(zi, zi, 10.0)
  _, m = losses.softmax_contrastive_loss(zi, zi, 10.0, duplicates=jnp.asarray(dup))
  assert float(plain['img2txt_acc']) == 0.75 and float(m['img2txt_acc']) == 1.0
  assert float(m['txt2img_acc']) == 1.0


def test_masked_rows_and_duplicates_together():
  zi, zt = _embeddings(b=5)
  zi[3] = zi[0]
  dup = np.zeros((5, 5), bool)
  dup[0, 3] = dup[3, 0] = True
  valid = np.array([True, True, True, False, True])  # row 3 masked: its duplicate pair goes too
  loss, m = losses.softmax_contrastive_loss(zi, zt, 7.0, jnp.asarray(valid), jnp.asarray(dup))
  keep = np.flatnonzero(valid)
  ref = _np_softmax_loss(zi[keep], zt[keep], 7.0, np.zeros((4, 4), bool))
  np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
  assert int(m['duplicate_rows']) == 0
  with pytest.raises(ValueError, match=r'duplicates must have shape \(5, 5\)'):
    losses.softmax_contrastive_loss(zi, zt, 7.0, duplicates=jnp.zeros((5, 4), bool))


def test_train_step_leaves_out_one_images_texts_in_two_languages():
  # The trainer's own step, pre-computed embeddings: rows 0 and 2 hold one image with its
  # texts in two languages, rows 1 and 3 one text under two images.
  config = text_tower.T5Config(
    vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32, num_encoder_layers=1
  )
  model = two_tower.TwoTower(text=config, image=None, out_dim=8)
  rng = np.random.default_rng(0)
  emb = rng.normal(size=(6, 8)).astype(np.float32)
  emb[2] = emb[0]
  text = rng.integers(2, 64, size=(6, 7)).astype(np.int32)
  text[:, -1] = 1
  text[3] = text[1]
  batch = {'image_embedding': jnp.asarray(emb), 'text': jnp.asarray(text)}
  params = nn.unbox(
    jax.jit(model.init)(
      jax.random.PRNGKey(0), image_embedding=batch['image_embedding'], text={'text': batch['text']}
    )['params']
  )
  tx = optax.sgd(0.0)
  state = {'step': jnp.int32(0), 'params': params, 'opt_state': tx.init(params)}
  lr_fn = lambda step: 0.0

  def metrics(as_negatives):
    step = train.make_train_step(
      model, tx, ['text'], 'image_embedding', 'softmax', 0, lr_fn, as_negatives
    )
    return jax.jit(step)(state, batch)[1]

  plain, left_out = metrics(True), metrics(False)
  assert 'text/duplicate_rows' not in plain and int(left_out['text/duplicate_rows']) == 4
  # The same embeddings, four pairs fewer in the softmaxes: a lower loss (each row's
  # log-sum-exp loses terms), checked against the definition.
  zimg, ztxt, extras = model.apply(
    {'params': params}, image_embedding=batch['image_embedding'], text={'text': batch['text']}
  )
  dup = np.zeros((6, 6), bool)
  dup[0, 2] = dup[2, 0] = dup[1, 3] = dup[3, 1] = True
  t = float(extras['t'])
  np.testing.assert_allclose(
    float(left_out['loss']),
    _np_softmax_loss(np.asarray(zimg), np.asarray(ztxt['text']), t, dup),
    rtol=1e-4,
  )
  assert float(left_out['loss']) < float(plain['loss'])


def test_each_text_signal_leaves_out_its_own_duplicates():
  # YFCC's title and tags: the same image in rows 0 and 3 for both, the same tags in rows 1
  # and 2 only: each signal's loss leaves out its own pairs, and the total is their sum.
  zi, zt = _embeddings(b=4)
  _, ztags = _embeddings(b=4, seed=1)
  images = np.arange(4)[:, None].astype(np.int32).repeat(3, 1)
  images[3] = images[0]
  title = np.array([[4, 5, 1], [6, 1, 0], [7, 8, 1], [9, 1, 0]], np.int32)
  tags = np.array([[4, 1, 0], [6, 7, 1], [6, 7, 1], [9, 1, 0]], np.int32)
  dup = duplicate_pairs.duplicate_pairs(
    jnp.asarray(images), {'title': jnp.asarray(title), 'tags': jnp.asarray(tags)}
  )
  total, m = losses.multi_signal_loss(
    losses.softmax_contrastive_loss,
    zi,
    {'title': zt, 'tags': ztags},
    duplicates=dup,
    temperature=7.0,
  )
  assert int(m['title/duplicate_rows']) == 2 and int(m['tags/duplicate_rows']) == 4
  want = sum(
    _np_softmax_loss(zi, z, 7.0, np.asarray(dup[k])) for k, z in (('title', zt), ('tags', ztags))
  )
  np.testing.assert_allclose(float(total), want, rtol=1e-5)
  with pytest.raises(KeyError, match="duplicates given for unknown text signals: \\['desc'\\]"):
    losses.multi_signal_loss(
      losses.softmax_contrastive_loss,
      zi,
      {'title': zt},
      duplicates={'desc': dup['title']},
      temperature=7.0,
    )
