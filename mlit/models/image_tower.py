"""Vision Transformer image tower with big_vision parameter names.

The module tree mirrors big_vision's `models/vit.py`, so that big_vision and
AugReg checkpoints (see `mlit.checkpoints.big_vision_npz`) load without renaming:
`embedding`, `pos_embedding`, `cls`, `Transformer/encoderblock_{i}/...`,
`Transformer/encoder_norm`, `MAPHead_0`, `pre_logits`, `head`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mlit.models import flat_dot

# (width, depth, mlp_dim, num_heads); Table 2 of arXiv:2106.04560 plus the
# SigLIP shape-optimised So400m.
_VARIANTS = {
  'Ti': (192, 12, 768, 3),
  'S': (384, 12, 1536, 6),
  'M': (512, 12, 2048, 8),
  'B': (768, 12, 3072, 12),
  'L': (1024, 24, 4096, 16),
  'So400m': (1152, 27, 4304, 16),
  'H': (1280, 32, 5120, 16),
  'g': (1408, 40, 6144, 16),
  'G': (1664, 48, 8192, 16),
}
POOL_TYPES = ('tok', 'gap', 'map')
POSEMB_TYPES = ('learn', 'sincos2d')


def vit_config(variant: str) -> dict[str, Any]:
  """Turns 'B/16' (or just 'B') into ViT keyword arguments."""
  name, _, patch = variant.partition('/')
  if name not in _VARIANTS:
    raise ValueError(
      f'Unknown ViT variant {variant!r}: the size must be one of {sorted(_VARIANTS)}, e.g. "B/16".'
    )
  width, depth, mlp_dim, num_heads = _VARIANTS[name]
  config = dict(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads)
  if patch:
    if not patch.isdigit() or int(patch) <= 0:
      raise ValueError(
        f'ViT variant {variant!r}: the patch size after "/" '
        'must be a positive integer such as 8, 14, 16 or 32.'
      )
    config['patch_size'] = (int(patch), int(patch))
  return config


def posemb_sincos_2d(
  h: int, w: int, width: int, temperature: float = 1e4, dtype: Any = jnp.float32
) -> jnp.ndarray:
  """Fixed 2-D sin-cos position embedding [1, h*w, width] (MoCo v3 layout)."""
  if width % 4:
    raise ValueError(f'sincos2d position embedding needs width % 4 == 0, got width={width}.')
  quarter = width // 4
  omega = 1.0 / temperature ** (np.arange(quarter) / max(quarter - 1, 1))
  y, x = np.mgrid[:h, :w]
  y = y.reshape(-1, 1) * omega[None]
  x = x.reshape(-1, 1) * omega[None]
  pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
  return jnp.asarray(pe[None], dtype)


class MlpBlock(nn.Module):
  """Dense -> GELU (tanh approximation, as big_vision) -> Dense."""

  mlp_dim: Optional[int] = None
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, deterministic=True):
    inits = dict(
      kernel_init=nn.initializers.xavier_uniform(),
      bias_init=nn.initializers.normal(stddev=1e-6),
      dtype=self.dtype,
      dot_general=flat_dot.flat_dot_general,
    )
    d = x.shape[-1]
    x = nn.Dense(self.mlp_dim or 4 * d, **inits)(x)
    x = nn.gelu(x)
    x = nn.Dropout(rate=self.dropout)(x, deterministic)
    return nn.Dense(d, **inits)(x)


class Encoder1DBlock(nn.Module):
  """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

  mlp_dim: Optional[int] = None
  num_heads: int = 12
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, deterministic=True):
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.MultiHeadDotProductAttention(
      num_heads=self.num_heads,
      dtype=self.dtype,
      kernel_init=nn.initializers.xavier_uniform(),
      qkv_dot_general=flat_dot.flat_dot_general,
      out_dot_general=flat_dot.flat_dot_general,
    )(y, y, deterministic=deterministic)
    x = x + nn.Dropout(rate=self.dropout)(y, deterministic)
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = MlpBlock(mlp_dim=self.mlp_dim, dropout=self.dropout, dtype=self.dtype)(y, deterministic)
    return x + nn.Dropout(rate=self.dropout)(y, deterministic)


class Encoder(nn.Module):
  """Stack of blocks named encoderblock_{i}, then the final encoder_norm."""

  depth: int
  mlp_dim: Optional[int] = None
  num_heads: int = 12
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, deterministic=True):
    for i in range(self.depth):
      x = Encoder1DBlock(
        mlp_dim=self.mlp_dim,
        num_heads=self.num_heads,
        dropout=self.dropout,
        dtype=self.dtype,
        name=f'encoderblock_{i}',
      )(x, deterministic)
    return nn.LayerNorm(dtype=self.dtype, name='encoder_norm')(x)


class MAPHead(nn.Module):
  """Multihead attention pooling: one learned probe attends to all tokens."""

  mlp_dim: Optional[int] = None
  num_heads: int = 12
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    n, _, d = x.shape
    probe = self.param('probe', nn.initializers.xavier_uniform(), (1, 1, d), jnp.float32)
    probe = jnp.tile(probe.astype(x.dtype), [n, 1, 1])
    x = nn.MultiHeadDotProductAttention(
      num_heads=self.num_heads,
      dtype=self.dtype,
      kernel_init=nn.initializers.xavier_uniform(),
      qkv_dot_general=flat_dot.flat_dot_general,
      out_dot_general=flat_dot.flat_dot_general,
    )(probe, x)
    y = nn.LayerNorm(dtype=self.dtype)(x)
    x = x + MlpBlock(mlp_dim=self.mlp_dim, dtype=self.dtype)(y)
    return x[:, 0]


