"""benchmarks/run.py --quick: runs end to end and writes the documented schema.

No speed assertions: the numbers depend on the machine and its load. The
checks are on structure and on values that must hold anywhere (positive
times, ratios consistent with the pairs/s they come from, FLOPs from the
analytic counts).
"""

import glob
import json
import math
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import model_shapes, timing  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
  """One `run.py --quick` over every section the tests check (one interpreter, one peak)."""
  return _run(tmp_path_factory.mktemp('bench'), 'peak,lit,mfu,breakdown,profile,eval,data,memory')


def _run(tmp_path, sections):
  out = tmp_path / 'bench'
  # The session's XLA cache (conftest): test_bench_method compiled the same quick steps.
  env = dict(os.environ)
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, 'benchmarks', 'run.py'),
      '--quick',
      '--sections',
      sections,
      '--out',
      str(out),
    ],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env=env,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(out / 'bench.json') as f:
    result = json.load(f)
  md = (out / 'bench.md').read_text()
  return result, md, proc.stderr


def _time_ok(t):
  assert set(t) >= {'median_s', 'min_s', 'max_s', 'repeats'}
  assert 0 < t['min_s'] <= t['median_s'] <= t['max_s']
  assert t['repeats'] >= 1


@pytest.mark.slow
def test_quick_compute_sections(quick_run):
  result, md, log = quick_run
  # TensorFlow loads quietly, as in the mlit commands: none of its oneDNN/CUDA-stub lines.
  assert 'I0000' not in log and 'cuInit' not in log and 'cudart_stub' not in log, log[-2000:]
  assert '[bench ' in log  # the progress lines are still there
  assert result['schema'] == 2 and result['quick'] is True
  assert len(result['load_start']) == 3 and result['environment']['jax']
  assert result['unreliable'] == any(r['unreliable'] for r in result['loads'].values())
  assert set(result['loads']) >= {'peak', 'lit', 'breakdown', 'eval'}
  peak = result['peak']
  assert peak['jax']['gflops'] > 0 and peak['mfu_base_gflops'] >= (peak['jax']['gflops'])
  _time_ok(peak['jax']['time'])
  modes = result['lit']['local_tiny']
  for mode, peers in (
    ('precomputed', ['open_clip eager', 'plain PyTorch eager']),
    ('live', ['open_clip eager']),
  ):
    m = modes[mode]
    assert sorted(m['comparisons']) == sorted(peers)
    # torch.compile is not timed in quick mode, and says so.
    assert all('quick mode' in why for why in m['skipped'].values()) and m['skipped']
    for c in m['comparisons'].values():
      _time_ok(c['a'])
      _time_ok(c['b'])
      r = c['speed_ratio']
      assert r['min'] <= r['median'] <= r['max']
      for side, t in (('mlit_speed', c['a']), ('peer_speed', c['b'])):
        s = c[side]
        assert math.isclose(s['pairs_per_s'], m['mlit']['batch'] / t['median_s'])
        assert math.isclose(s['mfu'], s['model_gflops_per_s'] / peak['mfu_base_gflops'])
    best = max(m['comparisons'].values(), key=lambda c: c['peer_speed']['pairs_per_s'])
    assert m['headline']['median'] == best['speed_ratio']['median']
    assert m['best_peer'] in m['comparisons']
  # The breakdown times the table's own step, and its timing agrees with the table's: the
  # fastest call of each within 5x (a path that timed compilation, or another step, would be
  # 100x off at this size; the bound leaves room for a loaded test machine).
  assert result['breakdown']['step_fingerprint'] == modes['precomputed']['step_fingerprint']
  table_fastest = modes['precomputed']['mlit_speed']['time']['min_s']
  breakdown_fastest = result['breakdown']['time']['step']['min_s']
  assert 1 / 5 < breakdown_fastest / table_fastest < 5, (breakdown_fastest, table_fastest)
  # Pre-computed counts the text tower and loss only; live adds the ViT.
  shape = model_shapes.TEXT_SHAPES['local_tiny']
  b = result['config']['batch']
  text = b * model_shapes.text_train_flops(shape, 16, 32) + (model_shapes.loss_flops(b, 32))
  assert math.isclose(modes['precomputed']['mlit']['model_flops_per_step'], text)
  assert math.isclose(
    modes['live']['mlit']['model_flops_per_step'],
    text + b * model_shapes.vit_forward_flops('toy/8', 32),
  )
  shares = result['breakdown']['share']
  assert set(shares) == {'forward', 'backward', 'optimizer+rest'}
  assert math.isclose(sum(shares.values()), 1.0)
  # The profiled step is the table's step; every profiled step is found in the trace, with
  # its products among its operations and its parts inside its wall time.
  prof = result['profile']
  assert prof['step_fingerprint'] == modes['precomputed']['step_fingerprint']
  assert len(prof['steps']) == 3
  for s in prof['steps']:
    assert s['operations'] > s['product_operations'] > 0
    assert s['product_s'] > 0 and s['other_only_s'] > 0 and s['no_operation_s'] >= 0
    parts = s['product_s'] + s['other_only_s'] + s['no_operation_s']
    assert math.isclose(parts, s['wall_s'], rel_tol=1e-6)
    assert 0 < s['after_last_product_s'] <= s['other_only_s'] + s['no_operation_s'] + 1e-9
  assert glob.glob(os.path.join(prof['trace_dir'], '**', 'perfetto_trace.json.gz'), recursive=True)
  # Paired MFU: the table's step alternating with the peak; each step's MFU is its model
  # FLOP/s over the higher of the peaks measured right before and right after it.
  for mode in ('precomputed', 'live'):
    pm = result['mfu']['local_tiny'][mode]
    assert pm['step_fingerprint'] == modes[mode]['step_fingerprint']
    assert len(pm['pairs']) == result['config']['mfu_pairs'] == 2
    flops = modes[mode]['mlit']['model_flops_per_step']
    for pair, after in zip(pm['pairs'], pm['pairs'][1:] + [None]):
      _time_ok(pair['step'])
      assert pair['peak_gflops'] == max(pair['peak_before_gflops'], pair['peak_after_gflops'])
      assert after is None or after['peak_before_gflops'] == pair['peak_after_gflops']
      assert math.isclose(pair['mfu'], flops / pair['step']['median_s'] / 1e9 / pair['peak_gflops'])
    mfus = sorted(pair['mfu'] for pair in pm['pairs'])
    assert (pm['mfu']['min'], pm['mfu']['max']) == (mfus[0], mfus[-1])
    assert mfus[0] <= pm['mfu']['median'] <= mfus[-1]
  ev = result['eval']
  assert ev['prompts']['local_tiny']['prompts_per_s'] > 0
  assert ev['classifier']['n_prompts'] == 5 * 4
  _time_ok(ev['retrieval']['time'])
  for heading in (
    '## Peak',
    '## LiT step',
    '## MFU, each step between two peak',
    '## Where the step goes',
    '## Inside the step',
    '## Evaluation',
    'open_clip',
  ):
    assert heading in md


