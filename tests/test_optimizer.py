"""Optimizer: locking, lr multipliers, delayed unlock, schedules, weight decay."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gin
from mlit.training import optimizer, param_rules


def _params():
  k = jax.random.split(jax.random.PRNGKey(0), 4)
  return {
    'img': {'embedding': {'kernel': jax.random.normal(k[0], (64, 48)), 'bias': jnp.zeros(48)}},
    'txt': {
      'encoder': {'layers_0': {'mlp': {'wo': {'kernel': jax.random.normal(k[1], (40, 64))}}}},
      'head': {'kernel': jax.random.normal(k[2], (64, 8)), 'bias': jnp.zeros(8)},
    },
    't': jnp.array(np.log(10.0), jnp.float32),
  }


def _grads(params, seed=1):
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree_util.tree_unflatten(
    tree, [jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)]
  )


def _state_names(state):
  return [param_rules.path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]


@pytest.mark.parametrize('name', ['adafactor', 'adam'])
def test_locked_tower_no_update_no_state(name):
  params = _params()
  tx, _ = optimizer.make_optimizer(
    params, total_steps=10, name=name, warmup_steps=2, weight_decay=1e-4, freeze=[r'^img/']
  )
  state = tx.init(params)
  names = _state_names(state)
  assert names, 'trainable params must have state'
  assert not [n for n in names if '/img/' in n or n.startswith('img/')], names
  # Adafactor factors the 64x40 kernel: its state is smaller than the kernel.
  n_state = sum(x.size for x in jax.tree_util.tree_leaves(state))
  assert n_state < 3 * 40 * 64 + 3 * (64 * 8 + 8 + 1) + 10
  p = params
  for step in range(3):
    updates, state = jax.jit(tx.update)(_grads(p, step), state, p)
    p = optax.apply_updates(p, updates)
  for a, b in zip(jax.tree_util.tree_leaves(params['img']), jax.tree_util.tree_leaves(p['img'])):
    np.testing.assert_array_equal(a, b)
  moved = jnp.abs(p['txt']['head']['kernel'] - params['txt']['head']['kernel'])
  assert float(moved.max()) > 0
  assert float(p['t']) != float(params['t'])


def test_clip_ignores_locked_grads():
  params = _params()
  # A large eps makes Adam's first step depend on the gradient scale, so a
  # clip factor polluted by the locked grads would shrink the text update.
  tx, _ = optimizer.make_optimizer(
    params, total_steps=10, name='adam', eps=1e-2, grad_clip_norm=1.0, freeze=[r'^img/']
  )
  grads = _grads(params)
  ref, _ = tx.update(grads, tx.init(params), params)
  grads['img']['embedding']['kernel'] *= 1e6
  upd, _ = tx.update(grads, tx.init(params), params)
  for a, b in zip(jax.tree_util.tree_leaves(ref['txt']), jax.tree_util.tree_leaves(upd['txt'])):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  # The clip itself is active: 100x larger text grads give the same update
  # as 1x only because both are clipped to norm 1.
  big = jax.tree_util.tree_map(lambda g: g * 100.0, _grads(params))
  upd_big, _ = tx.update(big, tx.init(params), params)
  for a, b in zip(jax.tree_util.tree_leaves(ref['txt']), jax.tree_util.tree_leaves(upd_big['txt'])):
    np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.mark.parametrize('scale', [1e-3, 1e3])
def test_clip_matches_optax(scale):
  # The clip is one scalar factor (it fuses into Adam's moment updates); below the
  # threshold it passes the gradients through unchanged, above it equals optax's.
  grads = jax.tree_util.tree_map(lambda g: g * scale, _grads(_params()))
  ours, _ = optimizer.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
  ref, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
  for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  if scale < 1:
    for a, g in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(grads)):
      np.testing.assert_array_equal(a, g)
  assert abs(float(optax.tree.norm(ours)) - min(1.0, float(optax.tree.norm(grads)))) < 1e-5


def test_lr_multiplier_and_delay():
  params = {
    'a': {'kernel': jnp.ones((4, 4))},
    'b': {'kernel': jnp.ones((4, 4))},
    'c': {'kernel': jnp.ones((4, 4))},
  }
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  tx, _ = optimizer.make_optimizer(
    params,
    total_steps=10,
    name='adam',
    grad_clip_norm=None,
    lr_mults=[('^a/', 0.1)],
    delays=[['^c/', 5]],
  )
  state = tx.init(params)
  # Adam's first update is sign(g) * lr * schedule; warm-up 0 -> schedule 1.
  upd, state = tx.update(grads, state, params)
  np.testing.assert_allclose(upd['a']['kernel'], -1e-4, rtol=1e-4)
  np.testing.assert_allclose(upd['b']['kernel'], -1e-3, rtol=1e-4)
  np.testing.assert_array_equal(upd['c']['kernel'], 0.0)
  for _ in range(4):
    upd, state = tx.update(grads, state, params)
  np.testing.assert_array_equal(upd['c']['kernel'], 0.0)  # step 4
  upd, state = tx.update(grads, state, params)  # step 5: c starts at peak
  np.testing.assert_allclose(upd['c']['kernel'], -1e-3, rtol=1e-3)


def test_schedule_shape():
  s = [float(optimizer.warmup_cosine(i, 100, 10)) for i in range(101)]
  assert s[0] == pytest.approx(0.1) and s[9] == pytest.approx(1.0)
  assert s[10] == pytest.approx(1.0) and s[55] == pytest.approx(0.5)
  assert s[100] == pytest.approx(0.0, abs=1e-7)
  assert all(a >= b for a, b in zip(s[10:], s[11:]))
  d = optimizer.delayed_schedule(50, 100, 0, 0.0)
  assert float(d(49)) == 0.0 and float(d(50)) == pytest.approx(1.0)
  assert float(d(75)) == pytest.approx(0.5)


def test_decoupled_weight_decay():
  params = {'dense': {'kernel': jnp.full((2, 2), 2.0), 'bias': jnp.full(2, 2.0)}}
  zero = jax.tree_util.tree_map(jnp.zeros_like, params)
  for scaled, expect in [(False, -2.0 * 1e-4), (True, -2.0 * 1e-4 * 1e-3)]:
    tx, _ = optimizer.make_optimizer(
      params,
      total_steps=10,
      name='adam',
      weight_decay=1e-4,
      decay_scaled_by_base_lr=scaled,
      grad_clip_norm=None,
    )
    upd, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(upd['dense']['kernel'], expect, rtol=1e-5)
    np.testing.assert_array_equal(upd['dense']['bias'], 0.0)  # not decayed


def test_adafactor_second_moment_decay_capped():
  # After many steps Adafactor's decay 1 - t^-0.8 would exceed b2; the cap
  # keeps it at b2, so a changed gradient scale shows up at rate 1 - b2.
  p = {'w': jnp.ones((3,))}
  tx = optimizer.scale_by_adafactor(b1=None, b2=0.5)
  st = tx.init(p)
  for _ in range(50):
    _, st = tx.update({'w': jnp.ones(3)}, st, p)
  u, _ = tx.update({'w': jnp.full(3, 2.0)}, st, p)
  # v = 0.5 * 1 + 0.5 * 4 = 2.5 -> update = 2 / sqrt(2.5).
  np.testing.assert_allclose(u['w'], 2.0 / np.sqrt(2.5), rtol=1e-4)


def test_bad_rules_name_the_rule():
  params = _params()
  with pytest.raises(ValueError, match='imgg'):
    optimizer.make_optimizer(params, total_steps=10, freeze=['^imgg/'])
  with pytest.raises(ValueError, match="'adamw'"):
    optimizer.make_optimizer(params, total_steps=10, name='adamw')
  with pytest.raises(ValueError, match='regex'):
    optimizer.make_optimizer(params, total_steps=10, lr_mults=[('(', 1.0)])


def test_gin_binding():
  gin.clear_config()
  try:
    gin.parse_config("""
      make_optimizer.name = 'adam'
      make_optimizer.total_steps = 20
      make_optimizer.freeze = [r'^img/']
      make_optimizer.lr_mults = [(r'^txt/head/', 2.0)]
    """)
    params = _params()
    tx, lr_fn = optimizer.make_optimizer(params)
    assert float(lr_fn(0)) == pytest.approx(1e-3)
    lines = param_rules.describe(params, [r'^img/'], [(r'^txt/head/', 2.0)])
    assert 'img/embedding/kernel: locked' in lines
    assert 'txt/head/kernel: lr x2, from step 0' in lines
    assert not [n for n in _state_names(tx.init(params)) if 'img/' in n]
  finally:
    gin.clear_config()
