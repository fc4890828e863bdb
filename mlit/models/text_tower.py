"""T5 v1.1 / mT5 encoder text tower with T5X parameter names and logical axes.

The parameter tree matches the `target/` subtree of a T5X encoder-decoder
checkpoint (token_embedder + encoder), so pre-trained T5X weights load without
renaming, and the logical axis names are T5X's, so T5X partitioning rules
('batch'->'data', 'vocab'/'mlp'/'heads'/'joined_kv'->'model', ...) apply.

Architecture facts (T5 v1.1 / mT5): pre-norm residual blocks; RMS norm without
mean or bias, eps 1e-6, computed in float32; no biases; no 1/sqrt(d) scaling of
the attention logits (folded into the query initialiser); one bidirectional
relative position bias table per stack, shared by every layer; gated-GELU
(tanh approximation) or plain ReLU MLP; embeddings not scaled; PAD id 0.
"""

import dataclasses
import math
from typing import Any, Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mlit.models import flat_dot

Array = jax.Array
Initializer = Callable[..., Array]

POOLINGS = ('mean', 'first', 'last')


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Encoder hyper-parameters; field names follow T5X's `network.T5Config`."""

  vocab_size: int
  emb_dim: int
  num_heads: int
  num_encoder_layers: int
  head_dim: int
  mlp_dim: int
  mlp_activations: Sequence[str] = ('gelu', 'linear')
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  float32_attention_logits: bool = True
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  # T5X initialises embeddings with stddev 1.0 (its layers.Embed default). A text tower
  # tuned from scratch on little data generalises better from a small init: rare tokens
  # then start near zero instead of as large random vectors the few updates cannot outweigh.
  embedding_init_stddev: float = 1.0

  def __post_init__(self):
    # gin passes lists and dtype names; normalise so the config stays hashable.
    object.__setattr__(self, 'mlp_activations', tuple(self.mlp_activations))
    object.__setattr__(self, 'dtype', jnp.dtype(self.dtype))
    for act in self.mlp_activations:
      if act not in _ACTIVATIONS:
        raise ValueError(
          f'T5Config.mlp_activations: unknown activation {act!r} (known: {sorted(_ACTIVATIONS)})'
        )
    if not self.embedding_init_stddev > 0:
      raise ValueError(
        f'T5Config.embedding_init_stddev must be positive, got {self.embedding_init_stddev!r}'
      )
    for name in ('vocab_size', 'emb_dim', 'num_heads', 'num_encoder_layers', 'head_dim', 'mlp_dim'):
      if int(getattr(self, name)) <= 0:
        raise ValueError(f'T5Config.{name} must be positive, got {getattr(self, name)!r}')


_ACTIVATIONS = {
  'linear': lambda x: x,
  # jax.nn.gelu defaults to the tanh approximation, which is what T5X uses
  # and what `transformers` calls gelu_new.
  'gelu': nn.gelu,
  'relu': nn.relu,
  'silu': nn.silu,
}


def relative_position_bucket(
  relative_position: np.ndarray,
  bidirectional: bool = True,
  num_buckets: int = 32,
  max_distance: int = 128,
) -> np.ndarray:
  """Buckets key_pos - query_pos (T5/Mesh-TF scheme): exact near, log far."""
  n = -np.asarray(relative_position)
  ret = np.zeros_like(n, dtype=np.int32)
  if bidirectional:
    num_buckets //= 2
    ret += (n < 0).astype(np.int32) * num_buckets
    n = np.abs(n)
  else:
    n = np.maximum(n, 0)
  max_exact = num_buckets // 2
  is_small = n < max_exact
  # The epsilon keeps exact powers (e.g. 16, 32, 64) from flooring one bucket
  # too low through float32 rounding of the logarithm.
  val_if_large = max_exact + (
    np.log(n.astype(np.float32) / max_exact + np.finfo(np.float32).eps)
    / np.log(max_distance / max_exact)
    * (num_buckets - max_exact)
  ).astype(np.int32)
  val_if_large = np.minimum(val_if_large, num_buckets - 1)
  return ret + np.where(is_small, n, val_if_large).astype(np.int32)


class RMSNorm(nn.Module):
  """T5 layer norm: scale * x / rms(x), statistics in float32, no bias."""

  dtype: Any = jnp.float32
  epsilon: float = 1e-6

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = x.astype(jnp.float32)
    mean2 = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
    y = (x * jax.lax.rsqrt(mean2 + self.epsilon)).astype(self.dtype)
    scale = self.param(
      'scale',
      nn.with_logical_partitioning(nn.initializers.ones, ('embed',)),
      (x.shape[-1],),
      jnp.float32,
    )
    return y * scale.astype(self.dtype)


