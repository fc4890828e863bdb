"""Locked image towers that inference and evaluation run on pixels, by kind.

A model tuned on pre-computed embeddings holds no image tower; to see images it is given the
locked tower that made the embeddings. Each kind is one entry of TOWERS: a function
  graft(model, params, config, checkpoint_path, image_size, init_img) -> (model, params, report)
that puts the tower (config: its keyword arguments) into the TwoTower and its weights, read from
checkpoint_path, into params['img']; `init_img(model)` gives the tower's initial params (names,
shapes). Another kind (e.g. 'efficientnet_lite0') is one more entry.
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

  model = model.clone(image=dict(config), lock_image=True)
  params = dict(nn.unbox(params))
  params['img'], report = big_vision_npz.load_big_vision_npz(
    checkpoint_path, init_img(model), strict=True, image_size=image_size
  )
  return model, params, report.summary()


TOWERS = {'vit': _graft_vit}


def graft(kind: str, model, params, config, checkpoint_path, image_size, init_img):
  if kind not in TOWERS:
    raise UserError(f'image tower kind {kind!r} is unknown; known kinds: {sorted(TOWERS)}')
  return TOWERS[kind](model, params, config, checkpoint_path, image_size, init_img)
