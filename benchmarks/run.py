r"""mlit benchmarks: `python benchmarks/run.py [--quick] [--require-idle] --out DIR`.

Writes DIR/bench.json and DIR/bench.md. Sections: matmul peak; the LiT step
(mlit's trainer step, pre-computed embeddings and live locked ViT) against
each PyTorch peer (open_clip eager and torch.compile; plain PyTorch with the
exact T5 shape for pre-computed steps), and against itself fed by the
trainer's input pipeline; MFU with each step between two measurements of the
peak (the machine's speed drifts over minutes); where a step's time goes
(forward, backward, optimizer; and in the JAX profiler: products, other
operations, no operation running); evaluation speed; the YFCC data pipeline;
pre-computation (the locked ViT's images/s and MFU beside
the image shard reader's images/s); memory.

Every comparison is one pair timed interleaved (A, B, A, B, ... after warm-up
of both) in this process: each side's median and spread, and the range of the
per-pair speed ratios; the headline is the ratio against the fastest peer.
Each section records the load average before and after it, and the CPU other
processes used during it; a figure taken while they used more than half the
cores is flagged unreliable (bench.json
'unreliable', a marker in bench.md). --require-idle refuses to start on a
busy machine. --quick runs tiny settings (for tests; the numbers mean little).
The process runs with mlit's malloc settings (mlit/commands/malloc_settings.py),
recorded in bench.json's environment; MLIT_MALLOC=system runs both sides without.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

SECTIONS = (
  'peak',
  'lit',
  'mfu',
  'breakdown',
  'profile',
  'eval',
  'data',
  'precompute',
  'memory',
)
FULL = dict(
  texts=['local_tiny', 'mt5_small_32k'],
  batch=128,
  vit='S/32',
  image_size=224,
  warmup=1,
  repeats=3,
  peak_n=2048,
  peak_warmup_s=1.5,
  mfu_pairs=5,
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
  repeats=1,
  peak_n=256,
  peak_warmup_s=0.2,
  mfu_pairs=2,
  n_prompts=64,
  n_retrieval=300,
  n_classes=5,
  n_templates=4,
  data_rows=100,
  data_repeats=1,
  mem_text='local_tiny',
  budget_mib=64,
  max_batch=8,
  skip_torch_compile=(
    'quick mode: torch.compile builds C++ kernels for minutes on a small CPU; the full run times it'
  ),
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
    'glibc_tunables': os.environ.get('GLIBC_TUNABLES', ''),
    'devices': [str(d) for d in jax.devices()],
  }
  try:
    with open('/proc/cpuinfo') as f:
      names = [l.split(':', 1)[1].strip() for l in f if 'model name' in l]
    env['cpu'] = names[0] if names else platform.processor()
  except OSError:
    env['cpu'] = platform.processor()
  try:
    # The first import of open_clip (torchvision under it) is here; the test extra's torchvision
    # lacks its compiled image ops and says so, which no benchmark uses.
    with warnings.catch_warnings():
      warnings.filterwarnings('ignore', message='Failed to load image Python extension')
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

  kw = dict(warmup=2, repeats=max(3, cfg['repeats']), warmup_s=cfg['peak_warmup_s'])
  out = {'jax': peak.matmul_peak(cfg['peak_n'], **kw)}
  try:
    out['torch'] = peak.torch_matmul_peak(cfg['peak_n'], **kw)
  except ImportError:
    pass
  return out


# Peers of mlit's step per mode: (name, module, torch.compile?). open_clip
# cannot express an mT5 shape (heads x head_dim != width, gated MLP): plain
# PyTorch with the exact shape is the upper reference for pre-computed steps.
PEERS = {
  'precomputed': [
    ('open_clip eager', 'open_clip_step', False),
    ('open_clip torch.compile', 'open_clip_step', True),
    ('plain PyTorch eager', 'torch_text_step', False),
    ('plain PyTorch torch.compile', 'torch_text_step', True),
  ],
  'live': [
    ('open_clip eager', 'open_clip_step', False),
    ('open_clip torch.compile', 'open_clip_step', True),
  ],
}


# The input comparison's warm-up steps beyond cfg['warmup'], and its fewest timed pairs.
INPUT_EXTRA_WARMUP = 4
INPUT_MIN_REPEATS = 5
# The breakdown's fewest rounds: its step time is checked against the LiT table's, and one
# sample of a millisecond step is at the mercy of a single preemption.
BREAKDOWN_MIN_REPEATS = 3
# Steps recorded by the profiler (each one listed in bench.md).
PROFILE_STEPS = 3


def _speed(info: dict, t: dict, peak_gflops: float) -> dict:
  gflops = info['model_flops_per_step'] / t['median_s'] / 1e9
  return dict(
    time=t,
    pairs_per_s=info['batch'] / t['median_s'],
    model_gflops_per_s=gflops,
    mfu=gflops / peak_gflops,
  )


def _pooled(times: list[dict]) -> dict:
  from benchmarks import timing  # pylint: disable=g-import-not-at-top

  return timing.summary([x for t in times for x in t['times_s']])


def _mode_rows(cfg, text, mode, peak_gflops, peers) -> dict:
  """mlit's trainer step against each peer, one interleaved pair at a time."""
  import importlib  # pylint: disable=g-import-not-at-top

  from benchmarks import lit_step, timing  # pylint: disable=g-import-not-at-top

  kw = dict(batch=cfg['batch'], vit=cfg['vit'], image_size=cfg['image_size'])
  mlit, info = lit_step.build(text, mode=mode, **kw)
  out = {'mlit': info, 'comparisons': {}, 'skipped': {}}
  if mode == 'precomputed':
    # The same step fed by the trainer's input pipeline against it on a fixed batch.
    fed, fed_info = lit_step.build(text, mode=mode, feed='pipeline', **kw)
    # The pipeline's first batches fill its shuffle and prefetch buffers in background threads
    # that compete with the step (seen: the first timed fed steps 3.9 s and 7.4 s against
    # 0.02 s and 0.85 s later): warm it up past that, and time more pairs than the peers get.
    c = timing.compare(
      mlit,
      fed,
      warmup=cfg['warmup'] + INPUT_EXTRA_WARMUP,
      repeats=max(cfg['repeats'], INPUT_MIN_REPEATS),
    )
    out['input'] = dict(c, a_info=info, b_info=fed_info)
  for name, module, compiled in peers:
    if compiled and cfg.get('skip_torch_compile'):
      out['skipped'][name] = cfg['skip_torch_compile']
      continue
    build = importlib.import_module(f'benchmarks.{module}').build
    run, pinfo = (
      build(text, mode=mode, torch_compile=compiled, **kw)
      if module == ('open_clip_step')
      else build(text, torch_compile=compiled, **kw)
    )
    c = timing.compare(mlit, run, warmup=cfg['warmup'], repeats=cfg['repeats'])
    out['comparisons'][name] = dict(
      c,
      peer=pinfo,
      mlit_speed=_speed(info, c['a'], peak_gflops),
      peer_speed=_speed(pinfo, c['b'], peak_gflops),
    )
    _log(
      f'lit {text} {mode}: mlit / {name} = {c["speed_ratio"]["median"]:.2f}x '
      f'[{c["speed_ratio"]["min"]:.2f}-{c["speed_ratio"]["max"]:.2f}]'
      + (' (UNRELIABLE: busy)' if c['unreliable'] else '')
    )
    del run
  times = [c['a'] for c in out['comparisons'].values()]
  if 'input' in out:
    times.append(out['input']['a'])
  if not times:  # no peer (--no-open-clip, or open_clip not installed) and no input comparison
    times.append(timing.seconds(mlit, warmup=cfg['warmup'], repeats=cfg['repeats']))
  out['mlit_speed'] = _speed(info, _pooled(times), peak_gflops)
  if out['comparisons']:
    best = max(out['comparisons'], key=lambda n: out['comparisons'][n]['peer_speed']['pairs_per_s'])
    c = out['comparisons'][best]
    out['best_peer'] = best
    out['headline'] = {k: c['speed_ratio'][k] for k in ('median', 'min', 'max')}
    out['unreliable'] = any(c['unreliable'] for c in out['comparisons'].values())
  out['step_fingerprint'] = lit_step.fingerprint(mlit)
  return out


