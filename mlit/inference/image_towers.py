"""Locked image towers that inference and evaluation run on pixels, by kind.

A model tuned on pre-computed embeddings holds no image tower; to see images it is given the
locked tower that made the embeddings. Each kind is one entry of TOWERS: a function
  graft(model, params, config, checkpoint_path, image_size, init_img) -> (model, params, report)
that puts the tower (config: its keyword arguments) into the TwoTower and its weights, read from
checkpoint_path, into params['img']; `init_img(model)` gives the tower's initial params (names,
shapes). Kinds: 'vit' and 'efficientnet_lite' (mlit.models.two_tower.IMAGE_KINDS).
"""

from typing import Any, Callable, Mapping

import flax.linen as nn

from tasks.user_error import UserError


def _graft_vit(
  model,
  params,
  config: Mapping[str, Any],
  checkpoint_path: str,
  image_size: int,
  init_img: Callable,
):
  """A big_vision ViT from a .npz (mlit.checkpoints.big_vision_npz)."""
  from mlit.checkpoints import big_vision_npz  # pylint: disable=g-import-not-at-top

  model = model.clone(image=dict(config), image_kind='vit', lock_image=True)
  params = dict(nn.unbox(params))
  params['img'], report = big_vision_npz.load_big_vision_npz(
    checkpoint_path, init_img(model), strict=True, image_size=image_size
  )
  return model, params, report.summary()


def _graft_efficientnet_lite(
  model,
  params,
  config: Mapping[str, Any],
  checkpoint_path: str,
  image_size: int,
  init_img: Callable,
):
  """An EfficientNet-Lite converted from PyTorch (mlit.checkpoints.efficientnet_pth), strict;
  any image size (TensorFlow-'same' padding for the size it gets)."""
  from mlit.checkpoints import image_weights  # pylint: disable=g-import-not-at-top

  del image_size
  model = model.clone(image=dict(config), image_kind='efficientnet_lite', lock_image=True)
  params = dict(nn.unbox(params))
  params['img'], summary = image_weights.load(
    'efficientnet_lite', checkpoint_path, init_img(model), config=config
  )
  return model, params, summary


TOWERS = {'vit': _graft_vit, 'efficientnet_lite': _graft_efficientnet_lite}


def graft(kind: str, model, params, config, checkpoint_path, image_size, init_img):
  if kind not in TOWERS:
    raise UserError(f'image tower kind {kind!r} is unknown; known kinds: {sorted(TOWERS)}')
  return TOWERS[kind](model, params, config, checkpoint_path, image_size, init_img)
