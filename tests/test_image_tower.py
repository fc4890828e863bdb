"""Tests of the ViT image tower (mlit.models.image_tower)."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlit.models import image_tower

SMALL = dict(width=32, depth=1, mlp_dim=64, num_heads=4, patch_size=8)


def _shapes(model, size=16):
  return jax.eval_shape(
    model.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  )


def _flat_names(tree):
  return {'/'.join(k): v.shape for k, v in flax.traverse_util.flatten_dict(tree).items()}


def _params(model, size=16, seed=0):
  """Random values for the model's params (numpy: no RNG compilation)."""
  rng = np.random.default_rng(seed)
  flat = flax.traverse_util.flatten_dict(_shapes(model, size)['params'])
  return flax.traverse_util.unflatten_dict(
    {
      k: ((k[-1] == 'scale') + 0.2 * rng.standard_normal(v.shape)).astype(np.float32)
      for k, v in flat.items()
    }
  )


def _images(size=16, n=2, seed=1):
  return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def test_vit_config_variants():
  assert image_tower.vit_config('B/16') == dict(
    width=768, depth=12, mlp_dim=3072, num_heads=12, patch_size=(16, 16)
  )
  assert image_tower.vit_config('So400m/14') == dict(
    width=1152, depth=27, mlp_dim=4304, num_heads=16, patch_size=(14, 14)
  )
  assert image_tower.vit_config('g/14')['depth'] == 40
  assert image_tower.vit_config('Ti/8')['patch_size'] == (8, 8)
  assert image_tower.vit_config('L') == dict(width=1024, depth=24, mlp_dim=4096, num_heads=16)
  for variant in ('X/16', 'B/abc', 'B/0', 'b/16'):
    with pytest.raises(ValueError, match=variant.split('/')[0]):
      image_tower.vit_config(variant)


@pytest.mark.parametrize('pool', ['tok', 'gap', 'map'])
def test_param_names_follow_big_vision(pool):
  model = image_tower.ViT(**SMALL, pool_type=pool, rep_size=True, num_classes=7)
  names = _flat_names(_shapes(model)['params'])
  blk = 'Transformer/encoderblock_0/'
  expected = {
    'embedding/kernel': (8, 8, 3, 32),
    'embedding/bias': (32,),
    'pos_embedding': (1, 4, 32),
    blk + 'LayerNorm_0/scale': (32,),
    blk + 'LayerNorm_1/bias': (32,),
    blk + 'MultiHeadDotProductAttention_0/query/kernel': (32, 4, 8),
    blk + 'MultiHeadDotProductAttention_0/value/bias': (4, 8),
    blk + 'MultiHeadDotProductAttention_0/out/kernel': (4, 8, 32),
    blk + 'MlpBlock_0/Dense_0/kernel': (32, 64),
    blk + 'MlpBlock_0/Dense_1/kernel': (64, 32),
    'Transformer/encoder_norm/scale': (32,),
    'pre_logits/kernel': (32, 32),
    'head/kernel': (32, 7),
    'head/bias': (7,),
  }
  for k, shape in expected.items():
    assert names.get(k) == shape, k
  assert ('cls' in names) == (pool == 'tok')
  assert ('MAPHead_0/probe' in names) == (pool == 'map')
  if pool == 'map':
    assert names['MAPHead_0/MultiHeadDotProductAttention_0/key/kernel'] == (32, 4, 8)
    assert names['MAPHead_0/MlpBlock_0/Dense_0/kernel'] == (32, 64)
  # Nothing else: 16 per block, 5 stem/posemb/norm, 4 pre_logits/head,
  # and cls (tok) or probe+MHA+LN+MLP (map).
  extra = {'tok': 1, 'gap': 0, 'map': 15}[pool]
  assert len(names) == 16 + 5 + 4 + extra


def test_real_init_values():
  model = image_tower.ViT(**SMALL, pool_type='tok', rep_size=16, num_classes=5)
  params = model.init(jax.random.PRNGKey(0), _images())['params']
  np.testing.assert_array_equal(params['cls'], 0)
  np.testing.assert_array_equal(params['head']['kernel'], 0)
  assert params['pre_logits']['kernel'].shape == (32, 16)
  assert 0.05 < float(jnp.std(params['pos_embedding'])) < 0.4  # 1/sqrt(32)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(params))


