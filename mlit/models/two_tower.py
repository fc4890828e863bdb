"""Two-tower (image, text) contrastive model for LiT tuning.

Parameter tree (flax `params` collection):
  img/...       image tower of kind `image_kind` (absent in pre-computed-embedding mode)
  img_head/...  optional linear image head to `out_dim` (outside the ViT, so the
                same head exists in live and pre-computed mode and a lock rule
                `^img/` freezes the ViT but not the head)
  txt/...       TextTower, including its linear head txt/head to `out_dim`
  t             log temperature, used as exp(t)
  b             SigLIP logit bias (only when `bias_init` is set)
"""

import math
from typing import Any, Mapping, Optional, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from mlit.models import text_tower

Array = jax.Array
Text = Union[Array, Mapping[str, Array]]
IMAGE_KINDS = ('vit', 'efficientnet_lite')


def build_image_tower(kind: str, config: Mapping[str, Any]) -> nn.Module:
  """The image tower module of `kind` from its keyword arguments (imported on demand: runs on
  pre-computed embeddings never need image-tower code)."""
  if kind == 'vit':
    from mlit.models import image_tower  # pylint: disable=g-import-not-at-top

    return image_tower.ViT(**dict(config))
  if kind == 'efficientnet_lite':
    from mlit.models import efficientnet  # pylint: disable=g-import-not-at-top

    return efficientnet.EfficientNetLite(**dict(config))
  raise ValueError(f'image tower kind {kind!r} is not one of {IMAGE_KINDS}')


def l2_normalize(x: Array, eps: float = 1e-8) -> Array:
  """Scales rows of x to unit L2 norm (float32 for the norm)."""
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


class TwoTower(nn.Module):
  """LiT two-tower model.

  Attributes:
    text: T5Config of the text tower.
    pooling: text pooling, 'mean' | 'first' | 'last'.
    image: the image tower's keyword arguments; None = pre-computed image
      embeddings (no image tower is built or held in memory).
    image_kind: 'vit' (mlit.models.image_tower.ViT) or 'efficientnet_lite'
      (mlit.models.efficientnet.EfficientNetLite, inference mode: locked only).
    out_dim: common embedding size; the text tower always gets a linear head.
    image_head: add a linear head on the image side (paper: optional).
    temperature_init: initial exp(t).
    bias_init: initial SigLIP bias; None = no bias parameter.
    lock_image: stop gradients at the image tower output, so a locked image
      tower costs no backward pass (the head, if any, still trains).
  """

  text: text_tower.T5Config
  out_dim: int
  pooling: str = 'mean'
  image: Optional[Mapping[str, Any]] = None
  image_kind: str = 'vit'
  image_head: bool = False
  temperature_init: float = 10.0
  bias_init: Optional[float] = None
  lock_image: bool = False

  def setup(self):
    self.txt = text_tower.TextTower(config=self.text, pooling=self.pooling, out_dim=self.out_dim)
    if self.image is not None:
      self.img = build_image_tower(self.image_kind, self.image)
    if self.image_head:
      self.img_head = nn.Dense(
        self.out_dim,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), ('embed', None)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (None,)),
      )
    self.t = self.param('t', lambda _: jnp.array(math.log(self.temperature_init), jnp.float32))
    if self.bias_init is not None:
      self.b = self.param('b', lambda _: jnp.array(self.bias_init, jnp.float32))

  def encode_image(
    self,
    image: Optional[Array] = None,
    image_embedding: Optional[Array] = None,
    *,
    deterministic: bool = True,
  ) -> Array:
    """Images [B,H,W,3] or pre-computed embeddings [B,D] -> normalised [B,out]."""
    if (image is None) == (image_embedding is None):
      raise ValueError('encode_image needs exactly one of image / image_embedding')
    if image is not None:
      if self.image is None:
        raise ValueError(
          'TwoTower was built for pre-computed embeddings (image=None) but got raw images'
        )
      x, _ = self.img(image, train=not deterministic)
      if self.lock_image:
        x = jax.lax.stop_gradient(x)
    else:
      x = image_embedding
    if self.image_head:
      x = self.img_head(x)
    elif x.shape[-1] != self.out_dim:
      raise ValueError(
        f'image embedding width {x.shape[-1]} != out_dim '
        f'{self.out_dim}: set image_head=True or out_dim='
        f'{x.shape[-1]}'
      )
    return l2_normalize(x)

  def encode_text(self, tokens: Array, *, deterministic: bool = True) -> Array:
    """Token ids int32 [B, L] (0 = PAD) -> normalised [B, out_dim]."""
    x, _ = self.txt(tokens, deterministic=deterministic)
    return l2_normalize(x)

  def __call__(
    self,
    *,
    image: Optional[Array] = None,
    image_embedding: Optional[Array] = None,
    text: Optional[Text] = None,
    deterministic: bool = True,
  ):
    """Encodes whichever sides are given.

    Args:
      image: float32 [B, H, W, 3] in [-1, 1] (live mode).
      image_embedding: float32 [B, D] (pre-computed mode).
      text: int32 [B, L], or a mapping signal name -> [B, L] (several text
        signals per image, e.g. YFCC title/description/tags).
      deterministic: False enables dropout (needs a 'dropout' rng).

    Returns:
      (zimg, ztxt, extras): L2-normalised embeddings or None for a side not
      given (ztxt is a dict when `text` is a mapping); extras {'t': exp(t),
      'b': bias or None}.
    """
    zimg = None
    if image is not None or image_embedding is not None:
      zimg = self.encode_image(image, image_embedding, deterministic=deterministic)
    ztxt = None
    if isinstance(text, Mapping):
      ztxt = {k: self.encode_text(v, deterministic=deterministic) for k, v in text.items()}
    elif text is not None:
      ztxt = self.encode_text(text, deterministic=deterministic)
    extras = {'t': jnp.exp(self.t), 'b': self.b if self.bias_init is not None else None}
    return zimg, ztxt, extras
