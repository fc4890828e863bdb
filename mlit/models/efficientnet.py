"""EfficientNet-Lite image tower (Flax linen, NHWC), inference mode.

The Lite family (TensorFlow `efficientnet/lite` builder): EfficientNet-B0's blocks without
squeeze-excite, ReLU6 instead of swish, the stem (32) and head (1280) channels not scaled, and
TensorFlow "same" padding (the extra row/column after, not before, on stride-2 convs). Variants
differ by a width and a depth multiplier and the training resolution (`VARIANTS`).

Batch norm always uses its stored statistics: every norm holds `scale`, `bias`, `mean`, `var`
as ordinary parameters, so apply needs no mutable `batch_stats` and a locked tower is a pure
function. The tower is meant to be locked: training it would also move the statistics.

Parameter tree (names of mlit.checkpoints.efficientnet_pth's conversion):
  stem/kernel [3,3,3,32], stem_bn/*
  block_{i}/expand/kernel [C,C*e] (absent when e == 1), block_{i}/expand_bn/*,
  block_{i}/depthwise/kernel [k,k,1,C*e], block_{i}/depthwise_bn/*,
  block_{i}/project/kernel [C*e,C'], block_{i}/project_bn/*
  head/kernel [C,1280], head_bn/*, classifier/{kernel [1280,1000], bias} (num_classes only)
"""

from __future__ import annotations

import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from mlit.models import flat_dot

# variant -> (width multiplier, depth multiplier, resolution); efficientnet_lite_builder.py.
VARIANTS = {
  'lite0': (1.0, 1.0, 224),
  'lite1': (1.0, 1.1, 240),
  'lite2': (1.1, 1.2, 260),
  'lite3': (1.2, 1.4, 280),
  'lite4': (1.4, 1.8, 300),
}
# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, in channels, out channels).
STAGES = (
  (1, 3, 1, 1, 32, 16),
  (2, 3, 2, 6, 16, 24),
  (2, 5, 2, 6, 24, 40),
  (3, 3, 2, 6, 40, 80),
  (3, 5, 1, 6, 80, 112),
  (4, 5, 2, 6, 112, 192),
  (1, 3, 1, 6, 192, 320),
)
STEM, HEAD = 32, 1280
BN_EPSILON = 1e-3
FEATURES = HEAD  # width of the pooled output


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
  """Channels scaled by `width`, rounded to a multiple of `divisor` (TF's rule)."""
  scaled = filters * width
  rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  if rounded < 0.9 * scaled:  # never round down by more than 10%
    rounded += divisor
  return int(rounded)


def block_specs(variant: str) -> list[dict[str, int]]:
  """One dict per MBConv block: kernel, stride, expand, in, out (Lite scaling rules)."""
  if variant not in VARIANTS:
    raise ValueError(f'EfficientNet variant {variant!r} is not one of {sorted(VARIANTS)}')
  width, depth, _ = VARIANTS[variant]
  specs = []
  for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
    first_or_last = i in (0, len(STAGES) - 1)
    # Lite keeps the first and last stage's depth and the stem's 32 channels.
    repeats = repeats if first_or_last else int(math.ceil(depth * repeats))
    cin = STEM if i == 0 else round_filters(cin, width)
    cout = round_filters(cout, width)
    for r in range(repeats):
      specs.append(
        dict(kernel=kernel, stride=stride if r == 0 else 1, expand=expand, cin=cin, cout=cout)
      )
      cin = cout
  return specs


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow 'SAME': output ceil(size / stride); the odd pixel of padding goes after."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


class BatchNorm(nn.Module):
  """Inference batch norm from stored statistics (all four are parameters)."""

  epsilon: float = BN_EPSILON
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    mean = self.param('mean', nn.initializers.zeros, (c,), jnp.float32)
    var = self.param('var', nn.initializers.ones, (c,), jnp.float32)
    mul = scale * jax.lax.rsqrt(var + self.epsilon)
    return x * mul.astype(self.dtype) + (bias - mean * mul).astype(self.dtype)


