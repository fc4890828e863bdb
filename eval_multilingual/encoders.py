"""Embeds texts and images with an mlit TwoTower model for evaluation.

The encoder itself (batching, jit, tokenizer, fingerprint) is mlit.inference.encoder, shared with
`mlit.load`; this module is what gin files name (`encoders.from_mlit_checkpoint`):
- `from_mlit_checkpoint` (re-exported): a TwoTower and the params of an mlit training checkpoint.
- `from_t5x_and_npz`: for ablations, a text tower from a T5X checkpoint and an image
  tower from a big_vision .npz; parameters neither file has (heads, temperature) keep
  their seeded initial values, and `load_report` lists them.
"""

from mlit.inference.encoder import (  # noqa: F401  re-exported for gin files, evaluation code, tests
  TwoTowerEncoder,
  from_mlit_checkpoint,
  init_params,
  params_fingerprint,
  restore_params,
)
from mlit.inference.tokenizer import EOS_ID, PAD_ID, Tokenizer  # noqa: F401


def from_t5x_and_npz(
  model,
  t5x_path: str,
  vit_npz: str | None,
  vocabulary,
  text_length: int = 16,
  image_size: int = 224,
  batch_size: int = 256,
  image_embedding_dim: int | None = None,
  seed: int = 0,
) -> TwoTowerEncoder:
  """Text tower from a T5X checkpoint, image tower from a big_vision .npz (ablations)."""
  from mlit.checkpoints import big_vision_npz as vit_checkpoint
  from mlit.checkpoints import t5x as t5x_checkpoint  # pylint: disable=g-import-not-at-top

  params = dict(init_params(model, image_size, seed, image_embedding_dim))
  params['txt'], txt_report = t5x_checkpoint.load_text_tower_from_t5x(
    t5x_path, params['txt'], strict=True
  )
  report = f'txt: {txt_report}'
  if vit_npz is not None:
    if model.image is None:
      raise ValueError('vit_npz given but the TwoTower has no image tower (image=None)')
    params['img'], img_report = vit_checkpoint.load_big_vision_npz(
      vit_npz, params['img'], image_size=image_size
    )
    report += f'; img: {img_report.summary()}'
  return TwoTowerEncoder(
    model,
    params,
    Tokenizer(vocabulary, text_length),
    batch_size,
    name=f't5x:{t5x_path}+npz:{vit_npz}',
    load_report=report,
  )
