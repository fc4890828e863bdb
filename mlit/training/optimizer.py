"""Gin-configurable optax optimizers for LiT tuning (paper Appendices A, B, F).

`make_optimizer` builds

  chain(zero the grads of locked params,          # they never count in the norm
        clip_by_global_norm(grad_clip_norm),
        multi_transform({'frozen': set_to_zero(),  # no state, no update, no wd
                         'g<k>': adafactor|adam -> * lr * mult -> + wd * p
                                 -> * -schedule(step - start)}))

so locked parameters hold no optimizer state at all, and every other group
(one per distinct learning-rate multiplier / unlock step, see param_rules)
carries its own schedule. A delayed group's moments accumulate from step 0
(its updates are only scaled by 0 until the unlock step), so it starts with
warm statistics.

Adafactor (paper App. A, after Zhai et al., "Scaling Vision Transformers"):
  b2 = 0.999 caps Adafactor's increasing second-moment decay
  min(b2, 1 - (step+1)^-0.8) of the factored RMS statistics
  (optax.scale_by_factored_rms with a capped decay_rate_fn); b1 = 0.9 is an
  exponential moving average of the RMS-scaled update without bias
  correction (optax.ema(b1, debias=False)), optionally stored in bfloat16
  as in that paper. No parameter-scale multiplication, no update clipping by
  default. optax.adafactor itself cannot cap the decay at b2, hence the parts.

Adam (paper App. B): optax.scale_by_adam(b1, b2) with *decoupled* weight
decay (Loshchilov & Hutter). Like big_vision, the decay is added after the
base learning rate is applied and is then multiplied by the schedule only:
  p <- p - s(t) * (lr * adam_update + wd * p)
so wd=1e-4 shrinks weights by 1e-4 per step at the schedule peak,
independently of lr. `decay_scaled_by_base_lr=True` gives the
PyTorch/optax.adamw convention p <- p - s(t) * lr * (adam_update + wd * p).
Decay applies only to names matching `weight_decay_pattern` (kernels by
default, not norms, biases, temperature).
"""

import math
import re
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

import gin
from mlit.training import param_rules
from tasks.user_error import UserError

Schedule = Callable[[jax.Array], jax.Array]


def warmup_cosine(
  step: jax.Array, total_steps: int, warmup_steps: int = 0, end_frac: float = 0.0
) -> jax.Array:
  """Multiplier in [end_frac, 1]: linear warm-up from 0, then cosine decay."""
  step = jnp.asarray(step, jnp.float32)
  warm = jnp.minimum(1.0, (step + 1.0) / max(warmup_steps, 1))
  decay_len = max(total_steps - warmup_steps, 1)
  frac = jnp.clip((step - warmup_steps) / decay_len, 0.0, 1.0)
  cos = end_frac + (1.0 - end_frac) * 0.5 * (1.0 + jnp.cos(math.pi * frac))
  return jnp.where(step < warmup_steps, warm, cos)


def delayed_schedule(start: int, total_steps: int, warmup_steps: int, end_frac: float) -> Schedule:
  """Zero before `start`, then warm-up + cosine over [start, total_steps]."""
  if not 0 <= start < total_steps:
    raise UserError(f'unlock step {start} must be in [0, {total_steps})')

  def fn(step):
    s = jnp.asarray(step) - start
    mult = warmup_cosine(s, total_steps - start, warmup_steps, end_frac)
    return jnp.where(s < 0, 0.0, mult)

  return fn


def scale_by_adafactor(
  b1: Optional[float] = 0.9,
  b2: float = 0.999,
  decay_exponent: float = 0.8,
  min_dim_size_to_factor: int = 32,
  eps: float = 1e-30,
  clip_threshold: Optional[float] = None,
  momentum_dtype: str = 'float32',
) -> optax.GradientTransformation:
  """Adafactor direction with b2-capped decay and EMA momentum (see module)."""

  def decay_rate_fn(step, exponent):
    t = jnp.asarray(step, jnp.float32) + 1.0
    return jnp.minimum(b2, 1.0 - t ** (-exponent))

  parts = [
    optax.scale_by_factored_rms(
      factored=True,
      decay_rate=decay_exponent,
      min_dim_size_to_factor=min_dim_size_to_factor,
      epsilon=eps,
      decay_rate_fn=decay_rate_fn,
    )
  ]
  if clip_threshold:
    parts.append(optax.clip_by_block_rms(clip_threshold))
  if b1:
    parts.append(optax.ema(b1, debias=False, accumulator_dtype=jnp.dtype(momentum_dtype)))
  return optax.chain(*parts)


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
  """optax.clip_by_global_norm as one scalar factor: t * min(1, max_norm / norm).

  optax divides every gradient element by the norm ((t / norm) * max_norm). XLA
  treats an elementwise divide as expensive and will not copy it into several
  consumers, so the clipped gradient of each leaf is written out in full before
  Adam's two moment updates read it: for mT5's 250k x 512 embedding one extra
  512 MB buffer written and read twice per step. A scalar factor fuses into both
  moment updates. Same result up to float rounding (one rounding differs).
  """

  def update_fn(updates, state, params=None):
    del params
    g_norm = optax.tree.norm(updates)
    factor = jnp.where(g_norm < max_norm, 1.0, max_norm / g_norm)
    return jax.tree.map(lambda t: t * factor.astype(t.dtype), updates), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def _direction(name: str, b1, b2, eps, adafactor_kw):
  if name == 'adafactor':
    return scale_by_adafactor(b1=b1, b2=b2, **adafactor_kw)
  if name == 'adam':
    return optax.scale_by_adam(b1=b1, b2=b2, eps=eps)
  raise UserError(f"optimizer name must be 'adafactor' or 'adam', got {name!r}")