def _pointwise(features: int, dtype, name: str) -> nn.Dense:
  """A 1x1 convolution as a dense layer over channels (one [B*H*W, C] matmul)."""
  return nn.Dense(
    features, use_bias=False, dtype=dtype, dot_general=flat_dot.flat_dot_general, name=name
  )


def _stem(x, dtype):
  pad = [same_padding(x.shape[d], 3, 2) for d in (1, 2)]
  conv = nn.Conv(
    STEM, (3, 3), strides=(2, 2), padding=pad, use_bias=False, dtype=dtype, name='stem'
  )
  return conv(x)


class Depthwise(nn.Module):
  """Depthwise k x k convolution (TF 'same' padding) as a sum of k*k shifted, strided slices:
  XLA:CPU runs it ~9x faster than a grouped lax.conv (measured on [32, 80, 80, 96], k=3)."""

  kernel_size: int
  stride: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k, s, c = self.kernel_size, self.stride, x.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (k, k, 1, c), jnp.float32)
    kernel = kernel.astype(self.dtype)
    (top, bottom), (left, right) = [same_padding(x.shape[d], k, s) for d in (1, 2)]
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh, ow = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    out = None
    for i in range(k):
      for j in range(k):
        tap = x[:, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s] * kernel[i, j, 0]
        out = tap if out is None else out + tap
    return out


class MBConv(nn.Module):
  """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project (+ skip when shapes match)."""

  kernel: int
  stride: int
  expand: int
  cin: int
  cout: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs):
    x = inputs
    mid = self.cin * self.expand
    if self.expand != 1:
      x = _pointwise(mid, self.dtype, 'expand')(x)
      x = jax.nn.relu6(BatchNorm(dtype=self.dtype, name='expand_bn')(x))
    x = Depthwise(self.kernel, self.stride, dtype=self.dtype, name='depthwise')(x)
    x = jax.nn.relu6(BatchNorm(dtype=self.dtype, name='depthwise_bn')(x))
    x = _pointwise(self.cout, self.dtype, 'project')(x)
    x = BatchNorm(dtype=self.dtype, name='project_bn')(x)
    if self.stride == 1 and self.cin == self.cout:
      x = x + inputs
    return x


class EfficientNetLite(nn.Module):
  """EfficientNet-Lite: images [B, H, W, 3] in [-1, 1] -> (pooled [B, 1280], outputs).

  Attributes:
    variant: 'lite0' .. 'lite4' (`VARIANTS`).
    num_classes: None, or the size of the `classifier` (1000 for ImageNet weights); its
      logits are outputs['logits'].
    dtype: computation dtype (parameters stay float32).
  """

  variant: str = 'lite0'
  num_classes: Optional[int] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    del train  # inference mode only: no dropout, stored batch-norm statistics
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'EfficientNetLite expects images [B, H, W, 3], got {images.shape}')
    dtype = jnp.dtype(self.dtype)
    # The image contract is [-1, 1] (x / 127.5 - 1); the TF Lite weights expect (x - 127) / 128.
    pixels = (jnp.asarray(images, jnp.float32) + 1.0) * 127.5
    x = ((pixels - 127.0) / 128.0).astype(dtype)
    x = _stem(x, dtype)
    x = jax.nn.relu6(BatchNorm(dtype=dtype, name='stem_bn')(x))
    for i, spec in enumerate(block_specs(self.variant)):
      x = MBConv(**spec, dtype=dtype, name=f'block_{i}')(x)
    x = _pointwise(HEAD, dtype, 'head')(x)
    x = jax.nn.relu6(BatchNorm(dtype=dtype, name='head_bn')(x))
    out = {'features_2d': x}
    pooled = out['pooled'] = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    if self.num_classes:
      out['logits'] = nn.Dense(self.num_classes, dtype=dtype, name='classifier')(pooled)
    return pooled, out