def test_pooling_and_heads_semantics():
  images = _images()
  for pool in ('tok', 'gap'):
    model = image_tower.ViT(**SMALL, pool_type=pool)
    feats, out = model.apply({'params': _params(model)}, images)
    assert feats.shape == (2, 32) and out['pre_logits_2d'].shape == (2, 2, 2, 32)
    enc = out['encoded']
    want = enc[:, 0] if pool == 'tok' else enc.mean(axis=1)
    np.testing.assert_allclose(feats, want, atol=1e-6)
    assert enc.shape == (2, 5 if pool == 'tok' else 4, 32)

  model = image_tower.ViT(**SMALL, pool_type='gap', rep_size=True, num_classes=3)
  params = _params(model)
  feats, out = model.apply({'params': params}, images)
  pre, head = params['pre_logits'], params['head']
  np.testing.assert_allclose(
    feats, np.tanh(out['head_input'] @ pre['kernel'] + pre['bias']), atol=1e-5
  )
  np.testing.assert_allclose(out['logits'], feats @ head['kernel'] + head['bias'], atol=1e-5)
  assert out['logits_2d'].shape == (2, 2, 2, 3)


def test_map_pooling_uses_probe():
  model = image_tower.ViT(**SMALL, pool_type='map')
  params = _params(model)
  images = _images()
  feats, out = model.apply({'params': params}, images)
  assert feats.shape == (2, 32) and np.all(np.isfinite(feats))
  params['MAPHead_0']['probe'] = params['MAPHead_0']['probe'] + 1.0
  feats2, out2 = model.apply({'params': params}, images)
  np.testing.assert_array_equal(out['encoded'], out2['encoded'])
  assert np.max(np.abs(feats - feats2)) > 1e-3


def test_sincos2d_posemb():
  pe = np.asarray(image_tower.posemb_sincos_2d(2, 3, 8))
  assert pe.shape == (1, 6, 8)
  y, x, slow = 1, 2, 1e-4  # row of grid cell (1, 2); omega = [1, 1e-4]
  want = [
    np.sin(x),
    np.sin(x * slow),
    np.cos(x),
    np.cos(x * slow),
    np.sin(y),
    np.sin(y * slow),
    np.cos(y),
    np.cos(y * slow),
  ]
  np.testing.assert_allclose(pe[0, y * 3 + x], want, atol=1e-6)
  with pytest.raises(ValueError, match='width % 4'):
    image_tower.posemb_sincos_2d(2, 2, 10)
  model = image_tower.ViT(**SMALL, pool_type='gap', posemb='sincos2d')
  assert 'pos_embedding' not in _flat_names(_shapes(model)['params'])
  _, out = model.apply({'params': _params(model)}, _images())
  np.testing.assert_allclose(
    out['with_posemb'] - out['stem'].reshape(2, 4, 32),
    np.broadcast_to(image_tower.posemb_sincos_2d(2, 2, 32), (2, 4, 32)),
    atol=1e-5,
  )


def test_bfloat16_computation():
  model32 = image_tower.ViT(**SMALL, pool_type='map')
  model16 = image_tower.ViT(**SMALL, pool_type='map', dtype='bfloat16')
  params = _params(model32)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(_shapes(model16)['params']))
  f32, _ = model32.apply({'params': params}, _images())
  f16, out = model16.apply({'params': params}, _images())
  assert f16.dtype == jnp.bfloat16 and out['encoded'].dtype == jnp.bfloat16
  scale = float(np.max(np.abs(f32)))
  assert float(np.max(np.abs(np.asarray(f16, np.float32) - f32))) < 0.05 * scale


def test_dropout_only_in_training():
  model = image_tower.ViT(**SMALL, pool_type='gap', dropout=0.5)
  params = {'params': _params(model)}
  a, _ = model.apply(params, _images())
  b, _ = model.apply(params, _images())
  np.testing.assert_array_equal(a, b)
  c, _ = model.apply(params, _images(), train=True, rngs={'dropout': jax.random.PRNGKey(1)})
  assert np.max(np.abs(a - c)) > 1e-3


def test_bad_inputs_are_clear_errors():
  model = image_tower.ViT(**SMALL)
  params = {'params': _params(model)}
  with pytest.raises(ValueError, match='not a multiple of the patch size'):
    model.apply(params, np.zeros((1, 18, 16, 3), np.float32))
  with pytest.raises(ValueError, match=r'\[B, H, W, 3\]'):
    model.apply(params, np.zeros((16, 16, 3), np.float32))
  with pytest.raises(ValueError, match='pool_type'):
    image_tower.ViT(**SMALL, pool_type='avg').apply(params, _images())
