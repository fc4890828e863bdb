"""Pre-computed embeddings of every emoji render by the locked image tower.

The demo's image tower is locked and its training images carry no random
augmentation at tuning time (the augmented renders are fixed arrays), so the
tower's output per image never changes: computing it once and tuning the text
tower against the stored vectors gives the same model as running the tower live
every step, at a fraction of the cost (paper, Appendix E).

`python -m mlit.emoji_tower embed --data DIR --tower FILE.npz --out FILE` writes
one float32 [N, width] array per image array of the build ('noto_aug',
'noto_eval', 'symbola'; row i embeds image row i) into an .npz, and a .json
recording the tower and data it came from. A file made from the same tower and
data is reused; one made from anything else is recomputed.

The tower is either the demo's emoji ViT (`python -m mlit.emoji_tower pretrain`) or an
EfficientNet-Lite converted by `python -m mlit.checkpoints.efficientnet_pth`: the .json beside
the .npz says which. Images go in at the build's render size.
"""

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from mlit.checkpoints import image_weights
from mlit.models import two_tower
from tasks import file_io
from tasks.emoji_cldr import data as data_lib
from tasks.emoji_cldr import embeddings

DOMAINS = embeddings.DOMAINS
_MAX_BATCH = 512
_BATCH_PIXELS = 1 << 21  # ~80 renders of 160 px: bounds the activations of a big tower


def tower_kwargs(tower_path: str) -> dict:
  """{'kind': ..., 'config': tower keyword arguments} from the .json written beside the .npz:
  `pretrain`'s (a ViT: model_kwargs) or efficientnet_pth's (kind efficientnet_lite, variant)."""
  info_path = os.path.splitext(tower_path)[0] + '.json'
  if not os.path.isfile(info_path):
    raise FileNotFoundError(
      f'{info_path} not found: it is written beside {tower_path} by '
      '`python -m mlit.emoji_tower pretrain` or `python -m mlit.checkpoints.efficientnet_pth` '
      'and names the tower'
    )
  with open(info_path, encoding='utf-8') as f:
    info = json.load(f)
  if info.get('kind') == 'efficientnet_lite':
    return {'kind': 'efficientnet_lite', 'config': {'variant': info['variant']}}
  if 'model_kwargs' not in info:
    raise KeyError(f'{info_path}: neither "kind" nor "model_kwargs" (a ViT) key')
  return {'kind': 'vit', 'config': dict(info['model_kwargs'])}


def embed(data_dir: str, tower_path: str, out_path: str, force: bool = False) -> dict:
  """Writes out_path (.npz, one array per domain) and its .json; returns the .json dict."""
  ds = data_lib.load(data_dir)
  key = {
    'tower_sha256': file_io.file_sha256(tower_path),
    'data_manifest_sha256': file_io.file_sha256(os.path.join(data_dir, 'manifest.json')),
    'tower_kwargs': tower_kwargs(tower_path),
  }
  info_path = os.path.splitext(out_path)[0] + '.json'
  if not force and os.path.isfile(out_path) and os.path.isfile(info_path):
    with open(info_path, encoding='utf-8') as f:
      info = json.load(f)
    if {k: info.get(k) for k in key} == key:
      return {**info, 'reused': True}

  start = time.time()
  kind, config = key['tower_kwargs']['kind'], key['tower_kwargs']['config']
  model = two_tower.build_image_tower(kind, config)
  sample = ds.array('noto_eval')[:1]
  # Shapes only (an eager init compiles each initializer: 37 s of CPU for EfficientNet-Lite0).
  shapes = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), data_lib.to_float(sample))['params']
  )
  init = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  # Strict: every tower parameter comes from the file (a classifier head is dropped).
  params, _ = image_weights.load(kind, tower_path, init, config=config, strict=True)
  params = jax.tree_util.tree_map(jnp.asarray, params)
  apply = jax.jit(lambda p, x: model.apply({'params': p}, x)[0])
  batch = int(np.clip(_BATCH_PIXELS // (sample.shape[1] * sample.shape[2]), 8, _MAX_BATCH))

  arrays, width = {}, None
  for domain in DOMAINS:
    images = ds.array(domain)
    out = []
    for s in range(0, len(images), batch):
      chunk = images[s : s + batch]
      n = len(chunk)
      if n < batch:  # one compiled shape
        chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
      out.append(np.asarray(apply(params, data_lib.to_float(chunk)))[:n])
      width = out[-1].shape[-1]
    if not out:  # e.g. a build without augmentations (--n_aug 0)
      out = [np.zeros((0, width or _width(model, params, data_lib.to_float(sample))), np.float32)]
    arrays[domain] = np.concatenate(out).astype(np.float32)
    if not np.all(np.isfinite(arrays[domain])):
      raise FloatingPointError(f'{tower_path}: non-finite embeddings of {domain}')

  with file_io.atomic_path(out_path) as tmp, open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  info = {
    **key,
    'tower_path': tower_path,
    'data_dir': data_dir,
    'shapes': {d: list(a.shape) for d, a in arrays.items()},
    'seconds': round(time.time() - start, 2),
  }
  with open(info_path, 'w', encoding='utf-8') as f:
    json.dump(info, f, indent=1)
  return {**info, 'reused': False}


def _width(model, params, sample) -> int:
  return int(jax.eval_shape(lambda: model.apply({'params': params}, sample)[0]).shape[-1])


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    prog='python -m mlit.emoji_tower embed',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument('--data', required=True, help='built emoji_cldr directory')
  p.add_argument(
    '--tower', required=True, help='image tower .npz (from pretrain or efficientnet_pth)'
  )
  p.add_argument('--out', required=True, help='output .npz path')
  p.add_argument('--force', action='store_true', help='re-embed even if --out is up to date')
  a = p.parse_args(argv)
  info = embed(a.data, a.tower, a.out, force=a.force)
  print(json.dumps({k: info[k] for k in ('shapes', 'seconds', 'reused') if k in info}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