@pytest.mark.slow
def test_quick_data_and_memory_sections(quick_run):
  result, md, _ = quick_run
  assert result['data']['examples_per_s'] > 0
  mem = result['memory']
  for mode in ('precomputed', 'live'):
    step = mem['step'][mode]
    assert step['peak_rss_bytes'] >= step['rss_model_bytes'] > 0
    assert step['plan']['total'] > 0
    lb = mem['largest_batch'][mode]
    assert 0 <= lb['largest_batch'] <= 16
    if lb['largest_batch']:
      assert lb['plan_bytes'] <= lb['budget_bytes']
  # A live ViT's weights and activations make its step plan larger.
  assert mem['step']['live']['plan']['total'] > (mem['step']['precomputed']['plan']['total'])
  assert '## Memory' in md and '## Data' in md


def test_flop_counts_match_hand_count():
  # mT5-small shape, one 16-token text: per layer and token 8*512*384 (q,k,v,o)
  # + 6*512*1024 (gated MLP) + 4*16*384 (attention), 8 layers, + head.
  s = model_shapes.TEXT_SHAPES['mt5_small_32k']
  per_token = 8 * 512 * 384 + 6 * 512 * 1024 + 4 * 16 * 384
  fwd = 8 * 16 * per_token + 2 * 512 * 384
  assert model_shapes.text_forward_flops(s, 16, 384) == fwd
  assert model_shapes.text_train_flops(s, 16, 384) == 3 * fwd + 16 * 512