class Dense(nn.Module):
  """Bias-free dense layer with a 2-D float32 kernel carrying logical axes."""

  features: int
  kernel_axes: Tuple[str, str]
  kernel_init: Initializer = nn.initializers.variance_scaling(1.0, 'fan_in', 'truncated_normal')
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = self.param(
      'kernel',
      nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
      (x.shape[-1], self.features),
      jnp.float32,
    )
    return flat_dot.flat_dot_general(
      x.astype(self.dtype), kernel.astype(self.dtype), (((x.ndim - 1,), (0,)), ((), ()))
    )


class RelativePositionBias(nn.Module):
  """Bidirectional relative position bias, [1, heads, q_len, k_len]."""

  num_heads: int
  num_buckets: int = 32
  max_distance: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, q_len: int, k_len: int) -> Array:
    # Bucket ids depend only on static lengths: computed in NumPy at trace time.
    rel = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]
    buckets = relative_position_bucket(rel, True, self.num_buckets, self.max_distance)
    table = self.param(
      'rel_embedding',
      nn.with_logical_partitioning(
        nn.initializers.variance_scaling(1.0, 'fan_avg', 'uniform'), ('heads', 'relpos_buckets')
      ),
      (self.num_heads, self.num_buckets),
      jnp.float32,
    )
    bias = jnp.take(table.astype(self.dtype), jnp.asarray(buckets), axis=1)
    return bias[None]


class SelfAttention(nn.Module):
  """Multi-head self-attention without logit scaling (T5)."""

  config: T5Config

  @nn.compact
  def __call__(self, x: Array, bias: Array, deterministic: bool) -> Array:
    cfg = self.config
    inner = cfg.num_heads * cfg.head_dim
    base_init = nn.initializers.variance_scaling(1.0, 'fan_in', 'normal')
    depth_scaling = math.sqrt(cfg.head_dim)

    def query_init(*args):
      return base_init(*args) / depth_scaling

    def heads(name, init):
      y = Dense(inner, ('embed', 'joined_kv'), init, cfg.dtype, name=name)(x)
      return y.reshape(y.shape[:-1] + (cfg.num_heads, cfg.head_dim))

    q = heads('query', query_init)
    k = heads('key', base_init)
    v = heads('value', base_init)
    if cfg.float32_attention_logits:
      q, k = q.astype(jnp.float32), k.astype(jnp.float32)
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k) + bias.astype(q.dtype)
    weights = jax.nn.softmax(logits.astype(jnp.float32)).astype(cfg.dtype)
    # Same dropout mask for every query position, as in T5X.
    weights = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))(
      weights, deterministic=deterministic
    )
    y = jnp.einsum('bhqk,bkhd->bqhd', weights, v.astype(cfg.dtype))
    y = y.reshape(y.shape[:-2] + (inner,))
    return Dense(cfg.emb_dim, ('joined_kv', 'embed'), base_init, cfg.dtype, name='out')(y)


class MlpBlock(nn.Module):
  """Product of activation(x @ wi_i) over mlp_activations, then @ wo."""

  config: T5Config

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    cfg = self.config
    acts = cfg.mlp_activations
    h = None
    for i, act in enumerate(acts):
      name = 'wi' if len(acts) == 1 else f'wi_{i}'
      y = _ACTIVATIONS[act](Dense(cfg.mlp_dim, ('embed', 'mlp'), dtype=cfg.dtype, name=name)(x))
      h = y if h is None else h * y
    h = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))(h, deterministic=deterministic)
    h = nn.with_logical_constraint(h, ('batch', 'length', 'mlp'))
    return Dense(cfg.emb_dim, ('mlp', 'embed'), dtype=cfg.dtype, name='wo')(h)


