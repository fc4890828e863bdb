"""`mlit demo --compare`: the paper's comparisons on the demo's data, and the seed spread.

Each variant is the demo pipeline with one change, run in RUN_DIR/compare/<variant>; it links
the stages it shares with the base run (RUN_DIR, which `mlit demo` builds first) instead of
rebuilding them:
  seed1, seed2    the default run with another seed (data order, initialisation): the spread
  english_only    tuning on English texts only (paper Section 5.9; gin/demo/lit_emoji_english_only.gin)
  english_vocab   a SentencePiece vocabulary trained on English only (other scripts fall to bytes)
  emoji_vit       the locked tower replaced by the tiny ViT pre-trained here on the emoji
                  themselves (gin/demo/lit_emoji_vit.gin): pre-trained ImageNet tower vs a
                  from-scratch one
Results: RUN_DIR/compare/summary.json and summary.md (English and median-language top-1, seeds'
mean and range), and one comparison report, RUN_DIR/compare/report/index.html.
"""

import json
import os
import statistics
import subprocess
import sys

from eval_multilingual import report_data
from mlit import run_layout
from mlit.commands import child_process

# name -> (what changes, extra `mlit demo` flags, stages run, files linked from the base run)
_SHARED = ['data', 'spm.model', 'spm.vocab', 'spm.json', 'image_tower.npz', 'image_tower.json']
_SHARED += ['image_embeddings.npz', 'image_embeddings.json']
_SHARED += ['tokenizer_stats.json', 'coverage']
_TRAIN_EVAL = 'train,eval,report'
VARIANTS = {
  'seed1': ('seed 1', ['--gin_bindings=train.train.seed=1'], _TRAIN_EVAL, _SHARED),
  'seed2': ('seed 2', ['--gin_bindings=train.train.seed=2'], _TRAIN_EVAL, _SHARED),
  'english_only': (
    'tuned on English texts only',
    ['--gin_file=demo/lit_emoji_english_only.gin'],
    _TRAIN_EVAL,
    _SHARED,
  ),
  'duplicates_left_out': (
    'pairs of one image or one text left out of the loss',
    ['--gin_bindings=train.train.duplicates_as_negatives=False'],
    _TRAIN_EVAL,
    _SHARED,
  ),
  'english_vocab': (
    'English-only vocabulary',
    ['--vocab_languages=en'],
    'vocab,train,coverage,eval,report',
    [f for f in _SHARED if not f.startswith(('spm', 'coverage', 'tokenizer'))],
  ),
  'emoji_vit': (
    'locked tiny ViT pre-trained on the emoji (from scratch)',
    ['--image_tower=emoji_vit'],
    ','.join(('data', 'vocab', 'image', 'embed', 'train', 'coverage', 'eval', 'report')),
    [],
  ),
}
SEED_RUNS = ('base', 'seed1', 'seed2')
TASK = 'emoji_cldr/zeroshot_classification'


def variant_dir(run_dir: str, name: str) -> str:
  return os.path.join(run_dir, 'compare', name)


def _link_shared(run_dir: str, out: str, names: list[str]) -> None:
  os.makedirs(out, exist_ok=True)
  for name in names:
    src, dst = os.path.join(run_dir, name), os.path.join(out, name)
    if os.path.exists(src) and not os.path.lexists(dst):
      os.symlink(os.path.relpath(src, out), dst)


def run_variant(run_dir: str, name: str, demo_args: list[str]) -> int:
  """Runs one variant through `mlit demo` (reusing what it has built); returns the exit code."""
  _, flags, stages, shared = VARIANTS[name]
  out = variant_dir(run_dir, name)
  _link_shared(run_dir, out, shared)
  cmd = [sys.executable, '-m', 'mlit.commands.demo', '--run_dir', out, '--stages', stages]
  print(f'== mlit demo --compare: {name}', flush=True)
  return subprocess.run(
    cmd + demo_args + flags, check=False, env=child_process.environment()
  ).returncode


