"""TwoTower: heads, normalisation, temperature, locking, pre-computed mode."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mlit.models import losses, text_tower, two_tower
from mlit.training import optimizer, param_rules

CFG = text_tower.T5Config(
  vocab_size=32, emb_dim=16, num_heads=2, num_encoder_layers=1, head_dim=8, mlp_dim=32
)
VIT = dict(width=16, depth=1, mlp_dim=32, num_heads=2, patch_size=(8, 8), pool_type='tok')
IMG = jax.random.uniform(jax.random.PRNGKey(1), (4, 16, 16, 3), minval=-1.0)
TXT = jnp.array([[3, 4, 1, 0], [5, 1, 0, 0], [7, 8, 9, 1], [2, 6, 1, 0]])


def _init(model, **inputs):
  # jitted: one compilation instead of one per eager op (seconds on a CPU)
  return nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), **inputs))['params']


def _loss_fn(model):
  def f(params, batch):
    zimg, ztxt, ex = model.apply({'params': params}, **batch)
    return losses.softmax_contrastive_loss(zimg, ztxt, ex['t'])[0]

  return f


def test_shapes_norm_temperature_and_names():
  m = two_tower.TwoTower(text=CFG, out_dim=8, image=VIT, image_head=True)
  params = _init(m, image=IMG, text=TXT)
  names = param_rules.param_names(params)
  assert {
    't',
    'img_head/kernel',
    'txt/head/kernel',
    'txt/token_embedder/embedding',
    'img/embedding/kernel',
  } <= set(names)
  assert 'b' not in names
  np.testing.assert_allclose(float(params['t']), np.log(10.0), rtol=1e-6)
  zimg, ztxt, ex = m.apply({'params': params}, image=IMG, text=TXT)
  assert zimg.shape == (4, 8) and ztxt.shape == (4, 8)
  np.testing.assert_allclose(np.linalg.norm(zimg, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(ztxt, axis=1), 1.0, rtol=1e-5)
  assert float(ex['t']) == pytest.approx(10.0) and ex['b'] is None
  # One side only.
  zi, zt, _ = m.apply({'params': params}, image=IMG)
  assert zt is None and np.allclose(zi, zimg)
  zi, zt, _ = m.apply({'params': params}, text={'title': TXT, 'tags': TXT})
  assert zi is None and np.allclose(zt['tags'], ztxt)


def test_no_image_head_keeps_vit_width():
  m = two_tower.TwoTower(text=CFG, out_dim=16, image=VIT)
  params = _init(m, image=IMG, text=TXT)
  assert 'img_head' not in params
  zimg, _, _ = m.apply({'params': params}, image=IMG)
  assert zimg.shape == (4, 16)


def test_siglip_bias():
  m = two_tower.TwoTower(text=CFG, out_dim=8, bias_init=-10.0)
  emb = jax.random.normal(jax.random.PRNGKey(3), (4, 8))
  params = _init(m, image_embedding=emb, text=TXT)
  assert float(params['b']) == -10.0
  zimg, ztxt, ex = m.apply({'params': params}, image_embedding=emb, text=TXT)
  loss, _ = losses.sigmoid_contrastive_loss(zimg, ztxt, ex['t'], ex['b'])
  assert np.isfinite(float(loss))


def test_precomputed_mode_has_no_image_tower():
  m = two_tower.TwoTower(text=CFG, out_dim=8, image=None, image_head=True)
  emb = jax.random.normal(jax.random.PRNGKey(2), (4, 24))
  params = _init(m, image_embedding=emb, text=TXT)
  assert 'img' not in params and params['img_head']['kernel'].shape == (24, 8)
  with pytest.raises(ValueError, match='pre-computed'):
    m.apply({'params': params}, image=IMG)
  g = jax.jit(jax.grad(_loss_fn(m)))(params, {'image_embedding': emb, 'text': TXT})
  assert float(jnp.abs(g['t'])) > 0 and np.isfinite(float(g['t']))


def test_locked_image_tower_gets_no_gradient_and_no_update():
  m = two_tower.TwoTower(text=CFG, out_dim=8, image=VIT, image_head=True, lock_image=True)
  params = _init(m, image=IMG, text=TXT)
  batch = {'image': IMG, 'text': TXT}
  g = jax.jit(jax.grad(_loss_fn(m)))(params, batch)
  img_g = jax.tree_util.tree_leaves(g['img'])
  assert img_g and all(float(jnp.abs(x).max()) == 0.0 for x in img_g)
  assert float(jnp.abs(g['img_head']['kernel']).max()) > 0
  assert float(jnp.abs(g['txt']['head']['kernel']).max()) > 0
  # Without the lock the ViT does get gradients (the test can fail).
  unlocked = two_tower.TwoTower(text=CFG, out_dim=8, image=VIT, image_head=True)
  g2 = jax.jit(jax.grad(_loss_fn(unlocked)))(params, batch)
  assert float(jnp.abs(g2['img']['embedding']['kernel']).max()) > 0
  # A full optimizer step with the Lu rule: the ViT is bit-identical after.
  tx, _ = optimizer.make_optimizer(params, total_steps=5, freeze=[r'^img/'])
  state = tx.init(params)
  upd, state = jax.jit(tx.update)(g2, state, params)
  new = jax.jit(optax.apply_updates)(params, upd)
  for a, b in zip(jax.tree_util.tree_leaves(params['img']), jax.tree_util.tree_leaves(new['img'])):
    np.testing.assert_array_equal(a, b)
  assert not np.allclose(new['txt']['head']['kernel'], params['txt']['head']['kernel'])


def test_encode_image_needs_exactly_one_input():
  m = two_tower.TwoTower(text=CFG, out_dim=8)
  emb = jnp.ones((4, 8))
  params = _init(m, image_embedding=emb, text=TXT)
  with pytest.raises(ValueError, match='exactly one'):
    m.apply(
      {'params': params}, image=IMG, image_embedding=emb, method=two_tower.TwoTower.encode_image
    )
  with pytest.raises(ValueError, match='width 12 != out_dim 8'):
    m.apply({'params': params}, image_embedding=jnp.ones((4, 12)))
