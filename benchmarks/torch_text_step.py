"""Plain PyTorch reference: mlit's exact T5 text-tower shape, pre-computed step.

open_clip's text transformer needs heads x head_dim == width and a LayerNorm,
non-gated MLP, so it cannot express an mT5 encoder (mT5-small: 6 heads of 64
in width 512, gated GELU). This is the same math as mlit's text tower written
directly in PyTorch: T5 v1.1 pre-norm blocks (RMS norm, no biases, no logit
scaling, one relative position bias [heads, L, L] shared by the layers),
gated tanh-GELU MLP, final RMS norm, masked mean pooling, linear head, the
softmax contrastive loss against given normalized image features with a
learned temperature, AdamW with clipping at global norm 1. It is the upper
reference for a PyTorch user who writes the model by hand; torch_compile=True
wraps the module in torch.compile.
"""

import numpy as np

from benchmarks import model_shapes


def _module(shape: model_shapes.TextShape, length: int, out_dim: int):
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as F  # pylint: disable=g-import-not-at-top

  inner = shape.heads * shape.head_dim

  class RMSNorm(nn.Module):
    def __init__(self, d):
      super().__init__()
      self.scale = nn.Parameter(torch.ones(d))

    def forward(self, x):
      return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.scale

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.norm1, self.norm2 = RMSNorm(shape.width), RMSNorm(shape.width)
      self.qkv = nn.Linear(shape.width, 3 * inner, bias=False)
      self.out = nn.Linear(inner, shape.width, bias=False)
      self.wi = nn.Linear(shape.width, 2 * shape.mlp, bias=False)  # wi_0 and wi_1 fused
      self.wo = nn.Linear(shape.mlp, shape.width, bias=False)

    def forward(self, x, bias):
      b, n, _ = x.shape
      q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, shape.heads, shape.head_dim).unbind(2)
      a = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias, scale=1.0
      )
      x = x + self.out(a.transpose(1, 2).reshape(b, n, inner))
      g, lin = self.wi(self.norm2(x)).chunk(2, dim=-1)
      return x + self.wo(F.gelu(g, approximate='tanh') * lin)

  class TextTower(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(shape.vocab, shape.width)
      self.rel_bias = nn.Parameter(torch.zeros(shape.heads, length, length))
      self.blocks = nn.ModuleList(Block() for _ in range(shape.layers))
      self.norm = RMSNorm(shape.width)
      self.head = nn.Linear(shape.width, out_dim, bias=False)
      self.t = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))

    def forward(self, tokens):
      mask = (tokens != 0).to(torch.float32)
      bias = self.rel_bias + (1.0 - mask)[:, None, None, :] * -1e10
      x = self.embed(tokens)
      for blk in self.blocks:
        x = blk(x, bias)
      x = self.norm(x)
      pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
      z = self.head(pooled)
      return z / z.norm(dim=-1, keepdim=True), self.t.exp()

  return TextTower()


def build(
  text: str,
  *,
  batch: int,
  length: int = 16,
  vit: str = 'S/32',
  seed: int = 0,
  torch_compile: bool = False,
  **unused_image_kw,
):
  """Returns (run_one_step, info) for the pre-computed step in plain PyTorch."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as F  # pylint: disable=g-import-not-at-top

  torch.manual_seed(seed)
  shape = model_shapes.TEXT_SHAPES[text]
  out_dim = model_shapes.vit_kwargs(vit)['width']
  model = _module(shape, length, out_dim)
  model.train()
  forward = torch.compile(model) if torch_compile else model
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
  rng = np.random.default_rng(seed)
  tokens = torch.from_numpy(rng.integers(2, shape.vocab, (batch, length)).astype(np.int64))
  feats = rng.standard_normal((batch, out_dim)).astype(np.float32)
  given = torch.from_numpy(feats / np.linalg.norm(feats, axis=-1, keepdims=True))
  labels = torch.arange(batch)

  def run():
    opt.zero_grad(set_to_none=True)
    ztxt, t = forward(tokens)
    logits = t * given @ ztxt.T
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()

  flops = batch * model_shapes.text_train_flops(shape, length, out_dim)
  flops += model_shapes.loss_flops(batch, out_dim)
  info = {
    'implementation': 'plain PyTorch' + (' torch.compile' if torch_compile else ' eager'),
    'text': text,
    'mode': 'precomputed',
    'batch': batch,
    'length': length,
    'model_flops_per_step': flops,
    'torch_threads': torch.get_num_threads(),
    'image': 'pre-computed',
  }
  return run, info
