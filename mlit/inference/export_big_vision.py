"""`mlit export --format big_vision`: the run's image tower as a big_vision ViT .npz.

The tower is the one inference runs: the live tower of the checkpoint, or the locked tower a
run on pre-computed embeddings records. The image head (a Linear outside the ViT, when the run
has one) goes beside it as image_head.npz ('kernel' [D_img, out_dim], 'bias').
"""

import os

import numpy as np

from mlit.checkpoints import big_vision_npz
from tasks.user_error import UserError

TOWER_FILE = 'image_tower.npz'
HEAD_FILE = 'image_head.npz'


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
  return path