class PatchEmbedding(nn.Module):
  """The patch stem with nn.Conv's parameters (`kernel` [ph, pw, 3, width], `bias`), run as
  one [patches, ph * pw * 3] x [ph * pw * 3, width] product: a convolution whose stride is its
  kernel is that product. XLA:CPU ran the convolution at 141-145 GFLOP/s and the product,
  with the image's reshuffle, at 213-273 for /32 patches (ViT-S/32 at batch 128: 105 ms
  against 67); /16 patches the same (38 ms both)."""

  width: int
  patch: tuple
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images):
    ph, pw = self.patch
    n, h, w, c = images.shape
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (ph, pw, c, self.width))
    bias = self.param('bias', nn.initializers.zeros, (self.width,))
    # [n, h, w, c] -> [n, h/ph, w/pw, ph, pw, c]: each patch's pixels in the kernel's order.
    x = images.reshape(n, h // ph, ph, w // pw, pw, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(n * (h // ph) * (w // pw), ph * pw * c)
    y = jnp.dot(x, jnp.asarray(kernel, self.dtype).reshape(ph * pw * c, self.width))
    y = y + jnp.asarray(bias, self.dtype)
    return y.reshape(n, h // ph, w // pw, self.width)


class ViT(nn.Module):
  """ViT image tower.

  Attributes:
    width, depth, mlp_dim, num_heads, patch_size: the variant (`vit_config`).
    pool_type: 'tok' (class token), 'gap' (mean of tokens) or 'map'.
    posemb: 'learn' (parameter `pos_embedding`) or 'sincos2d' (fixed).
    rep_size: None/False, True (= width) or an int: Dense+tanh `pre_logits`.
    num_classes: None or the size of a classification `head`.
    dropout: dropout rate, active only with train=True.
    head_zeroinit: zero-initialise the classifier head (big_vision default).
    dtype: computation dtype (parameters stay float32), e.g. 'bfloat16'.
  """

  width: int = 768
  depth: int = 12
  mlp_dim: Optional[int] = None
  num_heads: int = 12
  patch_size: Union[int, Sequence[int]] = (16, 16)
  pool_type: str = 'gap'
  posemb: str = 'learn'
  rep_size: Union[None, bool, int] = None
  num_classes: Optional[int] = None
  dropout: float = 0.0
  head_zeroinit: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    """images: float [B, H, W, 3] in [-1, 1] -> (pre_logits [B, D], outputs)."""
    if self.pool_type not in POOL_TYPES:
      raise ValueError(f'ViT pool_type {self.pool_type!r} is not one of {POOL_TYPES}.')
    if self.posemb not in POSEMB_TYPES:
      raise ValueError(f'ViT posemb {self.posemb!r} is not one of {POSEMB_TYPES}.')
    patch = (self.patch_size,) * 2 if isinstance(self.patch_size, int) else tuple(self.patch_size)
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'ViT expects images [B, H, W, 3], got shape {images.shape}.')
    if images.shape[1] % patch[0] or images.shape[2] % patch[1]:
      raise ValueError(
        f'Image size {images.shape[1:3]} is not a multiple of the patch size {patch}.'
      )
    dtype = jnp.dtype(self.dtype)
    out = {}
    x = out['stem'] = PatchEmbedding(self.width, patch, dtype, name='embedding')(
      jnp.asarray(images, dtype)
    )
    n, h, w, c = x.shape
    x = jnp.reshape(x, [n, h * w, c])

    # As in big_vision: the position embedding is added before the class
    # token is prepended, so `pos_embedding` covers only the patch grid.
    if self.posemb == 'learn':
      pe = self.param(
        'pos_embedding', nn.initializers.normal(stddev=1 / np.sqrt(c)), (1, h * w, c), jnp.float32
      )
    else:
      pe = posemb_sincos_2d(h, w, c)
    x = out['with_posemb'] = x + pe.astype(dtype)

    if self.pool_type == 'tok':
      cls = self.param('cls', nn.initializers.zeros, (1, 1, c), jnp.float32)
      x = jnp.concatenate([jnp.tile(cls.astype(dtype), [n, 1, 1]), x], axis=1)

    x = nn.Dropout(rate=self.dropout)(x, not train)
    x = Encoder(
      depth=self.depth,
      mlp_dim=self.mlp_dim,
      num_heads=self.num_heads,
      dropout=self.dropout,
      dtype=dtype,
      name='Transformer',
    )(x, deterministic=not train)
    encoded = out['encoded'] = x

    if self.pool_type == 'map':
      x = MAPHead(num_heads=self.num_heads, mlp_dim=self.mlp_dim, dtype=dtype)(x)
    elif self.pool_type == 'gap':
      x = jnp.mean(x, axis=1)
    else:
      x, encoded = x[:, 0], encoded[:, 1:]
    out['head_input'] = x
    x_2d = jnp.reshape(encoded, [n, h, w, -1])

    if self.rep_size:
      rep = self.width if self.rep_size is True else int(self.rep_size)
      hid = nn.Dense(rep, dtype=dtype, name='pre_logits')
      x_2d, x = nn.tanh(hid(x_2d)), nn.tanh(hid(x))
    out['pre_logits_2d'] = x_2d
    out['pre_logits'] = x

    if self.num_classes:
      kw = {'kernel_init': nn.initializers.zeros} if self.head_zeroinit else {}
      head = nn.Dense(self.num_classes, dtype=dtype, name='head', **kw)
      out['logits_2d'] = head(x_2d)
      out['logits'] = head(x)
    return x, out