def test_warmup_lasts_the_asked_seconds():
  # The matmul peak warms up by time: two warm-up calls right after a LiT step read it low.
  calls = []

  def fn():
    calls.append(None)
    time.sleep(0.01)

  t = timing.seconds(fn, warmup=2, repeats=3, warmup_s=0.1)
  assert t['repeats'] == 3
  assert len(calls) - 3 >= 8  # >= 0.1 s of 10 ms calls before timing
  calls.clear()
  timing.seconds(fn, warmup=2, repeats=3)
  assert len(calls) == 5


def test_profile_finds_products_in_fusions_and_nothing_inside_them():
  from benchmarks import step_profile  # pylint: disable=g-import-not-at-top

  hlo = """HloModule m

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %add.1 = f32[] add(%a, %b)
}

%inner (p: f32[4,4]) -> f32[4,4] {
  %p = f32[4,4]{1,0} parameter(0)
  ROOT %dot.7 = f32[4,4]{1,0} dot(%p, %p), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%outer (q: f32[4,4]) -> f32[4,4] {
  %q = f32[4,4]{1,0} parameter(0)
  ROOT %nested = f32[4,4]{1,0} fusion(%q), kind=kCustom, calls=%inner
}

ENTRY %main (x: f32[4,4]) -> (f32[4,4], f32[4,4], f32[]) {
  %x = f32[4,4]{1,0} parameter(0)
  %ynn_fusion.3 = f32[4,4]{1,0} fusion(%x), kind=kCustom, calls=%outer
  %dot.9 = f32[4,4]{1,0} dot(%x, %x), lhs_contracting_dims={0}, rhs_contracting_dims={0}
  %zero = f32[] constant(0)
  %reduce.2 = f32[] reduce(%ynn_fusion.3, %zero), dimensions={0,1}, to_apply=%add
  ROOT %t = (f32[4,4]{1,0}, f32[4,4]{1,0}, f32[]) tuple(%ynn_fusion.3, %dot.9, %reduce.2)
}
"""
  operations, products = step_profile.product_operations(hlo)
  assert operations == {'x', 'ynn_fusion.3', 'dot.9', 'zero', 'reduce.2', 't'}
  assert products == {'ynn_fusion.3', 'dot.9'}
  events = [
    {'name': step_profile.MARK, 'ts': 0, 'dur': 200},
    {'name': 'ynn_fusion.3', 'ts': 10, 'dur': 50},
    {'name': 'reduce.2', 'ts': 40, 'dur': 30},  # overlaps the product until 70
    {'name': 'dot.7', 'ts': 80, 'dur': 5},  # inside a fusion: not an operation
    # An asynchronous dot: its event is the hand-over (100..102), its work ends at 150.
    {'name': 'dot.9', 'ts': 100, 'dur': 2},
    {'name': 'end: dot.9', 'ts': 150, 'dur': 0},
    {'name': 'end: dot.9', 'ts': 900, 'dur': 0},  # a later step's completion: not this one
  ]
  (step,) = step_profile.step_parts(events, operations, products)
  assert step['operations'] == 3 and step['product_operations'] == 2
  assert math.isclose(step['product_s'], (50 + 50) * 1e-6)  # 10..60 and 100..150
  assert math.isclose(step['other_only_s'], 10e-6)  # 60..70
  assert math.isclose(step['no_operation_s'], (200 - 110) * 1e-6)
  assert math.isclose(step['after_last_product_s'], (200 - 150) * 1e-6)  # dot.9 completes at 150


