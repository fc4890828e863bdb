"""Supervised pre-training of a tiny ViT on Unicode subgroups (tuning concepts only).

This is the "locked, pre-trained image tower" of the emoji demo: a ViT sized for
a 2-core CPU (32x32 renders, 8x8 patches, ~1500 Adam steps, about a minute),
trained to predict the subgroup (e.g. 'animal-mammal') of augmented Noto renders
of tuning concepts and, with a second softmax, which tuning concept it is.
Subgroup labels alone make renders of one subgroup look alike to the tower,
which is what zero-shot transfer to new concepts cannot use: on the demo data
the concept softmax raised nearest-neighbour concept matching of held-out
renders (augmented -> centred, 371 concepts) from 20% to 32%, and random shifts
of the training images (shift_pixels) to 48%. Held-out concepts
never reach the tower; their subgroup accuracy reports how well it generalises.
`python -m mlit.emoji_tower pretrain --data DIR --out FILE.npz` writes FILE.npz
and FILE.json (config, model kwargs, accuracy) and reuses an up-to-date FILE.npz.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mlit.checkpoints import big_vision_npz as vit_checkpoint
from mlit.models import image_tower
from tasks import file_io
from tasks.emoji_cldr import data as data_lib
from tasks.emoji_cldr import split as split_lib


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  # Sized for 2 CPU cores: 16 tokens of 8x8 pixels, ~1 GFLOP per step of 128.
  width: int = 64
  depth: int = 2
  num_heads: int = 2
  mlp_dim: int = 128
  patch_size: int = 8
  pool_type: str = 'gap'
  steps: int = 1500
  batch_size: int = 128
  learning_rate: float = 3e-3
  warmup_steps: int = 30
  weight_decay: float = 1e-4
  # > 0 adds a second softmax over the tuning concepts themselves (held-out ones
  # still never seen): features then separate concepts within a subgroup, which
  # zero-shot transfer needs; subgroup-only features collapse each subgroup.
  concept_loss_weight: float = 1.0
  # Each training image is shifted by up to this many pixels (edge padding),
  # drawn anew every step: with ~5 fixed renders per concept the tower otherwise
  # memorises them (99% train subgroup accuracy); shifted, nearest-neighbour
  # matching of held-out renders rose from 32% to 48% at the same cost.
  shift_pixels: int = 2
  seed: int = 0

  def model_kwargs(self) -> dict:
    """ViT kwargs (without the classifier) for the LiT image tower config."""
    return {
      'width': self.width,
      'depth': self.depth,
      'num_heads': self.num_heads,
      'mlp_dim': self.mlp_dim,
      'patch_size': self.patch_size,
      'pool_type': self.pool_type,
      'posemb': 'learn',
    }


def _accuracy(predict, images: np.ndarray, labels: np.ndarray, batch: int = 512):
  """Share of images whose predict(uint8 batch) equals the label."""
  if len(images) == 0:
    return float('nan')
  correct = 0
  for i in range(0, len(images), batch):
    correct += int((np.asarray(predict(images[i : i + batch])) == labels[i : i + batch]).sum())
  return correct / len(images)


def pretrain(
  data_dir: str,
  out_path: str,
  config: PretrainConfig = PretrainConfig(),
  force: bool = False,
  log_every: int = 50,
) -> dict:
  """Trains and saves the tower; returns the info dict also written to out_path .json."""
  ds = data_lib.load(data_dir)
  data_hash = file_io.file_sha256(os.path.join(data_dir, 'manifest.json'))[:16]
  info_path = os.path.splitext(out_path)[0] + '.json'
  key = {'config': dataclasses.asdict(config), 'data_manifest_sha256': data_hash}
  if not force and os.path.isfile(out_path) and os.path.isfile(info_path):
    with open(info_path, encoding='utf-8') as f:
      info = json.load(f)
    if {k: info.get(k) for k in key} == key:
      info['reused'] = True
      return info

  t0 = time.time()
  sg = ds.subgroup_ids()
  tuning = ds.concept_ids(split_lib.TUNING)
  heldout = ds.concept_ids(split_lib.HELDOUT)
  aug, aug_c = ds.images('noto_aug')
  evals, _ = ds.images('noto_eval')
  # Training images: augmentations and the centred render of tuning concepts.
  train_mask = np.isin(aug_c, tuning)
  x_train = np.concatenate([aug[train_mask], evals[tuning]])
  c_train = np.concatenate([aug_c[train_mask], tuning])
  y_train = sg[c_train].astype(np.int32)
  n_subgroups = len(ds.subgroups)
  # Concept labels: position among the tuning concepts, after the subgroup logits.
  concept_pos = np.full(len(ds.concepts), -1, np.int64)
  concept_pos[tuning] = np.arange(len(tuning))
  yc_train = concept_pos[c_train].astype(np.int32)
  n_classes = n_subgroups + (len(tuning) if config.concept_loss_weight > 0 else 0)

  model = image_tower.ViT(num_classes=n_classes, **config.model_kwargs())
  rng = jax.random.PRNGKey(config.seed)
  params = model.init(rng, jnp.zeros((1,) + x_train.shape[1:], jnp.float32))['params']
  schedule = optax.warmup_cosine_decay_schedule(
    0.0, config.learning_rate, config.warmup_steps, max(config.steps, config.warmup_steps + 1)
  )
  tx = optax.adamw(schedule, weight_decay=config.weight_decay)
  opt_state = tx.init(params)

  def shift(x, key):
    """Random translation of each image by up to shift_pixels, edges repeated."""
    s = config.shift_pixels
    if not s:
      return x
    h, w = x.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), mode='edge')
    off = jax.random.randint(key, (x.shape[0], 2), 0, 2 * s + 1)
    crop = lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, im.shape[-1]))
    return jax.vmap(crop)(xp, off)

  @jax.jit
  def step(params, opt_state, x, y, yc, key):
    def loss_fn(p):
      _, out = model.apply({'params': p}, shift(data_lib.to_float(x), key), train=True)
      logp = jax.nn.log_softmax(out['logits'][:, :n_subgroups])
      loss = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
      if config.concept_loss_weight > 0:
        logp_c = jax.nn.log_softmax(out['logits'][:, n_subgroups:])
        loss += config.concept_loss_weight * -jnp.mean(
          jnp.take_along_axis(logp_c, yc[:, None], axis=1)
        )
      return loss

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  order = np.random.default_rng(config.seed)
  losses = []
  t_first = None
  for i in range(config.steps):
    idx = order.integers(0, len(x_train), size=config.batch_size)
    params, opt_state, loss = step(
      params, opt_state, x_train[idx], y_train[idx], yc_train[idx], jax.random.fold_in(rng, i)
    )
    if t_first is None:
      t_first = time.time() - t0  # includes compilation
    if log_every and (i % log_every == 0 or i == config.steps - 1):
      losses.append((i, float(loss)))
      print(f'pretrain step {i} loss {float(loss):.3f} ({time.time() - t0:.1f}s)', flush=True)
  train_seconds = time.time() - t0

  sym, sym_c = ds.images('symbola')
  # One compiled predictor for the three accuracy reports.
  subgroup_of = jax.jit(
    lambda p, x: jnp.argmax(
      model.apply({'params': p}, data_lib.to_float(x))[1]['logits'][:, :n_subgroups], -1
    )
  )
  predict = lambda x: subgroup_of(params, x)
  sym_held = np.isin(sym_c, heldout)
  info = dict(key)
  info.update(
    {
      'model_kwargs': config.model_kwargs(),
      'num_classes': n_classes,
      'num_subgroups': n_subgroups,
      'n_train_images': int(len(x_train)),
      'train_seconds': round(train_seconds, 2),
      'first_step_seconds': round(t_first or 0.0, 2),
      'loss': losses,
      'accuracy': {
        'train_subset': _accuracy(predict, x_train[:2048], y_train[:2048]),
        'heldout_noto': _accuracy(predict, evals[heldout], sg[heldout]),
        'heldout_symbola': _accuracy(predict, sym[sym_held], sg[sym_c[sym_held]]),
        'chance_majority': float(
          np.bincount(sg[heldout], minlength=n_subgroups).max() / max(1, len(heldout))
        ),
      },
    }
  )
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  vit_checkpoint.save_big_vision_npz(out_path, jax.device_get(params))
  with open(info_path, 'w', encoding='utf-8') as f:
    json.dump(info, f, indent=1)
  info['reused'] = False
  return info


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog='python -m mlit.emoji_tower pretrain', description=__doc__)
  p.add_argument('--data', required=True, help='built emoji_cldr directory')
  p.add_argument('--out', required=True, help='output .npz path')
  defaults = PretrainConfig()
  for f in dataclasses.fields(PretrainConfig):
    p.add_argument(
      f'--{f.name}',
      type=type(getattr(defaults, f.name)),
      default=getattr(defaults, f.name),
      help=f'PretrainConfig.{f.name} (default %(default)s)',
    )
  p.add_argument('--force', action='store_true', help='retrain even if --out is up to date')
  a = p.parse_args(argv)
  config = PretrainConfig(
    **{f.name: getattr(a, f.name) for f in dataclasses.fields(PretrainConfig)}
  )
  info = pretrain(a.data, a.out, config, force=a.force)
  print(
    json.dumps(
      {k: info[k] for k in ('accuracy', 'train_seconds', 'model_kwargs', 'reused')}, indent=1
    )
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
