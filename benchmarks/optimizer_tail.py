"""Does the optimizer at the end of the LiT step cost wall time? Three steps, interleaved.

The global-norm clip needs every gradient before any update, so the optimizer runs after the
last matrix product (the profile section's "after the last product"). This times the LiT
table's step as it is against the same step without the clip (updates free to overlap the
backward) and with the token embedding frozen (its update, most of that tail, gone). The
last two change the training math: they bound what reordering the updates could buy, they
are not settings to train with.

  python -m benchmarks.optimizer_tail --batch 128 [--text mt5_small_32k] [--rounds 6] [--out F]
"""

import json
import statistics

from benchmarks import command_line, lit_step, model_shapes, timing
from mlit.commands import cli

VARIANTS = {
  'as_trained': {},
  'no_clip': {'grad_clip_norm': None},
  'embedding_frozen': {'freeze': [r'token_embedder']},
}


def step_fingerprints(text: str, *, batch: int, vit: str = 'S/32') -> dict:
  """Variant -> hash of its lowered step (shapes only: nothing initialised or compiled)."""
  out = {}
  for name, kw in VARIANTS.items():
    jit_step, state, specs, _ = lit_step.setup(
      text, mode='precomputed', batch=batch, vit=vit, abstract=True, optimizer=kw
    )
    out[name] = lit_step.step_hash(jit_step, state, specs)
  return out


def measure(
  text: str,
  *,
  batch: int,
  rounds: int,
  steps: int,
  warmup: int = 2,
  vit: str = 'S/32',
  variants=tuple(VARIANTS),
) -> dict:
  """Per variant: seconds per step (median and spread of `rounds` blocks of `steps` steps,
  the variants alternating block by block), its ratio to the step as trained, the load.
  vit: the image tower whose embedding width the pre-computed features have."""
  names = ['as_trained'] + [v for v in variants if v != 'as_trained']
  runs = [
    lit_step.build(text, mode='precomputed', batch=batch, vit=vit, optimizer=VARIANTS[n])[0]
    for n in names
  ]

  def block(run):
    return lambda: [run() for _ in range(steps)]

  before = timing.snapshot()
  times = timing.interleaved_times([block(r) for r in runs], warmup=warmup, repeats=rounds)
  load = timing.load_record(before, timing.snapshot())
  per_step = {name: [t / steps for t in ts] for name, ts in zip(names, times)}
  base = per_step['as_trained']
  return {
    'text': text,
    'batch': batch,
    'rounds': rounds,
    'steps_per_round': steps,
    'step_fingerprints': {name: lit_step.fingerprint(r) for name, r in zip(names, runs)},
    'variants': {
      name: {
        **timing.summary(ts),
        'speedup_vs_as_trained': statistics.median(b / t for b, t in zip(base, ts)),
      }
      for name, ts in per_step.items()
    },
    **load,
  }


def main(argv=None):
  p = command_line.Parser(
    prog='python -m benchmarks.optimizer_tail', description=__doc__.splitlines()[0]
  )
  model_shapes.add_shape_flags(p)
  p.add_argument(
    '--rounds', type=command_line.at_least(1), default=6, help='interleaved rounds (default 6)'
  )
  p.add_argument(
    '--steps',
    type=command_line.at_least(1),
    default=4,
    help='timed steps per variant per round (default 4)',
  )
  p.add_argument('--out', help='also write the JSON here (folders are created)')
  args = p.parse_args(argv)
  if args.out:
    command_line.make_out_file_dir(p, args.out)
  cli.load_tensorflow_quietly()  # the trainer's seqio: TensorFlow off the GPUs and the log
  result = json.dumps(
    measure(args.text, batch=args.batch, rounds=args.rounds, steps=args.steps), indent=1
  )
  print(result)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(result + '\n')


if __name__ == '__main__':
  main()
