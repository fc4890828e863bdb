"""The MFU the LiT step's own matrix products allow: each one timed alone, beside the step.

MFU is measured against a square 2048^2 product. The step's products have other shapes: a
dense layer's kernel gradient contracts the 2,048 tokens of a batch-128 step into a 512 x 384
kernel, and XLA:CPU runs such a product slower than the square one. This reads every
dot_general and convolution of the step from its jaxpr (shapes, parameters, how many times it
runs), times each distinct one alone (the same primitive and parameters, jitted, on random
operands) and sums them: the step's products run one at a time, with nothing else. Rounds
alternate the peak, the products and the step itself (lit_step.build, the trainer's own
step), so all three see the same machine.

  ceiling MFU = model FLOPs / products-alone seconds / peak
  step MFU    = model FLOPs / step seconds / peak

The step's MFU over the ceiling is how much of the products' own speed the rest of the step
(the other operations, products sharing the cores) leaves.

  python -m benchmarks.product_ceiling --batch 128 [--mode live] [--rounds 3] [--out F]
"""

import json
import math
import statistics

import jax
import numpy as np
from jax.extend import core as jax_core

from benchmarks import command_line, lit_step, model_shapes, peak, timing
from mlit.commands import cli


def _subjaxprs(params: dict):
  for value in params.values():
    for v in value if isinstance(value, (list, tuple)) else (value,):
      if isinstance(v, jax_core.ClosedJaxpr):
        yield v.jaxpr
      elif isinstance(v, jax_core.Jaxpr):
        yield v


_PRODUCTS = ('dot_general', 'conv_general_dilated')


def _count_products(jaxpr, found: dict, times: int) -> None:
  """found: key -> [equation, count]; equal shapes and parameters, one key."""
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name in _PRODUCTS:
      lhs, rhs = (v.aval for v in eqn.invars)
      key = (name, lhs.shape, rhs.shape, str(lhs.dtype), repr(sorted(eqn.params.items())))
      found.setdefault(key, [eqn, 0])[1] += times
    inner = times * eqn.params['length'] if name == 'scan' else times
    for sub in _subjaxprs(eqn.params):
      if name == 'while' and any(e.primitive.name in _PRODUCTS for e in sub.eqns):
        raise ValueError('a while loop runs matrix products an unknown number of times')
      _count_products(sub, found, inner)


def product_flops(eqn) -> int:
  """2 x multiply-adds: dot_general, lhs size x rhs's free dims; a convolution, output size x
  the kernel's size per output feature."""
  lhs, rhs = (v.aval.shape for v in eqn.invars)
  if eqn.primitive.name == 'dot_general':
    (_, rhs_contract), (_, rhs_batch) = eqn.params['dimension_numbers']
    free = [d for i, d in enumerate(rhs) if i not in rhs_contract and i not in rhs_batch]
    return 2 * math.prod(lhs) * math.prod(free)
  out_features = rhs[eqn.params['dimension_numbers'].rhs_spec[0]]
  return 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(rhs) // out_features


def _distinct_products(jit_step, state, specs) -> list:
  """[(equation, runs per step)] of the step's products, largest share of its FLOPs first."""
  found = {}
  _count_products(jax.make_jaxpr(jit_step)(state, specs).jaxpr, found, 1)
  return sorted(found.values(), key=lambda ec: -product_flops(ec[0]) * ec[1])


def _describe(eqn, count: int) -> dict:
  lhs, rhs = (v.aval for v in eqn.invars)
  return {
    'primitive': eqn.primitive.name,
    'lhs': list(lhs.shape),
    'rhs': list(rhs.shape),
    'dtype': str(lhs.dtype),
    'dimension_numbers': str(eqn.params['dimension_numbers']),
    'count': count,
    'flops': product_flops(eqn),
  }


def step_products(text: str, *, mode: str, batch: int, vit: str = 'S/32') -> tuple[list, dict]:
  """The step's distinct products (matrix products and convolutions, from its jaxpr), largest
  share of its FLOPs first, and the step's info; shapes only, nothing compiled."""
  jit_step, state, specs, info = lit_step.setup(
    text, mode=mode, batch=batch, vit=vit, abstract=True
  )
  return [_describe(e, n) for e, n in _distinct_products(jit_step, state, specs)], info


def _product_fn(eqn, seed: int):
  """The product alone, jitted: the step's own primitive and parameters, random operands."""
  rng = np.random.default_rng(seed)
  a, b = (
    jax.numpy.asarray(rng.standard_normal(v.aval.shape, np.float32), v.aval.dtype)
    for v in eqn.invars
  )
  f = jax.jit(lambda x, y: eqn.primitive.bind(x, y, **eqn.params))
  return lambda: f(a, b).block_until_ready()


