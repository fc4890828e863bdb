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
"""

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from mlit.checkpoints import big_vision_npz as vit_checkpoint
from mlit.models import image_tower
from tasks import file_io
from tasks.emoji_cldr import data as data_lib
from tasks.emoji_cldr import embeddings

DOMAINS = embeddings.DOMAINS
_BATCH = 512


def tower_kwargs(tower_path: str) -> dict:
  """ViT kwargs of a pretrain_image_tower .npz, from the .json written beside it."""
  info_path = os.path.splitext(tower_path)[0] + '.json'
  if not os.path.isfile(info_path):
    raise FileNotFoundError(
      f'{info_path} not found: it is written beside {tower_path} by '
      '`python -m mlit.emoji_tower pretrain` and gives the ViT size'
    )
  with open(info_path, encoding='utf-8') as f:
    info = json.load(f)
  if 'model_kwargs' not in info:
    raise KeyError(f'{info_path}: no "model_kwargs" key')
  return dict(info['model_kwargs'])


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
  model = image_tower.ViT(**key['tower_kwargs'])
  sample = ds.array('noto_eval')[:1]
  init = model.init(jax.random.PRNGKey(0), data_lib.to_float(sample))['params']
  # Strict: every ViT parameter comes from the file (the classifier head is dropped).
  params, _ = vit_checkpoint.load_big_vision_npz(tower_path, init, strict=True)
  params = jax.tree_util.tree_map(jnp.asarray, params)
  apply = jax.jit(lambda p, x: model.apply({'params': p}, x)[0])

  arrays = {}
  for domain in DOMAINS:
    images = ds.array(domain)
    out = []
    for s in range(0, len(images), _BATCH):
      chunk = images[s : s + _BATCH]
      n = len(chunk)
      if n < _BATCH:  # one compiled shape
        chunk = np.concatenate([chunk, np.zeros((_BATCH - n,) + chunk.shape[1:], chunk.dtype)])
      out.append(np.asarray(apply(params, data_lib.to_float(chunk)))[:n])
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


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    prog='python -m mlit.emoji_tower embed',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument('--data', required=True, help='built emoji_cldr directory')
  p.add_argument('--tower', required=True, help='image tower .npz (from pretrain)')
  p.add_argument('--out', required=True, help='output .npz path')
  p.add_argument('--force', action='store_true', help='re-embed even if --out is up to date')
  a = p.parse_args(argv)
  info = embed(a.data, a.tower, a.out, force=a.force)
  print(json.dumps({k: info[k] for k in ('shapes', 'seconds', 'reused') if k in info}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
