"""`mlit add-language run`: add a language to an mlit run and measure the gain, in one command.

Each step is a command of its own, printed before it runs; a step whose output exists is reused:
  extend-vocab  mlit add-language extend-vocab                             OUT/extension/
                (first: it checks the texts and the vocabulary in seconds)
  eval before   mlit eval on the base run (--checkpoint = its MODEL_DIR)   OUT/eval_before/
  eval grown    mlit eval on the grown, not yet tuned checkpoint           OUT/eval_grown/
                (old languages score exactly as before: same ids, same rows)
  gin           mlit add-language gin                                      OUT/<lang>.gin
  train         mlit train --gin_file=OUT/<lang>.gin                       OUT/train/
  eval after    mlit eval on the continued run                             OUT/eval_after/
and OUT/comparison.json: zero-shot top-1 per language before, grown and after.
"""

import json
import os
import subprocess
import sys

import numpy as np

from mlit import run_layout
from mlit.commands import malloc_settings

METRIC = ('emoji_cldr/zeroshot_classification', 'acc1')


def _step(name: str, cmd: list[str]) -> None:
  shown = ' '.join(cmd[2:] if cmd[:2] == [sys.executable, '-m'] else cmd)
  print(f'== add-language {name}: {shown}', flush=True)
  proc = subprocess.run(
    cmd, check=False, env=malloc_settings.environment({**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
  )
  if proc.returncode != 0:
    raise SystemExit(proc.returncode)


def _eval(name: str, run_dir: str, config: str, args, extra=()) -> dict:
  results = run_layout.results(run_dir)
  if not os.path.isfile(results):
    _step(
      name,
      [
        sys.executable,
        '-m',
        'eval_multilingual.run',
        f'--gin_file={config}',
        f'--gin_file={args.eval_gin}',
        f'--gin.RUN_DIR={json.dumps(run_dir)}',
        *extra,
        *[f'--gin.{b}' for b in args.eval_binding or []],
      ],
    )
  with open(results, encoding='utf-8') as f:
    return json.load(f)


def top1(results: dict) -> dict[str, float]:
  key, metric = METRIC
  return {lang: tasks[key][metric] for lang, tasks in results['languages'].items() if key in tasks}


def compare(lang: str, before: dict, grown: dict, after: dict) -> dict:
  """The new language's top-1 before/grown/after; the old ones' changes (median, worst)."""
  old = sorted(set(before) & set(after) - {lang})
  change = {k: after[k] - before[k] for k in old}
  worst = min(old, key=change.get)
  return {
    'metric': '/'.join(METRIC),
    'language': lang,
    'new_language': {'before': before.get(lang), 'grown': grown.get(lang), 'after': after[lang]},
    'old_languages': len(old),
    'old_median_before': float(np.median([before[k] for k in old])),
    'old_median_after': float(np.median([after[k] for k in old])),
    'old_median_change': float(np.median(list(change.values()))),
    'old_worst_change': {'language': worst, 'change': change[worst]},
    'old_improved': sum(v > 0 for v in change.values()),
    'old_unchanged_when_grown': sum(grown.get(k) == before[k] for k in old),
    'per_language': {
      k: {'before': before.get(k), 'grown': grown.get(k), 'after': after.get(k)}
      for k in sorted(set(before) | set(after))
    },
  }


def run(args) -> int:
  out = os.path.abspath(args.out)
  base = os.path.abspath(args.checkpoint)
  if os.path.basename(base) == run_layout.CHECKPOINTS:
    base = os.path.dirname(base)
  os.makedirs(out, exist_ok=True)
  py = [sys.executable, '-m']
  ext_dir = os.path.join(out, 'extension')
  if not os.path.isfile(os.path.join(ext_dir, 'extension.json')):
    cmd = [
      *py,
      'mlit.commands.add_language',
      'extend-vocab',
      '--vocab',
      args.vocab,
      '--checkpoint',
      base,
      '--lang',
      args.lang,
      '--num-pieces',
      str(args.num_pieces),
      '--old-sample',
      str(args.old_sample),
      '--pad-to',
      str(args.pad_to),
      '--out',
      ext_dir,
    ]
    cmd += ['--emoji-data', args.emoji_data] if args.emoji_data else ['--texts', *args.texts]
    cmd += ['--old-texts', *args.old_texts] if args.old_texts else []
    cmd += ['--allow-old-changes'] if args.allow_old_changes else []
    for flag in ('max_len', 'text_field', 'lang_field'):
      if getattr(args, flag) is not None:
        cmd += [f'--{flag.replace("_", "-")}', str(getattr(args, flag))]
    _step('extend-vocab', cmd)
  with open(os.path.join(ext_dir, 'extension.json'), encoding='utf-8') as f:
    ext = json.load(f)
  before = _eval('eval before', os.path.join(out, 'eval_before'), run_layout.config(base), args)
  grown = _eval(
    'eval grown',
    os.path.join(out, 'eval_grown'),
    run_layout.config(base),
    args,
    [
      f'--gin.MODEL_DIR={json.dumps(ext_dir)}',
      f'--gin.seqio.SentencePieceVocabulary.sentencepiece_model_file={json.dumps(ext["vocabulary"])}',
      f'--gin.text_tower.T5Config.vocab_size={ext["embedding_rows"][1]}',
    ],
  )

  gin_path = os.path.join(out, f'{args.lang}.gin')
  model_dir = os.path.join(out, 'train')
  cmd = [
    *py,
    'mlit.commands.add_language',
    'gin',
    '--lang',
    args.lang,
    '--extension',
    ext_dir,
    '--base-run',
    base,
    '--model-dir',
    model_dir,
    '--steps',
    str(args.steps),
    '--warmup',
    str(args.warmup),
    '--repeat',
    str(args.repeat),
    '--out',
    gin_path,
  ]
  cmd += ['--wit-train', args.wit_train, '--wit-images', args.wit_images] if args.wit_train else []
  _step('gin', cmd)
  _step('train', [*py, 'mlit.training.train', f'--gin_file={gin_path}'])
  after = _eval(
    'eval after',
    os.path.join(out, 'eval_after'),
    run_layout.config(model_dir),
    args,
  )

  result = compare(args.lang, top1(before), top1(grown), top1(after))
  with open(os.path.join(out, 'comparison.json'), 'w', encoding='utf-8') as f:
    json.dump(result, f, indent=1)
  new = result['new_language']
  pct = lambda v: 'n/a' if v is None else f'{100 * v:.2f}%'  # noqa: E731
  print(
    f'== {args.lang} zero-shot top-1: before {pct(new["before"])}, grown (not tuned) '
    f'{pct(new["grown"])}, after {pct(new["after"])}\n'
    f'== {result["old_languages"]} old languages: median {pct(result["old_median_before"])} -> '
    f'{pct(result["old_median_after"])} (median change '
    f'{100 * result["old_median_change"]:+.2f} points; worst '
    f'{result["old_worst_change"]["language"]} '
    f'{100 * result["old_worst_change"]["change"]:+.2f}; {result["old_improved"]} improved); '
    f'identical when grown, before tuning: {result["old_unchanged_when_grown"]} of '
    f'{result["old_languages"]}\n== {os.path.join(out, "comparison.json")}'
  )
  return 0