def section_lit(cfg, peak_gflops: float, with_peers: bool) -> dict:
  """Per text shape and mode: mlit's trainer step against each peer, interleaved pairs."""
  if with_peers:
    from benchmarks import open_clip_step  # pylint: disable=g-import-not-at-top

    open_clip_step.torch_threads(os.cpu_count() or 1)
  rows = {}
  for text in cfg['texts']:
    rows[text] = {
      mode: _mode_rows(cfg, text, mode, peak_gflops, PEERS[mode] if with_peers else [])
      for mode in ('precomputed', 'live')
    }
  return rows


def section_mfu(cfg) -> dict:
  """Per text shape and mode: the LiT table's step alternating with the matmul peak."""
  from benchmarks import paired_mfu  # pylint: disable=g-import-not-at-top

  rows = {}
  for text in cfg['texts']:
    rows[text] = {}
    for mode in ('precomputed', 'live'):
      r = paired_mfu.paired(
        text,
        mode=mode,
        batch=cfg['batch'],
        vit=cfg['vit'],
        image_size=cfg['image_size'],
        pairs=cfg['mfu_pairs'],
        warmup=cfg['warmup'],
        peak_n=cfg['peak_n'],
        peak_warmup_s=cfg['peak_warmup_s'],
      )
      rows[text][mode] = r
      m = r['mfu']
      _log(f'mfu {text} {mode}: {m["median"]:.0%} [{m["min"]:.0%}-{m["max"]:.0%}]')
  return rows


