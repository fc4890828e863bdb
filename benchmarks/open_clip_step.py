"""open_clip (PyTorch) reference step: its own text transformer, locked ViT.

Same width, depth, length, batch and image tower as the mlit step; open_clip's
text block is its standard one (LayerNorm, non-gated GELU MLP). The MLP ratio
is chosen so its hidden layer has the same parameters and FLOPs as mlit's
gated MLP (2 x mlp in + mlp out == 3 x mlp); open_clip needs
heads x head_dim == width, so where mlit's shape has a narrower attention
(mT5-small: 6 x 64 < 512) open_clip runs width / 64 heads of 64 and does a
little more work (its model FLOPs are reported separately). The image tower
is locked with open_clip's own `lock_image_tower()` (LiT). Optimizer: AdamW
(lr 1e-3, decoupled wd 1e-4) with clipping at global norm 1, as mlit's step.

mode='live' runs the locked ViT on the images; mode='precomputed' is the
equivalent of mlit's pre-computed step: only the text tower runs
(model(None, tokens)) and given, normalized image features enter the loss.
torch_compile=True wraps the model in torch.compile, as open_clip's training
`--torchcompile` does (model = torch.compile(model)); the loss, backward and
optimizer stay eager there too.
"""

import numpy as np

from benchmarks import model_shapes


def torch_threads(n: int) -> None:
  import torch  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(n)


def open_clip_shape(text: str) -> model_shapes.TextShape:
  s = model_shapes.TEXT_SHAPES[text]
  n_in = 2 if s.gated else 1
  return model_shapes.TextShape(
    f'open_clip:{text}',
    s.vocab,
    s.width,
    s.layers,
    max(1, s.width // 64) if s.heads * s.head_dim != s.width else s.heads,
    64 if s.heads * s.head_dim != s.width else s.head_dim,
    (n_in + 1) * s.mlp // 2,
    gated=False,
  )


def build(
  text: str,
  *,
  batch: int,
  length: int = 16,
  vit: str = 'S/32',
  image_size: int = 224,
  seed: int = 0,
  mode: str = 'live',
  torch_compile: bool = False,
):
  """Returns (run_one_step, info) for open_clip's locked-image training."""
  if mode not in ('precomputed', 'live'):
    raise ValueError(f"mode must be 'precomputed' or 'live', got {mode!r}")
  import open_clip  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from open_clip import loss as oc_loss  # pylint: disable=g-import-not-at-top
  from open_clip import model as oc_model  # pylint: disable=g-import-not-at-top

  torch.manual_seed(seed)
  shape = open_clip_shape(text)
  v = model_shapes.vit_kwargs(vit)
  vision_cfg = oc_model.CLIPVisionCfg(
    layers=v['depth'],
    width=v['width'],
    head_width=v['width'] // v['num_heads'],
    mlp_ratio=v['mlp_dim'] / v['width'],
    patch_size=v['patch_size'][0],
    image_size=image_size,
    pool_type='tok',
  )
  text_cfg = oc_model.CLIPTextCfg(
    context_length=length,
    vocab_size=shape.vocab,
    width=shape.width,
    heads=shape.heads,
    layers=shape.layers,
    mlp_ratio=shape.mlp / shape.width,
    no_causal_mask=True,
    pool_type='last',
  )
  model = open_clip.CLIP(
    embed_dim=v['width'], vision_cfg=vision_cfg, text_cfg=text_cfg, output_dict=True
  )
  model.lock_image_tower()
  model.train()
  forward = torch.compile(model) if torch_compile else model
  params = [p for p in model.parameters() if p.requires_grad]
  opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
  loss_fn = oc_loss.ClipLoss()
  rng = np.random.default_rng(seed)
  tokens = torch.from_numpy(rng.integers(2, shape.vocab, (batch, length)).astype(np.int64))
  live = mode == 'live'
  if live:
    images = torch.from_numpy(
      rng.uniform(-1, 1, (batch, 3, image_size, image_size)).astype(np.float32)
    )
  else:
    images = None
    features = rng.standard_normal((batch, v['width'])).astype(np.float32)
    features /= np.linalg.norm(features, axis=-1, keepdims=True)
    given = torch.from_numpy(features)

  def run():
    opt.zero_grad(set_to_none=True)
    out = forward(images, tokens)
    image_features = out['image_features'] if live else given
    loss = loss_fn(image_features, out['text_features'], out['logit_scale'])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()

  flops = batch * model_shapes.text_train_flops(shape, length, v['width'])
  flops += model_shapes.loss_flops(batch, v['width'])
  if live:
    flops += batch * model_shapes.vit_forward_flops(vit, image_size)
  info = {
    'implementation': 'open_clip' + (' torch.compile' if torch_compile else ' eager'),
    'text': text,
    'mode': mode,
    'batch': batch,
    'length': length,
    'model_flops_per_step': flops,
    'torch_threads': torch.get_num_threads(),
    'text_heads': shape.heads,
    'text_mlp': shape.mlp,
    'image': f'ViT-{vit} @{image_size} (lock_image_tower)' if live else 'pre-computed',
  }
  return run, info