@gin.configurable
def make_optimizer(
  params,
  total_steps: int = gin.REQUIRED,
  name: str = 'adafactor',
  learning_rate: float = 1e-3,
  warmup_steps: int = 0,
  end_lr_frac: float = 0.0,
  grad_clip_norm: Optional[float] = 1.0,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  weight_decay_pattern: str = r'(^|/)kernel$',
  decay_scaled_by_base_lr: bool = False,
  freeze: Sequence[str] = (),
  lr_mults: Sequence[tuple[str, float]] = (),
  delays: Sequence[tuple[str, int]] = (),
  adafactor_kw: Optional[dict] = None,
) -> tuple[optax.GradientTransformation, Schedule]:
  """Builds the LiT optimizer for a parameter tree.

  Args:
    params: parameter tree (boxed or unboxed); only names/structure are used.
    total_steps: training steps (end of the cosine).
    name: 'adafactor' (paper App. A) or 'adam' (App. B).
    learning_rate: peak base learning rate.
    warmup_steps: linear warm-up steps.
    end_lr_frac: final lr as a fraction of the peak.
    grad_clip_norm: clip gradients at this global norm (None/0 = off); the
      norm is over trainable parameters only.
    b1, b2, eps: moment decays (both optimizers) and Adam's epsilon.
    weight_decay: decoupled weight decay (see module docstring).
    weight_decay_pattern: regex of parameter names that are decayed.
    decay_scaled_by_base_lr: multiply the decay by the base lr too.
    freeze: regexes of locked parameters (no state, no update).
    lr_mults: (regex, multiplier) rules, first match wins; 0 = locked.
    delays: (regex, step) rules: train those parameters only from `step`.
    adafactor_kw: extra scale_by_adafactor arguments.

  Returns:
    (tx, lr_fn): the optax transformation and the base lr schedule
    (for logging) as a function of the step.
  """
  if total_steps is gin.REQUIRED or total_steps is None or total_steps < 1:
    raise UserError(
      f'make_optimizer.total_steps must be >= 1, got {total_steps!r} (gin macro TRAIN_STEPS)'
    )
  if warmup_steps >= total_steps:
    raise UserError(
      f'make_optimizer: warmup_steps={warmup_steps} must be < total_steps={total_steps} '
      f'(set e.g. --gin.WARMUP_STEPS={total_steps // 10} for a short run, or raise '
      '--gin.TRAIN_STEPS)'
    )
  lr_mults = param_rules.resolve(lr_mults)
  delays = param_rules.resolve(delays)
  labels, groups = param_rules.group_labels(params, freeze, lr_mults, delays)
  wd_rx = re.compile(weight_decay_pattern)
  adafactor_kw = dict(adafactor_kw or {})

  def wd_mask(p):
    return param_rules.map_names(lambda n: bool(wd_rx.search(n)), p)

  transforms = {'frozen': optax.set_to_zero()}
  for label, (mult, start) in groups.items():
    sched = delayed_schedule(start, total_steps, warmup_steps, end_lr_frac)
    lr = learning_rate * mult
    wd = weight_decay * (lr if decay_scaled_by_base_lr else 1.0)
    parts = [_direction(name, b1, b2, eps, adafactor_kw), optax.scale(lr)]
    if weight_decay:
      parts.append(optax.add_decayed_weights(wd, mask=wd_mask))
    parts.append(optax.scale_by_schedule(lambda s, f=sched: -f(s)))
    transforms[label] = optax.chain(*parts)

  frozen = jax.tree_util.tree_map(lambda l: l == 'frozen', labels)
  chain = [optax.masked(optax.set_to_zero(), frozen)]
  if grad_clip_norm:
    chain.append(clip_by_global_norm(grad_clip_norm))
  chain.append(optax.multi_transform(transforms, labels))
  base = lambda s: learning_rate * warmup_cosine(s, total_steps, warmup_steps, end_lr_frac)
  return optax.chain(*chain), base