def section_breakdown(cfg) -> dict:
  from benchmarks import breakdown  # pylint: disable=g-import-not-at-top

  text = cfg['texts'][-1]
  return breakdown.breakdown(
    text,
    batch=cfg['batch'],
    vit=cfg['vit'],
    warmup=cfg['warmup'],
    repeats=max(cfg['repeats'], BREAKDOWN_MIN_REPEATS),
  )


def section_profile(cfg, out_dir: str) -> dict:
  from benchmarks import step_profile, timing  # pylint: disable=g-import-not-at-top

  before = timing.snapshot()
  out = step_profile.profile(
    cfg['texts'][-1],
    batch=cfg['batch'],
    vit=cfg['vit'],
    out_dir=os.path.join(out_dir, 'profile'),
    warmup=cfg['warmup'] + 1,
    steps=PROFILE_STEPS,
  )
  return dict(out, **timing.load_record(before, timing.snapshot()))


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


def _rebase_mfu(tree, peak_gflops: float) -> None:
  """Every MFU under tree against the final MFU base."""
  if isinstance(tree, dict):
    if 'mfu' in tree and 'model_gflops_per_s' in tree:
      tree['mfu'] = tree['model_gflops_per_s'] / peak_gflops
    for v in tree.values():
      _rebase_mfu(v, peak_gflops)


def _vit_mismatch(variant: str, image_size: int | None) -> str | None:
  """Why this ViT variant is unknown or cannot take images of this size (None: any), or None."""
  from benchmarks import model_shapes  # pylint: disable=g-import-not-at-top

  try:
    patch = model_shapes.vit_kwargs(variant).get('patch_size')
  except ValueError as e:
    return str(e)
  if not patch:
    return "no patch size; give one, e.g. 'S/32'"
  if image_size and image_size % patch[0]:
    return f'--image-size {image_size} is not a multiple of its patch size {patch[0]}'
  return None


