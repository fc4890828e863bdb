r"""mlit benchmarks: `python benchmarks/run.py [--quick] --out DIR`.

Writes DIR/bench.json and DIR/bench.md. Sections: matmul peak; LiT step
pairs/s and MFU (pre-computed embeddings and live locked ViT) side by side
with open_clip on the same CPU; where a step's time goes; evaluation speed;
the YFCC data pipeline; pre-computation (the locked ViT's images/s and MFU beside the image
shard reader's images/s); memory. Every figure is a median of repeated runs
after warm-up; compared implementations are timed alternately in this one
process. --quick runs tiny settings (for tests; the numbers mean little).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

SECTIONS = ('peak', 'lit', 'breakdown', 'eval', 'data', 'precompute', 'memory')
FULL = dict(
  texts=['local_tiny', 'mt5_small_32k'],
  batch=128,
  vit='S/32',
  image_size=224,
  warmup=1,
  repeats=3,
  peak_n=2048,
  n_prompts=2048,
  n_retrieval=10000,
  n_classes=1000,
  n_templates=80,
  data_rows=20000,
  data_repeats=3,
  mem_text='mt5_small_32k',
  budget_mib=2048,
  max_batch=8192,
  precompute_vit='B/32',
  precompute_batch=64,
  precompute_images=512,
  source_image_size=256,
)
QUICK = dict(
  texts=['local_tiny'],
  batch=8,
  vit='toy/8',
  image_size=32,
  warmup=1,
  repeats=2,
  peak_n=256,
  n_prompts=64,
  n_retrieval=300,
  n_classes=5,
  n_templates=4,
  data_rows=300,
  data_repeats=1,
  mem_text='local_tiny',
  budget_mib=64,
  max_batch=16,
  precompute_vit='toy/8',
  precompute_batch=8,
  precompute_images=32,
  source_image_size=64,
)


def _log(msg: str) -> None:
  print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


def _environment() -> dict:
  import jax  # pylint: disable=g-import-not-at-top

  env = {
    'python': platform.python_version(),
    'jax': jax.__version__,
    'machine': platform.machine(),
    'cpu_count': os.cpu_count(),
    'xla_flags': os.environ.get('XLA_FLAGS', ''),
    'devices': [str(d) for d in jax.devices()],
  }
  try:
    with open('/proc/cpuinfo') as f:
      names = [l.split(':', 1)[1].strip() for l in f if 'model name' in l]
    env['cpu'] = names[0] if names else platform.processor()
  except OSError:
    env['cpu'] = platform.processor()
  try:
    import open_clip  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top

    env.update(torch=torch.__version__, open_clip=open_clip.__version__)
  except ImportError as e:
    env['open_clip_missing'] = str(e)
  return env


def _compilation_cache() -> None:
  """Persistent XLA cache: repeated builds and memory children compile once.

  Compilation is never part of a timing (warm-up covers it); this only
  shortens the run. Set JAX_COMPILATION_CACHE_DIR to choose the directory.
  """
  import jax  # pylint: disable=g-import-not-at-top

  path = os.environ.setdefault(
    'JAX_COMPILATION_CACHE_DIR', os.path.join(os.path.expanduser('~'), '.cache', 'mlit_bench_xla')
  )
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def section_peak(cfg) -> dict:
  from benchmarks import peak  # pylint: disable=g-import-not-at-top

  out = {'jax': peak.matmul_peak(cfg['peak_n'], warmup=2, repeats=max(3, cfg['repeats']))}
  try:
    out['torch'] = peak.torch_matmul_peak(cfg['peak_n'], warmup=2, repeats=max(3, cfg['repeats']))
  except ImportError:
    pass
  return out


def section_lit(cfg, peak_gflops: float, with_open_clip: bool) -> dict:
  """mlit pre-computed, mlit live and open_clip live, timed alternately."""
  from benchmarks import (
    lit_step,  # pylint: disable=g-import-not-at-top
    timing,  # pylint: disable=g-import-not-at-top
  )

  rows = {}
  for text in cfg['texts']:
    kw = dict(batch=cfg['batch'], vit=cfg['vit'], image_size=cfg['image_size'])
    runs = {
      'mlit_precomputed': lit_step.build(text, mode='precomputed', **kw),
      'mlit_live': lit_step.build(text, mode='live', **kw),
    }
    if with_open_clip:
      from benchmarks import open_clip_step  # pylint: disable=g-import-not-at-top

      open_clip_step.torch_threads(os.cpu_count() or 1)
      runs['open_clip_live'] = open_clip_step.build(text, **kw)
    names = list(runs)
    load0 = timing.load()
    times = timing.paired_seconds(
      [runs[n][0] for n in names], warmup=cfg['warmup'], repeats=cfg['repeats']
    )
    row = {'load_before': load0, 'load_after': timing.load()}
    for n, t in zip(names, times):
      info = runs[n][1]
      gflops = info['model_flops_per_step'] / t['median_s'] / 1e9
      row[n] = dict(
        info,
        time=t,
        pairs_per_s=info['batch'] / t['median_s'],
        model_gflops_per_s=gflops,
        mfu=gflops / peak_gflops,
      )
    if with_open_clip:
      ref = row['open_clip_live']['pairs_per_s']
      row['ratio_live_vs_open_clip'] = row['mlit_live']['pairs_per_s'] / ref
      row['ratio_precomputed_vs_open_clip_live'] = row['mlit_precomputed']['pairs_per_s'] / ref
    rows[text] = row
    _log(f'lit {text}: ' + ', '.join(f'{n} {row[n]["pairs_per_s"]:.1f} pairs/s' for n in names))
  return rows


def section_breakdown(cfg) -> dict:
  from benchmarks import breakdown  # pylint: disable=g-import-not-at-top

  text = cfg['texts'][-1]
  return breakdown.breakdown(text, batch=cfg['batch'], warmup=cfg['warmup'], repeats=cfg['repeats'])


def section_eval(cfg) -> dict:
  from benchmarks import eval_speed  # pylint: disable=g-import-not-at-top

  return eval_speed.run(
    cfg['texts'],
    n_prompts=cfg['n_prompts'],
    n_retrieval=cfg['n_retrieval'],
    n_classes=cfg['n_classes'],
    n_templates=cfg['n_templates'],
    classifier_text=cfg['texts'][0],
    warmup=cfg['warmup'],
    repeats=cfg['repeats'],
  )


def section_data(cfg) -> dict:
  """benchmarks/data_pipeline.py in fresh processes (it registers tasks)."""
  results = []
  for _ in range(cfg['data_repeats']):
    proc = subprocess.run(
      [
        sys.executable,
        '-m',
        'benchmarks.data_pipeline',
        '--rows',
        str(cfg['data_rows']),
        '--batch',
        str(min(256, cfg['data_rows'])),
      ],
      capture_output=True,
      text=True,
      cwd=ROOT,
      timeout=1800,
    )
    if proc.returncode:
      raise RuntimeError(f'data_pipeline.py failed:\n{proc.stderr[-3000:]}')
    results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
  eps = [r['examples_per_s'] for r in results]
  steady = [r['steady_examples_per_s'] for r in results]
  return {
    'runs': results,
    'examples_per_s': statistics.median(eps),
    'steady_examples_per_s': statistics.median(steady),
  }


def section_precompute(cfg, peak_gflops: float) -> dict:
  """The locked tower's images/s and MFU beside the shard reader's images/s."""
  from benchmarks import precompute_speed  # pylint: disable=g-import-not-at-top

  return precompute_speed.run(
    cfg['precompute_vit'],
    image_size=cfg['image_size'],
    batch=cfg['precompute_batch'],
    warmup=cfg['warmup'],
    repeats=cfg['repeats'],
    peak_gflops=peak_gflops,
    n_images=cfg['precompute_images'],
    source_size=cfg['source_image_size'],
    dtype=cfg.get('dtype', 'float32'),
  )


def section_memory(cfg) -> dict:
  from benchmarks import memory  # pylint: disable=g-import-not-at-top

  text = cfg['mem_text']
  budget = cfg['budget_mib'] << 20
  return {
    'text': text,
    'batch': cfg['batch'],
    'image': cfg['vit'],
    'image_size': cfg['image_size'],
    'step': memory.step_peak(text, cfg['batch'], cfg['vit'], cfg['image_size']),
    'largest_batch': {
      m: memory.largest_batch(
        text, m, budget, cfg['vit'], cfg['image_size'], start=cfg['batch'], hi=cfg['max_batch']
      )
      for m in ('precomputed', 'live')
    },
  }


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--out', required=True, help='output directory')
  p.add_argument('--quick', action='store_true', help='tiny settings')
  p.add_argument(
    '--sections', default=','.join(SECTIONS), help=f'comma-separated subset of {",".join(SECTIONS)}'
  )
  p.add_argument('--no-open-clip', action='store_true')
  for k in ('batch', 'repeats', 'warmup', 'image_size', 'budget_mib'):
    p.add_argument('--' + k.replace('_', '-'), type=int, default=None)
  p.add_argument('--vit', default=None, help="e.g. 'S/32'")
  args = p.parse_args(argv)
  sections = [s for s in args.sections.split(',') if s]
  bad = set(sections) - set(SECTIONS)
  if bad:
    p.error(f'unknown sections {sorted(bad)}; known: {SECTIONS}')
  cfg = dict(QUICK if args.quick else FULL)
  for k in ('batch', 'repeats', 'warmup', 'image_size', 'budget_mib', 'vit'):
    if getattr(args, k) is not None:
      cfg[k] = getattr(args, k)
  os.makedirs(args.out, exist_ok=True)
  _compilation_cache()
  from benchmarks import (
    bench_report,  # pylint: disable=g-import-not-at-top
    timing,  # pylint: disable=g-import-not-at-top
  )

  result = {
    'schema': 1,
    'quick': args.quick,
    'config': cfg,
    'command': 'python benchmarks/run.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
    'environment': _environment(),
    'load_start': timing.load(),
  }
  start = time.time()
  peak_gflops = None
  if {'peak', 'lit', 'precompute'} & set(sections):
    _log('peak')
    result['peak'] = section_peak(cfg)
    peak_gflops = result['peak']['jax']['gflops']
  with_oc = not args.no_open_clip and 'open_clip_missing' not in result['environment']
  if 'lit' in sections:
    result['lit'] = section_lit(cfg, peak_gflops, with_oc)
    # The peak again after the steps: MFU uses the higher of the two, so a
    # load change during the run cannot flatter it.
    again = section_peak(cfg)['jax']
    result['peak']['jax_after'] = again
    best = max(peak_gflops, again['gflops'])
    for row in result['lit'].values():
      for v in row.values():
        if isinstance(v, dict) and 'mfu' in v:
          v['mfu'] = v['model_gflops_per_s'] / best
    result['peak']['mfu_base_gflops'] = best
  if 'precompute' in sections:
    _log('precompute')
    result['precompute'] = section_precompute(
      cfg, result['peak'].get('mfu_base_gflops', peak_gflops)
    )
  for name, fn in (
    ('breakdown', section_breakdown),
    ('eval', section_eval),
    ('data', section_data),
    ('memory', section_memory),
  ):
    if name in sections:
      _log(name)
      result[name] = fn(cfg)
  result['load_end'] = timing.load()
  result['seconds'] = time.time() - start
  with open(os.path.join(args.out, 'bench.json'), 'w') as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(args.out, 'bench.md'), 'w') as f:
    f.write(bench_report.markdown(result))
  _log(f'wrote {args.out}/bench.json and bench.md in {result["seconds"]:.0f}s')
  return 0


if __name__ == '__main__':
  sys.exit(main())
