"""Memory: peak RSS of one training step, and the largest batch in a budget.

Peak RSS is measured for real: each configuration runs one jitted train step
(compile + execute) in a fresh subprocess that reports its high-water mark
VmHWM from /proc/self/status. (resource.getrusage's ru_maxrss is not used: on
Linux it survives fork + exec, so a child would report the parent's peak.)

The largest batch in a budget is found by bisection over the batch size,
using XLA's compiled buffer plan of the step (memory_analysis: arguments +
outputs - donated aliases + temporaries = train state, batch, activations).
Compiling does not need the batch in memory, so large live-ViT batches are
sized in seconds. The plan is checked against measurement at the fixed batch:
step_peak reports both the measured peak RSS and baseline RSS + plan.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_now() -> int:
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _hwm() -> int:
  """Peak resident bytes of this process image (reset by exec)."""
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmHWM:'):
        return int(line.split()[1]) * 1024
  raise RuntimeError('no VmHWM in /proc/self/status (Linux only)')


def _child(spec: dict) -> dict:
  from benchmarks import (
    lit_step,  # pylint: disable=g-import-not-at-top
    model_shapes,  # pylint: disable=g-import-not-at-top
  )

  jit_step, state, specs, _ = lit_step.setup(
    spec['text'],
    mode=spec['mode'],
    batch=spec['batch'],
    vit=spec['vit'],
    image_size=spec['image_size'],
  )
  out = {'rss_model_bytes': _rss_now()}
  if spec.get('plan'):
    out['plan'] = lit_step.compiled_bytes(jit_step, state, specs)
  if spec.get('step', True):
    data = lit_step.random_batch(specs, model_shapes.TEXT_SHAPES[spec['text']].vocab)
    out['rss_model_and_batch_bytes'] = _rss_now()
    state, metrics = jit_step(state, data)
    float(metrics['loss'])
    out['peak_rss_bytes'] = _hwm()
  return out


def run_child(spec: dict, timeout: float = 1800) -> dict:
  """Runs _child(spec) in a fresh interpreter; returns its JSON result."""
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
  proc = subprocess.run(
    [sys.executable, '-m', 'benchmarks.memory', json.dumps(spec)],
    capture_output=True,
    text=True,
    timeout=timeout,
    cwd=ROOT,
    env=env,
  )
  if proc.returncode != 0:
    raise RuntimeError(f'memory child {spec} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def step_peak(text: str, batch: int, vit: str, image_size: int) -> dict:
  """Measured peak RSS of one step, pre-computed vs live, same batch."""
  out = {}
  for mode in ('precomputed', 'live'):
    out[mode] = run_child(
      dict(text=text, mode=mode, batch=batch, vit=vit, image_size=image_size, plan=True)
    )
    plan = out[mode]['plan']['total']
    out[mode]['estimate_bytes'] = out[mode]['rss_model_bytes'] + plan
  return out


def largest_batch(
  text: str,
  mode: str,
  budget_bytes: int,
  vit: str,
  image_size: int,
  *,
  start: int = 8,
  hi: int = 1 << 16,
  resolution: int = 8,
) -> dict:
  """Largest batch whose XLA plan (state + batch + activations) fits.

  The budget covers the step's own buffers; the interpreter's baseline
  (Python, JAX, TensorFlow/seqio imported by the trainer) comes on top and is
  reported by step_peak. Doubling/halving from `start`, then bisection to
  within batch/resolution (each probe is one compile).
  """
  from benchmarks import lit_step  # pylint: disable=g-import-not-at-top

  cache = {}

  def plan(b):
    if b not in cache:
      jit_step, state, specs, _ = lit_step.setup(
        text, mode=mode, batch=b, vit=vit, image_size=image_size, abstract=True
      )
      cache[b] = lit_step.compiled_bytes(jit_step, state, specs)['total']
    return cache[b]

  out = {'mode': mode, 'budget_bytes': budget_bytes}
  b = max(1, min(start, hi))
  while b > 1 and plan(b) > budget_bytes:
    b //= 2
  if plan(b) > budget_bytes:
    return dict(out, largest_batch=0, plan_bytes=None, compiles=len(cache))
  lo, b = b, b * 2
  while b <= hi and plan(b) <= budget_bytes:
    lo, b = b, b * 2
  top = min(b, hi + 1)
  while top - lo > max(1, lo // resolution):
    mid = (lo + top) // 2
    if plan(mid) <= budget_bytes:
      lo = mid
    else:
      top = mid
  return dict(out, largest_batch=lo, plan_bytes=cache[lo], capped=lo >= hi, compiles=len(cache))


if __name__ == '__main__':
  print(json.dumps(_child(json.loads(sys.argv[1]))))
