"""Where a LiT step's time goes: forward, backward, optimizer update.

The 'step' is lit_step.build's run (the trainer's jitted, donated step on a
fixed batch): the very callable the LiT table times, so the two sections
measure one thing. Beside it, the loss forward and the loss value_and_grad
(forward + backward) of the same model on the same batch, jitted, read the
step's live parameters; differences of medians attribute the time to parts.

Why the first version's table (2.73 s/step, mT5-small pre-computed, batch
128) and breakdown (1.84 s) disagreed: not the step. Both built the same
model, optimizer (Adam, clip 1.0), batch and jit(make_train_step,
donate_argnums=(0,)); their lowered steps hash equal. What differed is what
each timed call followed: the table rotated the step with the live-ViT step
and open_clip's PyTorch step (A, B, C, A, B, C), so every timed mlit call
started right after a PyTorch step whose 2 OpenMP threads compete with XLA's
2 threads on a 2-core machine, and after a large ViT step; the breakdown
rotated it with its own small jits. The old table also ran earlier, the
breakdown after the pre-computation section (another load moment, one
3-sample median each). Comparisons are now pairs (two sides only), and this
section reuses the table's callable, so the two agree by construction.
"""

import jax

from benchmarks import lit_step, timing
from mlit.models import losses


def build_parts(text: str, *, batch: int, length: int = 16, vit: str = 'S/32', seed: int = 0):
  """({'forward', 'forward+backward', 'step'} -> blocking callables, step info)."""
  step, info = lit_step.build(
    text, mode='precomputed', batch=batch, length=length, vit=vit, seed=seed
  )
  model = lit_step.make_model(text, mode='precomputed', vit=vit)
  data = lit_step.random_batch(step.specs, lit_step.model_shapes.TEXT_SHAPES[text].vocab, seed)

  def loss(p):
    zimg, ztxt, extras = model.apply(
      {'params': p}, image_embedding=data['image_embedding'], text=data['text']
    )
    return losses.softmax_contrastive_loss(zimg, ztxt, extras['t'])[0]

  fwd = jax.jit(loss)
  grad = jax.jit(jax.value_and_grad(loss))
  # The step donates its state: the other parts read its live params.
  params = lambda: step.holder['state']['params']
  return {
    'forward': lambda: fwd(params()).block_until_ready(),
    'forward+backward': lambda: jax.block_until_ready(grad(params())),
    'step': step,
  }, info


def breakdown(
  text: str, *, batch: int, vit: str = 'S/32', warmup: int = 1, repeats: int = 3
) -> dict:
  """vit: the LiT table's image tower (its width is the embedding size)."""
  parts, info = build_parts(text, batch=batch, vit=vit)
  names = list(parts)
  before = timing.snapshot()
  times = timing.paired_seconds([parts[n] for n in names], warmup=warmup, repeats=repeats)
  med = {n: t['median_s'] for n, t in zip(names, times)}
  return {
    'text': text,
    'batch': batch,
    'step_info': info,
    'step_fingerprint': lit_step.fingerprint(parts['step']),
    'time': dict(zip(names, times)),
    'median_s': med,
    'share': {
      'forward': med['forward'] / med['step'],
      'backward': (med['forward+backward'] - med['forward']) / med['step'],
      'optimizer+rest': (med['step'] - med['forward+backward']) / med['step'],
    },
    **timing.load_record(before, timing.snapshot()),
  }
