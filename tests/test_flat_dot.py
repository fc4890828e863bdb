"""flat_dot_general: the same products as lax.dot_general, and the same params."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlit.models.flat_dot import flat_dot_general


@pytest.mark.parametrize(
  'lhs_shape,rhs_shape,dims',
  [
    ((4, 5, 6), (6, 3), (((2,), (0,)), ((), ()))),  # Dense on [B, L, E]
    ((4, 5, 2, 3), (2, 3, 7), (((2, 3), (0, 1)), ((), ()))),  # attention out
    ((4, 5, 6), (6, 2, 3), (((2,), (0,)), ((), ()))),  # q/k/v kernels
    ((4, 6), (6, 3), (((1,), (0,)), ((), ()))),  # already 2-D
    ((3, 4, 5), (3, 5, 2), (((2,), (1,)), ((0,), (0,)))),  # batched: passed on
    ((6, 4), (6, 3), (((0,), (0,)), ((), ()))),  # not trailing: passed on
  ],
)
def test_values_and_gradients_equal_lax(lhs_shape, rhs_shape, dims):
  rng = np.random.default_rng(0)
  lhs = rng.normal(size=lhs_shape).astype(np.float32)
  rhs = rng.normal(size=rhs_shape).astype(np.float32)
  want = jax.lax.dot_general(lhs, rhs, dims)
  got = flat_dot_general(lhs, rhs, dims)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda a, b: jnp.sum(jnp.sin(f(a, b, dims)))
  for g, w in zip(
    jax.grad(loss(flat_dot_general), (0, 1))(lhs, rhs),
    jax.grad(loss(jax.lax.dot_general), (0, 1))(lhs, rhs),
  ):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_flax_layers_keep_their_parameters():
  x = jnp.ones((2, 3, 8))
  for make in (
    lambda d: nn.Dense(4, dot_general=d),
    lambda d: nn.MultiHeadDotProductAttention(num_heads=2, qkv_dot_general=d, out_dot_general=d),
  ):
    plain = jax.eval_shape(make(jax.lax.dot_general).init, jax.random.PRNGKey(0), x)
    flat = jax.eval_shape(make(flat_dot_general).init, jax.random.PRNGKey(0), x)
    assert jax.tree_util.tree_map(lambda a: a.shape, plain) == jax.tree_util.tree_map(
      lambda a: a.shape, flat
    )