def measure(
  text: str,
  *,
  batch: int,
  mode: str = 'precomputed',
  vit: str = 'S/32',
  rounds: int = 3,
  repeats: int = 10,
  steps: int = 3,
  warmup_s: float = peak.WARMUP_S,
  product_warmup_s: float = 0.25,
) -> dict:
  """Per round: the peak, each product (warmed up for product_warmup_s: the first calls of a
  new shape run slow; then the median of `repeats`), the step (median of `steps`). The
  products-alone time is each product's median over rounds times its count."""
  run, info = lit_step.build(text, mode=mode, batch=batch, vit=vit)
  distinct = _distinct_products(run.jit_step, run.holder['state'], run.specs)
  products = [_describe(e, n) for e, n in distinct]
  fns = [_product_fn(e, i) for i, (e, _) in enumerate(distinct)]
  matmul = peak.matmul()
  before = timing.snapshot()
  run()  # compile
  peaks, step_s, product_s = [], [], [[] for _ in fns]
  for _ in range(rounds):
    peaks.append(peak.timed(matmul, warmup_s=warmup_s)['gflops'])
    for fn, ts in zip(fns, product_s):
      ts.append(
        timing.seconds(fn, warmup=2, repeats=repeats, warmup_s=product_warmup_s)['median_s']
      )
    step_s.append(timing.seconds(run, warmup=1, repeats=steps)['median_s'])
  peaks.append(peak.timed(matmul, warmup_s=warmup_s)['gflops'])
  load = timing.load_record(before, timing.snapshot())
  base = max(peaks)
  alone = 0.0
  for p, ts in zip(products, product_s):
    p['seconds'] = statistics.median(ts)
    p['gflops'] = p['flops'] / p['seconds'] / 1e9
    alone += p['count'] * p['seconds']
  flops = info['model_flops_per_step']
  step = statistics.median(step_s)
  return {
    'step_info': info,
    'step_fingerprint': lit_step.fingerprint(run),
    'peak_gflops': base,
    'peaks_gflops': peaks,
    'products': products,  # operand shapes, count per step, FLOPs and speed of each
    'product_flops': sum(p['count'] * p['flops'] for p in products),
    'products_alone_s': alone,
    'step_s': step,
    'step_s_per_round': step_s,
    'ceiling_mfu': flops / alone / (base * 1e9),
    'step_mfu': flops / step / (base * 1e9),
    'step_over_ceiling': alone / step,
    **load,
  }


def main(argv=None):
  p = command_line.Parser(
    prog='python -m benchmarks.product_ceiling', description=__doc__.splitlines()[0]
  )
  model_shapes.add_shape_flags(p)
  p.add_argument(
    '--mode',
    default='precomputed',
    choices=['precomputed', 'live'],
    help='pre-computed image embeddings or the live locked ViT (default precomputed)',
  )
  p.add_argument(
    '--rounds',
    type=command_line.at_least(1),
    default=3,
    help='alternating rounds of peak, products, step (default 3)',
  )
  p.add_argument('--out', help='also write the JSON here (folders are created)')
  args = p.parse_args(argv)
  if args.out:
    command_line.make_out_file_dir(p, args.out)
  cli.load_tensorflow_quietly()  # the trainer's seqio: TensorFlow off the GPUs and the log
  result = measure(args.text, batch=args.batch, mode=args.mode, rounds=args.rounds)
  for q in result['products']:
    print(
      f'{q["count"]:4d} x {q["primitive"]} {q["lhs"]} . {q["rhs"]} {q["dimension_numbers"]}: '
      f'{q["gflops"]:.0f} GFLOP/s, {q["count"] * q["seconds"] * 1e3:.1f} ms'
    )
  print(
    f'peak {result["peak_gflops"]:.0f} GFLOP/s; products alone {result["products_alone_s"]:.3f} s,'
    f' step {result["step_s"]:.3f} s; ceiling MFU {result["ceiling_mfu"]:.0%},'
    f' step MFU {result["step_mfu"]:.0%} ({result["step_over_ceiling"]:.0%} of the ceiling);'
    f' other processes {result["other_cpu_cores"]} cores'
    + (' UNRELIABLE' if result['unreliable'] else '')
  )
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=1)
      f.write('\n')


if __name__ == '__main__':
  main()