def headline(run_dir: str) -> dict:
  """English and median/mean-language top-1 of the held-out zero-shot task, English's interval."""
  with open(run_layout.results(run_dir), encoding='utf-8') as f:
    results = json.load(f)
  scores = {
    lang: tasks[TASK]['acc1'] for lang, tasks in results['languages'].items() if TASK in tasks
  }
  english = scores.get('en')
  n_en = results.get('meta', {}).get('en', {}).get(TASK, {}).get('n_examples')
  return {
    'english_top1': english,
    'english_95ci': report_data.wilson(english, n_en) if english is not None and n_en else None,
    'median_language_top1': statistics.median(scores.values()) if scores else None,
    'mean_language_top1': statistics.fmean(scores.values()) if scores else None,
    'n_languages': len(scores),
  }


def _pct(v) -> str:
  return '' if v is None else f'{100 * v:.1f}%'


def summarize(run_dir: str, names: list[str]) -> dict:
  rows = {'base': {'what': 'the default (seed 0)', **headline(run_dir)}}
  for name in names:
    path = variant_dir(run_dir, name)
    if os.path.exists(run_layout.results(path)):
      rows[name] = {'what': VARIANTS[name][0], **headline(path)}
  summary = {'task': TASK, 'runs': rows}
  seeds = [rows[s] for s in SEED_RUNS if s in rows]
  if len(seeds) > 1:
    summary['seeds'] = {
      key: {
        'mean': statistics.fmean(r[key] for r in seeds),
        'min': min(r[key] for r in seeds),
        'max': max(r[key] for r in seeds),
        'n': len(seeds),
      }
      for key in ('english_top1', 'median_language_top1')
    }
  return summary


def summary_markdown(summary: dict) -> str:
  lines = [
    f'Held-out zero-shot top-1 ({summary["task"]}); English with its Wilson 95% interval.',
    '',
    '| run | what | English | English 95% CI | median language | mean language |',
    '|---|---|---|---|---|---|',
  ]
  for name, r in summary['runs'].items():
    ci = r['english_95ci']
    ci_text = f'{_pct(ci[0])}-{_pct(ci[1])}' if ci else ''
    lines.append(
      f'| {name} | {r["what"]} | {_pct(r["english_top1"])} | {ci_text} | '
      f'{_pct(r["median_language_top1"])} | {_pct(r["mean_language_top1"])} |'
    )
  if 'seeds' in summary:
    s = summary['seeds']
    lines += [
      '',
      f'Seeds ({s["english_top1"]["n"]} runs): English mean {_pct(s["english_top1"]["mean"])} '
      f'(range {_pct(s["english_top1"]["min"])}-{_pct(s["english_top1"]["max"])}), median '
      f'language mean {_pct(s["median_language_top1"]["mean"])} (range '
      f'{_pct(s["median_language_top1"]["min"])}-{_pct(s["median_language_top1"]["max"])}).',
    ]
  return '\n'.join(lines) + '\n'


def compare(run_dir: str, names: list[str], demo_args: list[str]) -> int:
  """Runs the variants after the base run, then the summary and the comparison report."""
  base = run_layout.results(run_dir)
  if not os.path.exists(base):
    print(f'mlit demo --compare: {base} missing: run the eval stage first', file=sys.stderr)
    return 2
  for name in names:
    code = run_variant(run_dir, name, demo_args)
    if code:
      print(f'mlit demo --compare: variant {name!r} failed (exit {code})', file=sys.stderr)
      return code
  out = os.path.join(run_dir, 'compare')
  summary = summarize(run_dir, names)
  with open(os.path.join(out, 'summary.json'), 'w', encoding='utf-8') as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(out, 'summary.md'), 'w', encoding='utf-8') as f:
    f.write(summary_markdown(summary))
  print(summary_markdown(summary), end='')
  report = [sys.executable, '-m', 'eval_multilingual.report', run_dir, '--out']
  report += [os.path.join(out, 'report'), '--compare']
  report += [variant_dir(run_dir, n) for n in names]
  return subprocess.run(report, check=False, env=child_process.environment()).returncode
