"""mlit LiT train step: pairs/s and MFU, pre-computed embeddings or live ViT.

The step is mlit.train.make_train_step (the trainer's own step: model,
contrastive loss, optimizer, clipping, metrics) jitted with the state
donated, as the trainer runs it, on one device.
"""

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import model_shapes
from mlit import image_tower
from mlit import optimizer as optimizer_lib
from mlit import train
from mlit import two_tower


def vit_kwargs(variant: str) -> dict:
  return dict(image_tower.vit_config(variant), pool_type='tok')


def build(text: str, *, mode: str, batch: int, length: int = 16,
          vit: str = 'S/32', image_size: int = 224, seed: int = 0):
  """Returns (run_one_step, info) for mode 'precomputed' or 'live'."""
  if mode not in ('precomputed', 'live'):
    raise ValueError(f"mode must be 'precomputed' or 'live', got {mode!r}")
  shape = model_shapes.TEXT_SHAPES[text]
  width = image_tower.vit_config(vit)['width']
  live = mode == 'live'
  model = two_tower.TwoTower(
      text=shape.t5_config(), out_dim=width, pooling='mean',
      image=vit_kwargs(vit) if live else None, lock_image=live)
  rng = np.random.default_rng(seed)
  tokens = rng.integers(2, shape.vocab, (batch, length), dtype=np.int32)
  if live:
    image_key = 'image'
    images = rng.uniform(-1, 1, (batch, image_size, image_size, 3))
    batch_data = {'image': jnp.asarray(images, jnp.float32)}
  else:
    image_key = 'image_embedding'
    batch_data = {'image_embedding': jnp.asarray(
        rng.standard_normal((batch, width)), jnp.float32)}
  batch_data['text'] = jnp.asarray(tokens)
  init_in = {image_key: batch_data[image_key][:2], 'text': batch_data['text'][:2]}
  params = jax.jit(lambda r: model.init(r, **init_in)['params'])(
      jax.random.PRNGKey(seed))
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  params = nn.unbox(params)
  freeze = [r'^img/'] if live else []
  tx, lr_fn = optimizer_lib.make_optimizer(
      params, total_steps=1000, name='adam', weight_decay=1e-4,
      grad_clip_norm=1.0, freeze=freeze)
  step_fn = train.make_train_step(model, tx, ['text'], image_key, 'softmax',
                                  seed, lr_fn)
  jit_step = jax.jit(step_fn, donate_argnums=(0,))
  state = {'step': jnp.zeros((), jnp.int32), 'params': params,
           'opt_state': tx.init(params)}
  holder = {'state': state}

  def run():
    holder['state'], metrics = jit_step(holder['state'], batch_data)
    jax.block_until_ready(metrics['loss'])

  flops = batch * model_shapes.text_train_flops(shape, length, width)
  flops += model_shapes.loss_flops(batch, width)
  if live:
    flops += batch * model_shapes.vit_forward_flops(vit, image_size)
  info = {'text': text, 'mode': mode, 'batch': batch, 'length': length,
          'model_flops_per_step': flops,
          'image': f'ViT-{vit} @{image_size}' if live else 'pre-computed'}
  return run, info
