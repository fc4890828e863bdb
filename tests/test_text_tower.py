"""TextTower: param names/axes, pooling, masking, dropout, gin model files."""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import gin
from mlit.models import text_tower

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'gin')

TOKENS = np.array([[5, 6, 7, 1, 0, 0], [8, 1, 0, 0, 0, 0], [9, 10, 11, 12, 13, 1]], np.int32)


def _config(**kw):
  args = dict(vocab_size=32, emb_dim=16, num_heads=2, num_encoder_layers=2, head_dim=8, mlp_dim=24)
  args.update(kw)
  return text_tower.T5Config(**args)


@functools.lru_cache(maxsize=None)
def _init(acts=('gelu', 'linear'), out_dim=None):
  model = text_tower.TextTower(_config(mlp_activations=acts), out_dim=out_dim)
  return model, model.init(jax.random.PRNGKey(0), TOKENS)['params']


@pytest.mark.parametrize(
  'acts,mlp_names', [(('gelu', 'linear'), ('wi_0', 'wi_1')), (('relu',), ('wi',))]
)
def test_param_names_shapes_and_logical_axes(acts, mlp_names):
  _, params = _init(acts, out_dim=8)
  specs = traverse_util.flatten_dict(nn.get_partition_spec(params), sep='/')
  shapes = {k: v.shape for k, v in traverse_util.flatten_dict(nn.unbox(params), sep='/').items()}
  want = {
    'token_embedder/embedding': ((32, 16), ('vocab', 'embed')),
    'encoder/relpos_bias/rel_embedding': ((2, 32), ('heads', 'relpos_buckets')),
    'encoder/encoder_norm/scale': ((16,), ('embed',)),
    'head/kernel': ((16, 8), ('embed', None)),
    'head/bias': ((8,), (None,)),
  }
  for i in range(2):
    p = f'encoder/layers_{i}/'
    want[p + 'pre_attention_layer_norm/scale'] = ((16,), ('embed',))
    want[p + 'pre_mlp_layer_norm/scale'] = ((16,), ('embed',))
    for n in ('query', 'key', 'value'):
      want[p + f'attention/{n}/kernel'] = ((16, 16), ('embed', 'joined_kv'))
    want[p + 'attention/out/kernel'] = ((16, 16), ('joined_kv', 'embed'))
    for n in mlp_names:
      want[p + f'mlp/{n}/kernel'] = ((16, 24), ('embed', 'mlp'))
    want[p + 'mlp/wo/kernel'] = ((24, 16), ('mlp', 'embed'))
  assert set(shapes) == set(want)
  for key, (shape, axes) in want.items():
    assert shapes[key] == shape, key
    assert tuple(specs[key]) == axes, key
  # Every parameter carries logical axes (none is a bare array).
  boxed = jax.tree_util.tree_leaves(
    params, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned)
  )
  assert all(isinstance(x, nn.LogicallyPartitioned) for x in boxed)


def test_relative_position_buckets():
  rel = np.array([0, -1, 1, -7, -8, 7, 8, -16, -127, -128, -1000, 1000])
  got = text_tower.relative_position_bucket(rel)
  # key before query (negative) -> 0..15; key after query -> 16..31.
  np.testing.assert_array_equal(got, [0, 1, 17, 7, 8, 23, 24, 10, 15, 15, 15, 31])


