"""Where a LiT step's time goes: forward, backward, optimizer update.

Times three jitted functions over the same model and batch: the loss
forward, the loss value_and_grad (forward + backward), and the full train
step (+ clipping, optimizer, metrics). Differences of medians attribute the
time to the parts.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import model_shapes, timing
from mlit.models import losses, two_tower
from mlit.training import optimizer as optimizer_lib
from mlit.training import train


def build_parts(
  text: str, *, batch: int, length: int = 16, out_dim: int = 384, seed: int = 0
) -> dict:
  """{'forward', 'forward+backward', 'step'} -> blocking callables."""
  shape = model_shapes.TEXT_SHAPES[text]
  model = two_tower.TwoTower(text=shape.t5_config(), out_dim=out_dim)
  rng = np.random.default_rng(seed)
  data = {
    'text': jnp.asarray(rng.integers(2, shape.vocab, (batch, length)), jnp.int32),
    'image_embedding': jnp.asarray(rng.standard_normal((batch, out_dim)), jnp.float32),
  }
  params = nn.unbox(
    jax.jit(
      lambda r: model.init(r, image_embedding=data['image_embedding'][:2], text=data['text'][:2])[
        'params'
      ]
    )(jax.random.PRNGKey(seed))
  )

  def loss(p):
    zimg, ztxt, extras = model.apply(
      {'params': p}, image_embedding=data['image_embedding'], text=data['text']
    )
    return losses.softmax_contrastive_loss(zimg, ztxt, extras['t'])[0]

  fwd = jax.jit(loss)
  grad = jax.jit(jax.value_and_grad(loss))
  tx, lr_fn = optimizer_lib.make_optimizer(params, total_steps=1000, name='adam', weight_decay=1e-4)
  step = jax.jit(
    train.make_train_step(model, tx, ['text'], 'image_embedding', 'softmax', seed, lr_fn),
    donate_argnums=(0,),
  )
  holder = {'s': {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': tx.init(params)}}

  def run_step():
    holder['s'], m = step(holder['s'], data)
    jax.block_until_ready(m['loss'])

  # The step donates its state, so the other parts read the live params.
  return {
    'forward': lambda: fwd(holder['s']['params']).block_until_ready(),
    'forward+backward': lambda: jax.block_until_ready(grad(holder['s']['params'])),
    'step': run_step,
  }


def breakdown(text: str, *, batch: int, warmup: int = 1, repeats: int = 3) -> dict:
  parts = build_parts(text, batch=batch)
  names = list(parts)
  times = timing.paired_seconds([parts[n] for n in names], warmup=warmup, repeats=repeats)
  med = {n: t['median_s'] for n, t in zip(names, times)}
  return {
    'text': text,
    'batch': batch,
    'median_s': med,
    'share': {
      'forward': med['forward'] / med['step'],
      'backward': (med['forward+backward'] - med['forward']) / med['step'],
      'optimizer+rest': (med['step'] - med['forward+backward']) / med['step'],
    },
  }
