"""Pre-trained image-tower weights by tower kind (mlit.models.two_tower.IMAGE_KINDS).

vit                a big_vision / AugReg .npz (mlit.checkpoints.big_vision_npz)
efficientnet_lite  mlit's conversion of an EfficientNet-Lite .pth
                   (mlit.checkpoints.efficientnet_pth: an .npz and its .json)
"""

from typing import Any, Mapping, Optional, Sequence, Union


def load(
  kind: str,
  path: str,
  init_params: Mapping[str, Any],
  *,
  config: Optional[Mapping[str, Any]] = None,
  image_size: Union[None, int, Sequence[int]] = None,
  strict: bool = True,
  dont_load: Sequence[str] = (),
) -> tuple[dict, str]:
  """(params in the structure of `init_params`, a one-paragraph load summary).

  config: the tower's keyword arguments (an EfficientNet's variant must be the file's).
  strict: every parameter from the file and every array used (EfficientNet is always strict);
  image_size and dont_load apply to the ViT only.
  """
  if kind == 'vit':
    from mlit.checkpoints import big_vision_npz  # pylint: disable=g-import-not-at-top

    params, report = big_vision_npz.load_big_vision_npz(
      path, init_params, strict=strict, image_size=image_size, dont_load=dont_load
    )
    return params, report.summary()
  if kind == 'efficientnet_lite':
    from mlit.checkpoints import efficientnet_pth  # pylint: disable=g-import-not-at-top

    if dont_load:
      raise ValueError(f'image_dont_load {list(dont_load)} applies to ViT checkpoints only')
    variant = dict(config or {}).get('variant', 'lite0')
    params = efficientnet_pth.load(path, init_params, variant=variant)
    return params, f'{path}: loaded {_count(params)} arrays of EfficientNet-{variant} (strict)'
  raise ValueError(f'image tower kind {kind!r} has no checkpoint format (vit, efficientnet_lite)')


def _count(tree) -> int:
  return sum(_count(v) for v in tree.values()) if isinstance(tree, Mapping) else 1
