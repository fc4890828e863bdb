r"""Accelerator check: `python benchmarks/accelerator_check.py --out DIR [--smoke]`.

On a GPU or TPU, within a budget of 4 minutes: the bfloat16 matmul peak of this device (the MFU
base, measured in this run), the LiT train step with bfloat16 activations at mT5-small and mT5-base
shapes (mT5's 250k vocabulary), with pre-computed embeddings and with a live locked ViT-B/32, the
pre-computation throughput (ViT-B/32 images/s and MFU, and the shard reader's images/s beside
it), and a smoke subset of the test suite. Writes DIR/bench.json with the device's name.
--smoke (the default on a CPU, and what the test suite runs) does the same with tiny shapes.
A part that would start after the budget is spent is recorded as skipped, not run.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

BUDGET_S = 240
PLANS = {
  'accelerator': dict(
    texts=['mt5_small', 'mt5_base'],
    vit='B/32',
    image_size=224,
    batch=256,
    length=16,
    peak_n=8192,
    peak_warmup_s=1.5,
    precompute_vit='B/32',
    precompute_batch=512,
    precompute_images=1024,
    source_image_size=256,
    warmup=2,
    repeats=5,
    pytest=['tests/test_losses.py', 'tests/test_flat_dot.py', 'tests/test_two_tower.py'],
  ),
  'smoke': dict(
    texts=['local_tiny'],
    vit='toy/8',
    image_size=32,
    batch=8,
    length=8,
    peak_n=256,
    peak_warmup_s=0.2,
    precompute_vit='toy/8',
    precompute_batch=8,
    precompute_images=16,
    source_image_size=64,
    warmup=1,
    repeats=2,
    pytest=['tests/test_losses.py', '-k', 'softmax_matches_numpy'],
  ),
}
DTYPE = 'bfloat16'


def _log(msg: str) -> None:
  print(f'[accelerator_check {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


def device_info() -> dict:
  import jax  # pylint: disable=g-import-not-at-top

  d = jax.devices()[0]
  return {
    'platform': d.platform,
    'kind': d.device_kind,
    'local_devices': jax.local_device_count(),
    'devices': jax.device_count(),
    'process_count': jax.process_count(),
    'jax': jax.__version__,
  }


def lit_rows(plan: dict, peak_gflops: float, over_budget) -> dict:
  from benchmarks import lit_step, timing  # pylint: disable=g-import-not-at-top

  rows = {}
  for text in plan['texts']:
    for mode in ('precomputed', 'live'):
      name = f'{text}/{mode}'
      if over_budget():
        rows[name] = {'skipped': 'time budget spent'}
        continue
      t0 = time.time()
      run, info = lit_step.build(
        text,
        mode=mode,
        batch=plan['batch'],
        length=plan['length'],
        vit=plan['vit'],
        image_size=plan['image_size'],
        dtype=DTYPE,
      )
      t = timing.seconds(run, warmup=plan['warmup'], repeats=plan['repeats'])
      gflops = info['model_flops_per_step'] / t['median_s'] / 1e9
      rows[name] = dict(
        info,
        time=t,
        pairs_per_s=info['batch'] / t['median_s'],
        model_gflops_per_s=gflops,
        mfu=gflops / peak_gflops,
        seconds_with_compile=round(time.time() - t0, 1),
      )
      _log(f'lit {name}: {rows[name]["pairs_per_s"]:.1f} pairs/s, MFU {rows[name]["mfu"]:.3f}')
  return rows


class _Outcomes:
  """pytest plugin: counts the test calls that passed and failed."""

  def __init__(self):
    self.passed = self.failed = 0

  def pytest_runtest_logreport(self, report):
    if report.when == 'call' or report.failed:
      self.passed += report.passed and report.when == 'call'
      self.failed += report.failed


def run_pytest(args: list) -> dict:
  """The pytest subset in this process (JAX is already imported and the device held)."""
  import pytest  # pylint: disable=g-import-not-at-top

  t0 = time.time()
  outcomes = _Outcomes()
  paths = [os.path.join(ROOT, a) if a.startswith('tests/') else a for a in args]  # from any cwd
  returncode = int(pytest.main(['-x', '-q', '-p', 'no:cacheprovider', *paths], plugins=[outcomes]))
  return {
    'args': args,
    'returncode': returncode,
    'summary': f'{outcomes.passed} passed, {outcomes.failed} failed',
    'seconds': round(time.time() - t0, 1),
  }


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--out', required=True, help='output directory for bench.json')
  p.add_argument('--smoke', action='store_true', help='tiny shapes (the default on a CPU)')
  p.add_argument('--budget_s', type=float, default=BUDGET_S)
  args = p.parse_args(argv)
  start = time.time()
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  # seqio's TensorFlow: hidden from the accelerator (it would take most of a GPU's memory on its
  # first operation), its loading chatter off the log.
  cli.load_tensorflow_quietly()
  from benchmarks import peak  # pylint: disable=g-import-not-at-top
  from benchmarks import run as bench_run  # pylint: disable=g-import-not-at-top

  device = device_info()
  mode = 'smoke' if args.smoke or device['platform'] == 'cpu' else 'accelerator'
  if mode == 'smoke' and not args.smoke:
    _log('no GPU or TPU: smoke mode with tiny shapes (accelerator figures not measured)')
  plan = PLANS[mode]
  over_budget = lambda: time.time() - start > args.budget_s
  _log(f'{mode} on {device["kind"]} ({device["platform"]})')
  result = {'schema': 1, 'mode': mode, 'device': device, 'plan': plan, 'dtype': DTYPE}
  result['peak'] = {
    DTYPE: peak.matmul_peak(
      plan['peak_n'], repeats=plan['repeats'] + 1, dtype=DTYPE, warmup_s=plan['peak_warmup_s']
    ),
    'float32': peak.matmul_peak(
      plan['peak_n'], repeats=plan['repeats'] + 1, warmup_s=plan['peak_warmup_s']
    ),
  }
  peak_gflops = result['peak'][DTYPE]['gflops']
  _log(f'peak {DTYPE} {peak_gflops:.1f} GFLOP/s')
  result['lit'] = lit_rows(plan, peak_gflops, over_budget)
  if over_budget():
    result['precompute'] = {'skipped': 'time budget spent'}
  else:
    result['precompute'] = bench_run.section_precompute(dict(plan, dtype=DTYPE), peak_gflops)
    _log(f'precompute {result["precompute"]["embed"]["images_per_s"]:.1f} images/s')
  result['pytest'] = (
    {'skipped': 'time budget spent'} if over_budget() else run_pytest(plan['pytest'])
  )
  result['seconds'] = round(time.time() - start, 1)
  result['within_budget'] = result['seconds'] <= args.budget_s
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'bench.json'), 'w') as f:
    json.dump(result, f, indent=1)
  _log(f'wrote {args.out}/bench.json in {result["seconds"]:.0f}s')
  failed = result['pytest'].get('returncode', 0) != 0
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
