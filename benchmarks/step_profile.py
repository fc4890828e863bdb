"""Inside a LiT step: matrix products, other operations, and time with no operation running.

The step is lit_step.build's run (the LiT table's callable, pre-computed). The JAX profiler
records one event per XLA operation; each event is matched by name to the compiled step's
HLO, where an operation counts as a matrix product when it is a dot or convolution or a fusion
that holds one. An operation lasts from its event's start to its completion: XLA:CPU runs some
operations asynchronously (an unfused dot is handed to Eigen's thread pool, and its event ends
when the work is handed over, a fraction of a millisecond into ~20 ms of work), and the
executor records an `end: <name>` event when such an operation completes. Per profiled step:
its wall time split into seconds with a matrix product in flight, seconds with only other
operations in flight, and seconds with no operation at all (the runtime between operations),
the number of operations, and the seconds after the last product completes (the optimizer,
which the global-norm clip holds until the last gradient). The trace stays in DIR/profile for
Perfetto or TensorBoard.
"""

import bisect
import collections
import glob
import gzip
import json
import os
import re
import statistics

import jax

from benchmarks import lit_step

MARK = 'mlit_lit_step'
_END = 'end: '  # the executor's event when an asynchronous operation completes
_COMPUTATION = re.compile(r'^(?:ENTRY )?%(\S+) ')
_INSTRUCTION = re.compile(r'^\s+(?:ROOT )?%(\S+) = .*? ([a-z][\w-]*)\(')
_CALLS = re.compile(r'(?:calls|to_apply|body|condition|branch_computations)=\{?%([\w.-]+)')
_PRODUCT_OPCODES = ('dot', 'convolution')


def product_operations(hlo_text: str) -> tuple[set, set]:
  """(names of all operations, names of those that compute a matrix product) in HLO text."""
  holds = {}  # computation -> (holds a product itself, computations it calls)
  opcode_calls = {}  # instruction -> (opcode, called computations)
  home = {}  # instruction -> its computation
  control_flow = set()  # loop bodies, branches, calls: their instructions run as operations
  current = None
  for line in hlo_text.splitlines():
    if not line.startswith(' '):
      m = _COMPUTATION.match(line)
      current = m.group(1) if m and line.rstrip().endswith('{') else None
      if current:
        holds[current] = [False, set()]
      continue
    m = _INSTRUCTION.match(line)
    if not m or current is None:
      continue
    name, opcode = m.groups()
    called = set(_CALLS.findall(line))
    opcode_calls[name] = (opcode, called)
    home[name] = current
    if opcode in ('while', 'conditional', 'call'):
      control_flow |= called
    holds[current][0] |= opcode in _PRODUCT_OPCODES
    holds[current][1] |= called

  memo = {}

  def has_product(comp, seen=()):
    if comp not in memo:
      own, called = holds.get(comp, (False, set()))
      memo[comp] = own or any(has_product(c, seen + (comp,)) for c in called if c not in seen)
    return memo[comp]

  # Instructions inside fusions and reducers never run as operations of their own.
  inner = set().union(*(called for _, called in opcode_calls.values()), set())
  top = {n for n, comp in home.items() if comp not in inner or comp in control_flow}
  products = {
    n
    for n in top
    if opcode_calls[n][0] in _PRODUCT_OPCODES or any(has_product(c) for c in opcode_calls[n][1])
  }
  return top, products


def _union_seconds(intervals) -> float:
  total, end = 0.0, None
  for s, e in sorted(intervals):
    if end is None or s > end:
      total += e - s
      end = e
    elif e > end:
      total += e - end
      end = e
  return total / 1e6


def _read_trace(trace_dir: str) -> list[dict]:
  paths = glob.glob(os.path.join(trace_dir, '**', 'perfetto_trace.json.gz'), recursive=True)
  if not paths:
    raise RuntimeError(f'the JAX profiler wrote no perfetto_trace.json.gz under {trace_dir}')
  with gzip.open(max(paths, key=os.path.getmtime)) as f:
    events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  return [e for e in events if e.get('ph') == 'X' and 'dur' in e]


def _completions(events: list[dict]) -> dict:
  """Operation name -> sorted times of its `end: <name>` events (asynchronous completions)."""
  out = collections.defaultdict(list)
  for e in events:
    if e['name'].startswith(_END):
      out[e['name'][len(_END) :]].append(e['ts'])
  return {k: sorted(v) for k, v in out.items()}


def _span(e: dict, completions: dict, step_end: float) -> tuple:
  """(start, end) of one operation: its event, extended to its completion when that is later
  (the first `end:` event of its name at or after its start, within the step)."""
  end = e['ts'] + e['dur']
  times = completions.get(e['name'], ())
  i = bisect.bisect_left(times, e['ts'])
  if i < len(times) and times[i] <= step_end:
    end = max(end, times[i])
  return e['ts'], min(end, step_end)


def step_parts(events: list[dict], operations: set, products: set) -> list[dict]:
  """One record per MARK event: its wall seconds split into time with a matrix product in
  flight, time with only other operations in flight, and time with no operation at all; and
  the time after the last product completes."""
  steps = sorted((e for e in events if e['name'] == MARK), key=lambda e: e['ts'])
  completions = _completions(events)
  out = []
  for step in steps:
    s0, s1 = step['ts'], step['ts'] + step['dur']
    ops = [e for e in events if e['name'] in operations and s0 <= e['ts'] < s1]
    spans = [_span(e, completions, s1) for e in ops]
    product_spans = [sp for e, sp in zip(ops, spans) if e['name'] in products]
    product_s = _union_seconds(product_spans)
    last_product = max((end for _, end in product_spans), default=s0)
    any_s = _union_seconds(spans)
    wall = step['dur'] / 1e6
    out.append(
      {
        'wall_s': wall,
        'operations': len(ops),
        'product_operations': sum(e['name'] in products for e in ops),
        'product_s': product_s,
        'other_only_s': any_s - product_s,
        'no_operation_s': wall - any_s,
        'after_last_product_s': (s1 - last_product) / 1e6,
      }
    )
  return out


def profile(
  text: str, *, batch: int, out_dir: str, vit: str = 'S/32', warmup: int = 2, steps: int = 3
) -> dict:
  run, info = lit_step.build(text, mode='precomputed', batch=batch, vit=vit)
  hlo = run.jit_step.lower(run.holder['state'], run.specs).compile().as_text()
  operations, products = product_operations(hlo)
  for _ in range(warmup):
    run()
  with jax.profiler.trace(out_dir, create_perfetto_trace=True):
    for _ in range(steps):
      with jax.profiler.TraceAnnotation(MARK):
        run()
  per_step = step_parts(_read_trace(out_dir), operations, products)
  if len(per_step) != steps:
    raise RuntimeError(f'found {len(per_step)} of {steps} profiled steps in the trace')
  median = {k: statistics.median(s[k] for s in per_step) for k in per_step[0]}
  return {
    'text': text,
    'batch': batch,
    'step_info': info,
    'step_fingerprint': lit_step.fingerprint(run),
    'steps': per_step,
    'median': median,
    'trace_dir': out_dir,
  }
