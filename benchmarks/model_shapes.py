"""The benchmarked shapes and their analytic model FLOPs.

Model FLOPs count the matmuls of the model definition (2 per multiply-add),
not what an implementation happens to execute: text forward + backward is
3x the forward matmul FLOPs plus the embedding-gradient scatter-add; a locked
image tower costs its forward only, and only when it runs live.
"""

import dataclasses

from benchmarks import command_line
from mlit.models import image_tower, text_tower


@dataclasses.dataclass(frozen=True)
class TextShape:
  name: str
  vocab: int
  width: int
  layers: int
  heads: int
  head_dim: int
  mlp: int  # hidden size of the (gated) MLP
  gated: bool = True

  def t5_config(self, dtype: str = 'float32') -> text_tower.T5Config:
    acts = ('gelu', 'linear') if self.gated else ('gelu',)
    return text_tower.T5Config(
      dtype=dtype,
      vocab_size=self.vocab,
      emb_dim=self.width,
      num_heads=self.heads,
      num_encoder_layers=self.layers,
      head_dim=self.head_dim,
      mlp_dim=self.mlp,
      mlp_activations=acts,
    )


TEXT_SHAPES = {
  # gin/local_tiny.gin's text model.
  'local_tiny': TextShape('local_tiny', 512, 32, 2, 2, 16, 64),
  # mT5-small's encoder (d 512, 8 layers, 6 heads x 64, gated-GELU 1024)
  # with a 32k instead of a 250k vocabulary.
  'mt5_small_32k': TextShape('mt5_small_32k', 32000, 512, 8, 6, 64, 1024),
  # mT5-small and mT5-base encoders with mT5's own 250,112-token vocabulary.
  'mt5_small': TextShape('mt5_small', 250112, 512, 8, 6, 64, 1024),
  'mt5_base': TextShape('mt5_base', 250112, 768, 12, 12, 64, 2048),
}


def text_forward_flops(s: TextShape, length: int, out_dim: int, attn_inner: int = 0) -> float:
  """Forward matmul FLOPs of one text of `length` tokens (incl. the head)."""
  inner = attn_inner or s.heads * s.head_dim
  n_in = 2 if s.gated else 1
  per_token = (
    2 * 4 * s.width * inner  # q, k, v, out
    + 2 * (n_in + 1) * s.width * s.mlp  # wi_0, wi_1, wo
    + 2 * 2 * length * inner
  )  # q.k and weights.v
  return s.layers * length * per_token + 2 * s.width * out_dim


def text_train_flops(s: TextShape, length: int, out_dim: int, attn_inner: int = 0) -> float:
  """Forward + backward of one text: 3x forward + embedding-grad adds."""
  return 3 * text_forward_flops(s, length, out_dim, attn_inner) + (length * s.width)


# A two-layer toy ViT for quick runs and tests (not a big_vision variant).
TOY_VITS = {'toy/8': dict(width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=(8, 8))}


def vit_kwargs(variant: str) -> dict:
  """ViT arguments of a big_vision variant ('S/32') or a toy one."""
  if variant in TOY_VITS:
    return dict(TOY_VITS[variant])
  return image_tower.vit_config(variant)


def vit_forward_flops(variant: str, image_size: int) -> float:
  """Forward matmul FLOPs of one image through a class-token ViT."""
  cfg = vit_kwargs(variant)
  d, depth, mlp = cfg['width'], cfg['depth'], cfg['mlp_dim']
  p = cfg['patch_size'][0]
  patches = (image_size // p) ** 2
  n = patches + 1
  stem = 2 * patches * p * p * 3 * d
  per_layer = n * (2 * 4 * d * d + 2 * 2 * d * mlp + 2 * 2 * n * d)
  return stem + depth * per_layer


def loss_flops(batch: int, out_dim: int) -> float:
  """Similarity matrix forward + its two backward products."""
  return 3 * 2 * batch * batch * out_dim


def add_shape_flags(parser) -> None:
  """--text (a TEXT_SHAPES name) and --batch, for the scripts that time one step shape."""
  parser.add_argument(
    '--text',
    default='mt5_small_32k',
    choices=sorted(TEXT_SHAPES),
    help='text tower shape (benchmarks/model_shapes.py; default mt5_small_32k)',
  )
  parser.add_argument(
    '--batch', type=command_line.at_least(1), default=128, help='examples per step (default 128)'
  )