def main(argv=None) -> int:
  from benchmarks import command_line  # pylint: disable=g-import-not-at-top

  p = command_line.Parser(prog='benchmarks/run.py', description=__doc__.splitlines()[0])
  p.add_argument('--out', required=True, help='output directory (created with its parents)')
  p.add_argument(
    '--quick',
    action='store_true',
    help='tiny shapes, one repeat: checks the set-up in about a minute (the numbers mean little)',
  )
  p.add_argument(
    '--sections', default=','.join(SECTIONS), help=f'comma-separated subset of {",".join(SECTIONS)}'
  )
  p.add_argument('--no-open-clip', action='store_true', help='no PyTorch peers')
  p.add_argument(
    '--no-torch-compile', action='store_true', help='no torch.compile peers (recorded as skipped)'
  )
  p.add_argument(
    '--require-idle',
    action='store_true',
    help='refuse to run (exit 2) while the 1-minute load exceeds half the cores',
  )
  overrides = {
    'batch': (1, 'examples per step of every timed step (default 128; quick 8)'),
    'repeats': (1, 'timed repeats per figure (default 3; quick 1)'),
    'warmup': (0, 'untimed calls before timing (default 1)'),
    'image_size': (
      1,
      'image side in pixels of the live rows and of pre-computation (default 224; quick 32)',
    ),
    'budget_mib': (
      1,
      'memory section: the largest batch whose step fits in this many MiB (default 2048)',
    ),
  }
  for k, (low, what) in overrides.items():
    p.add_argument(
      '--' + k.replace('_', '-'), type=command_line.at_least(low), default=None, help=what
    )
  p.add_argument(
    '--vit', default=None, help="ViT of the LiT steps, e.g. 'S/32' (default S/32; quick toy/8)"
  )
  args = p.parse_args(argv)
  sections = [s for s in args.sections.split(',') if s]
  bad = [s for s in sections if s not in SECTIONS]
  if bad:
    p.error(f'--sections: unknown {", ".join(bad)}; known: {", ".join(SECTIONS)}')
  if not sections:
    p.error(f'--sections: none given; known: {", ".join(SECTIONS)}')
  cfg = dict(QUICK if args.quick else FULL)
  for k in ('batch', 'repeats', 'warmup', 'image_size', 'budget_mib', 'vit'):
    if getattr(args, k) is not None:
      cfg[k] = getattr(args, k)
  live = {'lit', 'mfu', 'memory'} & set(sections)
  towers = []
  if live or {'breakdown', 'profile'} & set(sections):  # pre-computed: the ViT's width only
    towers.append(('--vit' if args.vit else 'the ViT', cfg['vit'], bool(live)))
  if 'precompute' in sections:
    towers.append(('the pre-computation ViT', cfg['precompute_vit'], True))
  for what, variant, sized in towers:
    why = _vit_mismatch(variant, cfg['image_size'] if sized else None)
    if why:
      p.error(f'{what} {variant}: {why}')
  from benchmarks import timing  # pylint: disable=g-import-not-at-top

  if args.require_idle and timing.is_busy(timing.load()):
    print(
      f'benchmarks/run.py: --require-idle: load average {timing.load()} exceeds half the '
      f'{os.cpu_count()} cores ({timing.busy_limit():g}); not running',
      file=sys.stderr,
    )
    return 2
  if args.no_torch_compile:
    cfg['skip_torch_compile'] = 'skipped on request (--no-torch-compile)'
  command_line.make_out_dir(p, args.out)
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  cli.load_tensorflow_quietly()  # the input pipeline's TensorFlow: off the GPUs and the log
  _compilation_cache()
  from benchmarks import bench_report  # pylint: disable=g-import-not-at-top

  result = {
    'schema': 2,
    'quick': args.quick,
    'config': cfg,
    'command': 'python benchmarks/run.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
    'environment': _environment(),
    'load_start': timing.load(),
    'busy_limit': timing.busy_limit(),
    'loads': {},
  }

  def timed(name, fn, *a):
    _log(name)
    before = timing.snapshot()
    out = fn(*a)
    result['loads'][name] = timing.load_record(before, timing.snapshot())
    return out

  start = time.time()
  peak_gflops = None
  if {'peak', 'lit', 'precompute'} & set(sections):
    result['peak'] = timed('peak', section_peak, cfg)
    peak_gflops = result['peak']['jax']['gflops']
  with_peers = not args.no_open_clip and 'open_clip_missing' not in result['environment']
  if 'lit' in sections:
    result['lit'] = timed('lit', section_lit, cfg, peak_gflops, with_peers)
    # The peak again after the steps: MFU uses the higher of the two, so a
    # load change during the run cannot flatter it.
    again = timed('peak_after', section_peak, cfg)['jax']
    result['peak']['jax_after'] = again
    best = max(peak_gflops, again['gflops'])
    _rebase_mfu(result['lit'], best)
    result['peak']['mfu_base_gflops'] = best
  if 'precompute' in sections:
    result['precompute'] = timed(
      'precompute', section_precompute, cfg, result['peak'].get('mfu_base_gflops', peak_gflops)
    )
  for name, fn, *extra in (
    ('mfu', section_mfu),
    ('breakdown', section_breakdown),
    ('profile', section_profile, args.out),
    ('eval', section_eval),
    ('data', section_data),
    ('memory', section_memory),
  ):
    if name in sections:
      result[name] = timed(name, fn, cfg, *extra)
  result['unreliable'] = any(r['unreliable'] for r in result['loads'].values())
  result['load_end'] = timing.load()
  result['seconds'] = time.time() - start
  with open(os.path.join(args.out, 'bench.json'), 'w') as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(args.out, 'bench.md'), 'w') as f:
    f.write(bench_report.markdown(result))
  _log(f'wrote {args.out}/bench.json and bench.md in {result["seconds"]:.0f}s')
  return 0


if __name__ == '__main__':
  from mlit.commands import malloc_settings  # pylint: disable=g-import-not-at-top

  # mlit's commands run with these malloc settings; every side of every pair here does too
  # (MLIT_MALLOC=system: the system's defaults for both).
  malloc_settings.reexec_with_settings()
  sys.exit(main())
