"""`mlit export --format big_vision`: the run's image tower as a big_vision ViT .npz.

The tower is the one inference runs: the live tower of the checkpoint, or the locked tower a
run on pre-computed embeddings records. The image head (a Linear outside the ViT, when the run
has one) goes beside it as image_head.npz ('kernel' [D_img, out_dim], 'bias'). image_tower.json
says what the .npz alone cannot: the ViT's config (width, depth, heads, MLP, patch, pooling), the
input it expects (size, RGB in [-1, 1], resized whole) and how the head and the L2
normalisation give the run's image embedding.
"""

import json
import os

import numpy as np

from mlit.checkpoints import big_vision_npz
from tasks.user_error import UserError

TOWER_FILE = 'image_tower.npz'
HEAD_FILE = 'image_head.npz'
CONFIG_FILE = 'image_tower.json'
# The ViT fields that fix its computation (dropout and dtype are training/runtime choices).
VIT_FIELDS = ('width', 'depth', 'mlp_dim', 'num_heads', 'patch_size', 'pool_type', 'posemb')


def vit_config(config: dict) -> dict:
  """The run's ViT config with ViT's defaults filled in, as plain JSON values."""
  from mlit.models import image_tower  # pylint: disable=g-import-not-at-top

  vit = image_tower.ViT(**config)
  out = {name: getattr(vit, name) for name in VIT_FIELDS}
  out['mlp_dim'] = out['mlp_dim'] or 4 * out['width']  # None means 4 x width (MlpBlock)
  patch = out['patch_size']
  out['patch_size'] = [patch, patch] if isinstance(patch, int) else list(patch)
  for name in ('rep_size', 'num_classes'):  # pre-logits / classifier, when the run has them
    if getattr(vit, name):
      out[name] = getattr(vit, name)
  return out


def describe(model, has_head: bool) -> dict:
  """image_tower.json's content."""
  image = model.spec['image']
  info = {
    'format': 'big_vision ViT parameters (.npz, flattened names as big_vision saves them)',
    'weights': TOWER_FILE,
    'config': vit_config(image['config']),
    'input': {
      'size': [int(image['size'])] * 2,
      'channels': 'RGB',
      'range': [-1, 1],
      'preprocessing': 'the whole image resized (bilinear, no crop) to size, then '
      'pixels * 2 / 255 - 1',
    },
    'output': 'pre_logits [D_img]: the pooled representation (pool_type)',
    'embedding': 'l2_normalize(image_head(pre_logits))' if has_head else 'l2_normalize(pre_logits)',
    'out_features': int(model.encoder.model.out_dim),
  }
  if has_head:
    info['image_head'] = {
      'file': HEAD_FILE,
      'layout': "y = x @ kernel + bias ('kernel' [D_img, out_dim], 'bias' [out_dim])",
    }
  return info


def export(model, out_dir: str) -> str:
  image = model.spec.get('image')
  if not image:
    raise UserError(f'{model.model_dir}: the run records no image tower to export')
  if image['kind'] != 'vit':
    raise UserError(f'{model.model_dir}: a {image["kind"]!r} image tower is not a big_vision ViT')
  params = model.encoder.params
  path = os.path.join(out_dir, TOWER_FILE)
  big_vision_npz.save_big_vision_npz(path, params['img'])
  if 'img_head' in params:
    head = params['img_head']
    np.savez(
      os.path.join(out_dir, HEAD_FILE),
      kernel=np.asarray(head['kernel']),
      bias=np.asarray(head['bias']),
    )
  with open(os.path.join(out_dir, CONFIG_FILE), 'w', encoding='utf-8') as f:
    json.dump(describe(model, 'img_head' in params), f, indent=1)
  return path
