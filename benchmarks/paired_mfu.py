"""MFU with each LiT step between two measurements of the peak.

The machine's matmul speed drifts over minutes (a 2-core VM read 195 GFLOP/s at the start of
a run and 364 five minutes later), so an MFU against a peak taken once, minutes away from the
step, moves with that drift. Here the two alternate: the jitted 2048^2 matmul peak (warmed up
for peak.WARMUP_S, the median of >= peak.MIN_REPEATS products), the LiT table's step
(lit_step.build, the trainer's own jitted step) timed a few times, the peak again, and so on.
Each step gives one MFU: its model FLOP/s over the higher of the peaks right before and right
after it, so one peak read low (a moment the machine slowed) cannot flatter a step, as run.py's
MFU base is the higher of its two peaks. The summary is their median [min-max]."""

import statistics

from benchmarks import lit_step, peak, timing


def paired(
  text: str,
  *,
  mode: str,
  batch: int,
  vit: str,
  image_size: int,
  pairs: int,
  steps_per_pair: int = 3,
  warmup: int = 1,
  peak_n: int = 2048,
  peak_warmup_s: float = peak.WARMUP_S,
) -> dict:
  run, info = lit_step.build(text, mode=mode, batch=batch, vit=vit, image_size=image_size)
  matmul = peak.matmul(peak_n)
  start = timing.snapshot()
  for _ in range(warmup):
    run()
  peak_next = peak.timed(matmul, warmup_s=peak_warmup_s)['gflops']
  rows = []
  for _ in range(pairs):
    step = timing.seconds(run, warmup=0, repeats=steps_per_pair)
    peak_prev, peak_next = peak_next, peak.timed(matmul, warmup_s=peak_warmup_s)['gflops']
    base = max(peak_prev, peak_next)
    gflops = info['model_flops_per_step'] / step['median_s'] / 1e9
    rows.append(
      {
        'peak_before_gflops': peak_prev,
        'peak_after_gflops': peak_next,
        'peak_gflops': base,
        'step': step,
        'model_gflops_per_s': gflops,
        'mfu': gflops / base,
      }
    )
  return {
    'step_info': info,
    'step_fingerprint': lit_step.fingerprint(run),
    'pairs': rows,
    'mfu': _spread([r['mfu'] for r in rows]),
    'peak_gflops': _spread([r['peak_gflops'] for r in rows]),
    'step_s': _spread([r['step']['median_s'] for r in rows]),
    **timing.load_record(start, timing.snapshot()),
  }


def _spread(values: list) -> dict:
  return {'median': statistics.median(values), 'min': min(values), 'max': max(values)}
