"""mlit LiT train step: pairs/s and MFU, pre-computed embeddings or live ViT.

The step is mlit.training.train.make_train_step (the trainer's own step: model,
contrastive loss, optimizer, clipping, metrics) jitted with the state
donated, as the trainer runs it, on one device.
"""

import hashlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import model_shapes
from mlit.models import two_tower
from mlit.training import dry_run
from mlit.training import optimizer as optimizer_lib


def vit_kwargs(variant: str, dtype: str = 'float32') -> dict:
  return dict(model_shapes.vit_kwargs(variant), pool_type='tok', dtype=dtype)


def make_model(text: str, *, mode: str, vit: str = 'S/32', dtype: str = 'float32'):
  """The benchmarked two-tower model (out_dim = the ViT's width)."""
  live = mode == 'live'
  return two_tower.TwoTower(
    text=model_shapes.TEXT_SHAPES[text].t5_config(dtype),
    out_dim=model_shapes.vit_kwargs(vit)['width'],
    pooling='mean',
    image=vit_kwargs(vit, dtype) if live else None,
    lock_image=live,
  )


def setup(
  text: str,
  *,
  mode: str,
  batch: int,
  length: int = 16,
  vit: str = 'S/32',
  image_size: int = 224,
  seed: int = 0,
  abstract: bool = False,
  dtype: str = 'float32',
  optimizer: dict | None = None,
):
  """(jitted step, initial state, batch shapes, info); no batch data yet.

  abstract=True gives the state as shapes only (for compiling, not running).
  dtype: the towers' activation dtype (parameters stay float32), e.g. 'bfloat16'.
  optimizer: make_optimizer arguments that replace the benchmark's (experiments only).
  """
  if mode not in ('precomputed', 'live'):
    raise ValueError(f"mode must be 'precomputed' or 'live', got {mode!r}")
  shape = model_shapes.TEXT_SHAPES[text]
  width = model_shapes.vit_kwargs(vit)['width']
  live = mode == 'live'
  model = make_model(text, mode=mode, vit=vit, dtype=dtype)
  image_key = 'image' if live else 'image_embedding'
  specs = {
    'text': jax.ShapeDtypeStruct((batch, length), jnp.int32),
    image_key: jax.ShapeDtypeStruct(
      (batch, image_size, image_size, 3) if live else (batch, width), jnp.float32
    ),
  }
  init_in = {k: jnp.ones((2,) + v.shape[1:], v.dtype) for k, v in specs.items()}
  init = lambda r: nn.unbox(model.init(r, **init_in)['params'])
  key = jax.random.PRNGKey(seed)
  params = jax.eval_shape(init, key) if abstract else jax.jit(init)(key)
  opt_kw = dict(
    total_steps=1000,
    name='adam',
    weight_decay=1e-4,
    grad_clip_norm=1.0,
    freeze=[r'^img/'] if live else [],
  )
  tx, lr_fn = optimizer_lib.make_optimizer(params, **{**opt_kw, **(optimizer or {})})
  # Imported here: the trainer imports seqio, which loads TensorFlow; the scripts that call this
  # load it first, quietly (cli.load_tensorflow_quietly).
  from mlit.training import train  # pylint: disable=g-import-not-at-top

  step_fn = train.make_train_step(model, tx, ['text'], image_key, 'softmax', seed, lr_fn)
  jit_step = jax.jit(step_fn, donate_argnums=(0,))
  state = {
    'step': jnp.zeros((), jnp.int32),
    'params': params,
    'opt_state': (jax.eval_shape(tx.init, params) if abstract else tx.init(params)),
  }
  flops = batch * model_shapes.text_train_flops(shape, length, width)
  flops += model_shapes.loss_flops(batch, width)
  if live:
    flops += batch * model_shapes.vit_forward_flops(vit, image_size)
  info = {
    'text': text,
    'mode': mode,
    'batch': batch,
    'length': length,
    'model_flops_per_step': flops,
    'image': f'ViT-{vit} @{image_size}' if live else 'pre-computed',
    'dtype': dtype,
  }
  return jit_step, state, specs, info


def random_batch(specs: dict, vocab: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  out = {}
  for k, s in specs.items():
    if k == 'text':
      out[k] = jnp.asarray(rng.integers(2, vocab, s.shape), jnp.int32)
    elif k == 'image':
      out[k] = jnp.asarray(rng.uniform(-1, 1, s.shape), jnp.float32)
    else:
      out[k] = jnp.asarray(rng.standard_normal(s.shape), jnp.float32)
  return out


def build(
  text: str,
  *,
  mode: str,
  batch: int,
  length: int = 16,
  vit: str = 'S/32',
  image_size: int = 224,
  seed: int = 0,
  dtype: str = 'float32',
  feed: str = 'fixed',
  optimizer: dict | None = None,
):
  """Returns (run_one_step, info) for mode 'precomputed' or 'live'.

  feed='fixed': the step alone, on one batch already on the device.
  feed='pipeline' (pre-computed only): each step takes the next batch of the
  trainer's input pipeline and places it as the trainer does
  (partitioning.shard_batch), so input costs that the step does not hide show.
  The one timing path of a LiT step: the table, the breakdown and the
  with/without-input comparison all call this.
  """
  if feed not in ('fixed', 'pipeline'):
    raise ValueError(f"feed must be 'fixed' or 'pipeline', got {feed!r}")
  if feed == 'pipeline' and mode != 'precomputed':
    raise ValueError("feed='pipeline' needs mode='precomputed' (an embeddings task)")
  jit_step, state, specs, info = setup(
    text,
    mode=mode,
    batch=batch,
    length=length,
    vit=vit,
    image_size=image_size,
    seed=seed,
    dtype=dtype,
    optimizer=optimizer,
  )
  vocab = model_shapes.TEXT_SHAPES[text].vocab
  holder = {'state': state}
  if feed == 'fixed':
    data = random_batch(specs, vocab, seed)
    next_batch = lambda: data
  else:
    from benchmarks import pipeline_input  # pylint: disable=g-import-not-at-top
    from mlit.training import partitioning  # pylint: disable=g-import-not-at-top

    mesh = partitioning.make_mesh(1, jax.devices()[:1])
    it = pipeline_input.batches(vocab, specs['image_embedding'].shape[1], length, batch)
    next_batch = lambda: partitioning.shard_batch(next(it), mesh)

  def run():
    holder['state'], metrics = jit_step(holder['state'], next_batch())
    jax.block_until_ready(metrics['loss'])

  run.jit_step = jit_step
  run.holder = holder
  run.specs = specs
  return run, dict(info, feed=feed)


def step_hash(jit_step, state, specs) -> str:
  """Hash of a lowered step (state may be shapes only): equal hashes, one computation."""
  return hashlib.sha256(jit_step.lower(state, specs).as_text().encode()).hexdigest()[:16]


def fingerprint(run) -> str:
  """Hash of a built run's lowered step."""
  return step_hash(run.jit_step, run.holder['state'], run.specs)


def compiled_bytes(jit_step, state, specs) -> dict:
  """XLA's buffer plan of the compiled step (no execution), as the trainer's dry run reads it."""
  m = dry_run.step_memory(jit_step.lower(state, specs).compile())
  return {
    'argument': m['arguments'],
    'output': m['outputs'],
    'alias': m['aliased'],
    'temp': m['temporaries'],
    'total': m['total'],
  }