def test_optimizer_tail_times_three_different_steps():
  # The overrides reach make_optimizer: three different lowered steps, the first the LiT
  # table's step. A measurement times exactly those steps (built, not lowered from shapes),
  # the step as trained and a variant every round. The quick run's shape: its compiled step
  # is in the session's XLA cache.
  from benchmarks import lit_step, optimizer_tail  # pylint: disable=g-import-not-at-top

  shape = dict(batch=8, vit='toy/8')
  prints = optimizer_tail.step_fingerprints('local_tiny', **shape)
  assert set(prints) == set(optimizer_tail.VARIANTS) and len(set(prints.values())) == 3
  table = lit_step.setup('local_tiny', mode='precomputed', abstract=True, **shape)
  assert prints['as_trained'] == lit_step.step_hash(*table[:3])
  result = optimizer_tail.measure(
    'local_tiny', rounds=2, steps=1, warmup=1, variants=('no_clip',), **shape
  )
  assert result['step_fingerprints'] == {k: prints[k] for k in ('as_trained', 'no_clip')}
  assert all(v['repeats'] == 2 and v['median_s'] > 0 for v in result['variants'].values())


def test_step_scripts_load_tensorflow_only_when_told():
  """The scripts run with `python -m` (product_ceiling, optimizer_tail) import no TensorFlow at
  import time, so their main loads it quietly first (cli.load_tensorflow_quietly) and their
  output has none of its loading lines; the trainer is imported when a step is built."""
  code = (
    'import sys\n'
    'from benchmarks import lit_step, optimizer_tail, product_ceiling, step_profile\n'
    "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
  )
  proc = subprocess.run(
    [sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=False
  )
  assert proc.returncode == 0 and 'I0000' not in proc.stderr, proc.stderr[-2000:]


def test_product_ceiling_reads_the_steps_own_products():
  # Two independent counts agree: the products read from the step's jaxpr carry the FLOPs of
  # model_shapes' formula (which adds the embedding gradient's adds, not a product), the live
  # step's too, and there are as many as the compiled step runs product operations. Then one measured round times
  # the LiT table's step itself. The quick run's shape (its step is in the XLA cache).
  from benchmarks import lit_step, product_ceiling, step_profile  # pylint: disable=g-import-not-at-top

  shape = dict(batch=8, vit='toy/8')
  products, info = product_ceiling.step_products('local_tiny', mode='precomputed', **shape)
  flops = sum(p['count'] * p['flops'] for p in products)
  assert math.isclose(flops, info['model_flops_per_step'], rel_tol=1e-3)
  live, live_info = product_ceiling.step_products('local_tiny', mode='live', **shape)
  live_flops = sum(p['count'] * p['flops'] for p in live)
  assert math.isclose(live_flops, live_info['model_flops_per_step'], rel_tol=1e-3)
  jit_step, state, specs, _ = lit_step.setup(
    'local_tiny', mode='precomputed', abstract=True, **shape
  )
  _, compiled = step_profile.product_operations(jit_step.lower(state, specs).compile().as_text())
  assert sum(p['count'] for p in products) == len(compiled)
  result = product_ceiling.measure(
    'local_tiny', rounds=1, repeats=2, steps=1, warmup_s=0.0, product_warmup_s=0.0, **shape
  )
  assert result['step_fingerprint'] == lit_step.step_hash(jit_step, state, specs)
  assert all(p['seconds'] > 0 and p['gflops'] > 0 for p in result['products'])
  assert math.isclose(
    result['products_alone_s'], sum(p['count'] * p['seconds'] for p in result['products'])
  )
  assert result['ceiling_mfu'] > 0 and result['step_mfu'] > 0


def test_product_ceiling_counts_convolution_flops():
  # A 3x3 convolution, 2 groups, stride 2: 2 x outputs x (3 x 3 x 4 input features per group).
  import jax  # pylint: disable=g-import-not-at-top
  from jax import lax  # pylint: disable=g-import-not-at-top

  from benchmarks import product_ceiling  # pylint: disable=g-import-not-at-top

  x = jax.ShapeDtypeStruct((2, 9, 9, 8), 'float32')
  k = jax.ShapeDtypeStruct((3, 3, 4, 6), 'float32')
  conv = lambda a, b: lax.conv_general_dilated(
    a, b, (2, 2), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=2
  )
  (eqn,) = jax.make_jaxpr(conv)(x, k).jaxpr.eqns
  assert product_ceiling.product_flops(eqn) == 2 * (2 * 4 * 4 * 6) * (3 * 3 * 4)