def test_pooling_modes_and_padding_invariance():
  model, params = _init()
  hidden = model.apply({'params': params}, TOKENS)[1]['hidden']
  mask = (TOKENS > 0)[..., None]
  outs = {}
  for pooling in text_tower.POOLINGS:
    m = text_tower.TextTower(model.config, pooling=pooling)
    outs[pooling] = np.asarray(m.apply({'params': params}, TOKENS)[0])
  h = np.asarray(hidden)
  np.testing.assert_allclose(outs['mean'], (h * mask).sum(1) / mask.sum(1), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(outs['first'], h[:, 0])
  np.testing.assert_allclose(outs['last'], h[np.arange(3), [3, 1, 5]])
  # Extra PAD columns change nothing for the real tokens.
  padded = np.pad(TOKENS, ((0, 0), (0, 5)))
  pooled2, extras2 = model.apply({'params': params}, padded)
  np.testing.assert_allclose(np.asarray(pooled2), outs['mean'], atol=1e-5)
  np.testing.assert_allclose(
    np.asarray(extras2['hidden'])[:, :6][mask[..., 0]], h[mask[..., 0]], atol=1e-5
  )
  with pytest.raises(ValueError, match='pooling'):
    text_tower.TextTower(model.config, pooling='max').apply({'params': params}, TOKENS)


def test_head_dropout_and_dtype():
  model, params = _init(out_dim=8)
  pooled, _ = model.apply({'params': params}, TOKENS)
  assert pooled.shape == (3, 8) and pooled.dtype == jnp.float32
  drop = text_tower.TextTower(_config(dropout_rate=0.5), out_dim=8)
  a = drop.apply({'params': params}, TOKENS)[0]
  b = drop.apply(
    {'params': params}, TOKENS, deterministic=False, rngs={'dropout': jax.random.PRNGKey(1)}
  )[0]
  np.testing.assert_allclose(a, pooled, rtol=1e-6)
  assert np.abs(np.asarray(a - b)).max() > 1e-3
  bf16 = text_tower.TextTower(_config(dtype='bfloat16'), out_dim=8)
  pooled16, extras16 = bf16.apply({'params': params}, TOKENS)
  assert extras16['hidden'].dtype == jnp.bfloat16
  assert np.abs(np.asarray(pooled16 - pooled)).max() < 0.1 * np.abs(np.asarray(pooled)).max()


def test_embedding_init_stddev():
  # T5X's default (1.0) unless set; a small init changes only the token table.
  for std in (1.0, 0.05):
    cfg = _config(embedding_init_stddev=std, vocab_size=4096)
    params = nn.unbox(text_tower.TextTower(cfg).init(jax.random.PRNGKey(0), TOKENS))
    table = np.asarray(params['params']['token_embedder']['embedding'])
    assert abs(table.std() / std - 1) < 0.05
  assert text_tower.T5Config(8, 4, 1, 1, 4, 8).embedding_init_stddev == 1.0
  with pytest.raises(ValueError, match='embedding_init_stddev'):
    _config(embedding_init_stddev=0.0)


def test_config_validation():
  with pytest.raises(ValueError, match='mlp_activations'):
    _config(mlp_activations=('gelu', 'swishy'))
  with pytest.raises(ValueError, match='num_heads'):
    _config(num_heads=0)
  cfg = _config(mlp_activations=['gelu', 'linear'], dtype='bfloat16')
  assert cfg.mlp_activations == ('gelu', 'linear')
  assert cfg.dtype == jnp.bfloat16
  hash(cfg)  # usable as a flax module attribute


# (file, vocab, emb, heads, layers, head_dim, mlp) from T5X / mT5 papers.
GIN_MODELS = [
  ('models/t5_1_1/small.gin', 32128, 512, 6, 8, 64, 1024),
  ('models/t5_1_1/base.gin', 32128, 768, 12, 12, 64, 2048),
  ('models/t5_1_1/large.gin', 32128, 1024, 16, 24, 64, 2816),
  ('models/mt5/small.gin', 250112, 512, 6, 8, 64, 1024),
  ('models/mt5/base.gin', 250112, 768, 12, 12, 64, 2048),
  ('models/mt5/large.gin', 250112, 1024, 16, 24, 64, 2816),
  ('models/mt5/xl.gin', 250112, 2048, 32, 24, 64, 5120),
  ('models/mt5/xxl.gin', 250112, 4096, 64, 24, 64, 10240),
  ('local_tiny.gin', 512, 32, 2, 2, 16, 64),
]


@pytest.mark.parametrize('path,vocab,emb,heads,layers,head_dim,mlp', GIN_MODELS)
def test_gin_model_files(tmp_path, path, vocab, emb, heads, layers, head_dim, mlp):
  from mlit.commands import gin_flags  # pylint: disable=g-import-not-at-top

  try:
    bindings = ['DROPOUT_RATE = 0.1'] + ([f'MODEL_DIR = "{tmp_path}"'] if 'tiny' in path else [])
    gin_flags.parse_gin([path], bindings, [GIN_DIR])
    cfg = gin.get_configurable(text_tower.T5Config)()
    with gin.unlock_config():
      pooling = gin.query_parameter('%TEXT_POOLING')
    # As two_tower.TwoTower builds it from TEXT_CONFIG and TEXT_POOLING (runs/lit_tune.gin).
    tower = text_tower.TextTower(config=cfg, pooling=pooling)
  finally:
    gin.clear_config()
  got = (
    cfg.vocab_size,
    cfg.emb_dim,
    cfg.num_heads,
    cfg.num_encoder_layers,
    cfg.head_dim,
    cfg.mlp_dim,
  )
  assert got == (vocab, emb, heads, layers, head_dim, mlp)
  assert cfg.mlp_activations == ('gelu', 'linear')
  assert cfg.dropout_rate == 0.1
  assert tower.config == cfg and tower.pooling == pooling == 'mean'
  if path == 'local_tiny.gin':
    params = jax.eval_shape(tower.init, jax.random.PRNGKey(0), TOKENS)
    assert nn.unbox(params)['params']['token_embedder']['embedding'].shape == (512, 32)


def test_t5x_partitioning_rules_apply():
  # T5X's standard rules (subset that names every axis the tower uses).
  rules = (
    ('batch', 'data'),
    ('vocab', 'model'),
    ('embed', None),
    ('mlp', 'model'),
    ('heads', 'model'),
    ('joined_kv', 'model'),
    ('relpos_buckets', None),
    ('length', None),
  )
  model, params = _init()
  mesh_axes = nn.logical_to_mesh(nn.get_partition_spec(params), rules)
  assert tuple(mesh_axes['token_embedder']['embedding']) == ('model', None)
  layer = mesh_axes['encoder']['layers_0']
  assert tuple(layer['attention']['query']['kernel']) == (None, 'model')
  assert tuple(layer['mlp']['wo']['kernel']) == ('model', None)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ('data', 'model'))
  # Inside a mesh + rules context the activation constraints become real
  # sharding constraints; the constrained program must compile and agree.
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):  # as the trainer does
    pooled, _ = jax.jit(model.apply)({'params': params}, TOKENS)
  want, _ = model.apply({'params': params}, TOKENS)
  np.testing.assert_allclose(pooled, want, rtol=1e-5, atol=1e-6)