class EncoderLayer(nn.Module):
  """Pre-norm attention block and pre-norm MLP block, each residual."""

  config: T5Config

  @nn.compact
  def __call__(self, x: Array, bias: Array, deterministic: bool) -> Array:
    cfg = self.config
    drop = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))
    y = RMSNorm(cfg.dtype, name='pre_attention_layer_norm')(x)
    y = SelfAttention(cfg, name='attention')(y, bias, deterministic)
    x = x + drop(y, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    y = RMSNorm(cfg.dtype, name='pre_mlp_layer_norm')(x)
    y = MlpBlock(cfg, name='mlp')(y, deterministic)
    x = x + drop(y, deterministic=deterministic)
    return nn.with_logical_constraint(x, ('batch', 'length', 'embed'))


class Encoder(nn.Module):
  """The encoder stack (T5X module name `encoder`); takes embedded tokens."""

  config: T5Config

  @nn.compact
  def __call__(self, x: Array, mask: Array, deterministic: bool) -> Array:
    cfg = self.config
    length = x.shape[-2]
    pos_bias = RelativePositionBias(
      cfg.num_heads,
      cfg.relative_attention_num_buckets,
      cfg.relative_attention_max_distance,
      cfg.dtype,
      name='relpos_bias',
    )(length, length)
    # Padding keys get a large negative bias; padding queries produce values
    # that callers must ignore (pooling does).
    pair = mask[:, None, :, None] & mask[:, None, None, :]
    bias = jnp.where(pair, 0.0, -1e10).astype(pos_bias.dtype) + pos_bias
    drop = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))
    x = drop(x, deterministic=deterministic).astype(cfg.dtype)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    for i in range(cfg.num_encoder_layers):
      x = EncoderLayer(cfg, name=f'layers_{i}')(x, bias, deterministic)
    x = RMSNorm(cfg.dtype, name='encoder_norm')(x)
    return drop(x, deterministic=deterministic)


class Embed(nn.Module):
  """Token embedding table (T5X module `token_embedder`), not scaled."""

  vocab_size: int
  features: int
  dtype: Any = jnp.float32
  init_stddev: float = 1.0

  @nn.compact
  def __call__(self, tokens: Array) -> Array:
    table = self.param(
      'embedding',
      nn.with_logical_partitioning(
        nn.initializers.normal(stddev=self.init_stddev), ('vocab', 'embed')
      ),
      (self.vocab_size, self.features),
      jnp.float32,
    )
    return jnp.take(table, tokens, axis=0).astype(self.dtype)


def _encode(cfg: T5Config, tokens: Array, deterministic: bool) -> Array:
  """Builds token_embedder + encoder in the calling compact module's scope."""
  if tokens.ndim != 2:
    raise ValueError(f'T5 encoder expects int tokens [B, L], got shape {tokens.shape}')
  x = Embed(
    cfg.vocab_size, cfg.emb_dim, cfg.dtype, cfg.embedding_init_stddev, name='token_embedder'
  )(tokens)
  return Encoder(cfg, name='encoder')(x, tokens > 0, deterministic)


class T5Encoder(nn.Module):
  """Token ids [B, L] (0 = PAD) -> hidden states [B, L, emb].

  Parameters: token_embedder/embedding and encoder/..., as in T5X.
  """

  config: T5Config

  @nn.compact
  def __call__(self, tokens: Array, *, deterministic: bool = True) -> Array:
    return _encode(self.config, tokens, deterministic)


def pool(hidden: Array, tokens: Array, pooling: str) -> Array:
  """[B, L, D] -> [B, D]: mean over non-PAD tokens, first token, or last
  non-PAD token (the EOS with sticky-EOS tokenisation)."""
  mask = tokens > 0
  if pooling == 'mean':
    w = mask.astype(jnp.float32)[..., None]
    total = jnp.sum(hidden.astype(jnp.float32) * w, axis=1)
    return total / jnp.maximum(jnp.sum(w, axis=1), 1.0)
  if pooling == 'first':
    return hidden[:, 0].astype(jnp.float32)
  if pooling == 'last':
    last = jnp.maximum(jnp.sum(mask, axis=1) - 1, 0)
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0].astype(jnp.float32)
  raise ValueError(f'pooling={pooling!r}, expected one of {POOLINGS}')


class TextTower(nn.Module):
  """T5 encoder + pooling + optional linear head.

  Parameters: token_embedder/embedding, encoder/..., head/{kernel,bias}.
  `token_embedder` and `encoder` sit at the top of this module's scope (not
  under a T5Encoder scope) so the tree equals T5X's `target/` layout.

  Returns (pooled float32 [B, out_dim or emb], {'hidden': [B, L, emb]}).
  """

  config: T5Config
  pooling: str = 'mean'
  out_dim: Optional[int] = None

  @nn.compact
  def __call__(self, tokens: Array, *, deterministic: bool = True):
    if self.pooling not in POOLINGS:
      raise ValueError(f'TextTower.pooling={self.pooling!r}, expected one of {POOLINGS}')
    hidden = _encode(self.config, tokens, deterministic)
    pooled = pool(hidden, tokens, self.pooling)
    if self.out_dim is not None:
      pooled = nn.Dense(
        self.out_dim,
        dtype=jnp.float32,
        name='head',
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), ('embed', None)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (None,)),
      )(pooled)
    return pooled, {'hidden': hidden}
