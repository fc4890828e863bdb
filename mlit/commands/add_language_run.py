"""`mlit add-language run`: add a language to an mlit run and measure the gain, in one command.

Each step is a command of its own, printed before it runs. OUT/steps.json records the arguments
each step ran with: a re-run into the same OUT reuses (and names) a step whose output exists and
whose arguments are the same, re-evaluates when the checkpoint an evaluation read has changed, and
refuses, naming what differs, when the extension's or the tuning's arguments differ (everything
after them depends on them):
  extend-vocab  mlit add-language extend-vocab                             OUT/extension/
                (first: it checks the texts and the vocabulary in seconds)
  eval before   mlit eval on the base run (--checkpoint = its MODEL_DIR)   OUT/eval_before/
  eval grown    mlit eval on the grown, not yet tuned checkpoint           OUT/eval_grown/
                (old languages score exactly as before: same ids, same rows)
  gin           mlit add-language gin                                      OUT/<lang>.gin
  train         mlit train --gin_file=OUT/<lang>.gin                       OUT/train/
  eval after    mlit eval on the continued run                             OUT/eval_after/
and OUT/comparison.json: per language before, grown and after, the evaluation's main score (as
`mlit report` leads with it: zero-shot top-1 where there is one, else text->image recall@1).
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np

from mlit import run_layout
from mlit.commands import child_process, gin_flags
from tasks.user_error import UserError

STEPS_RECORD = 'steps.json'


def _step(name: str, cmd: list[str]) -> None:
  shown = ' '.join(cmd[2:] if cmd[:2] == [sys.executable, '-m'] else cmd)
  print(f'== add-language {name}: {shown}', flush=True)
  proc = subprocess.run(cmd, check=False, env=child_process.environment())
  if proc.returncode != 0:
    raise SystemExit(proc.returncode)


class _Record:
  """OUT/steps.json: {step: the arguments it ran with}, written as each step finishes."""

  def __init__(self, out: str):
    self.path = os.path.join(out, STEPS_RECORD)
    self.steps = {}
    if os.path.isfile(self.path):
      with open(self.path, encoding='utf-8') as f:
        self.steps = json.load(f)
    self.reused: list[str] = []

  def done(self, step: str, inputs: dict) -> None:
    self.steps[step] = inputs
    with open(self.path, 'w', encoding='utf-8') as f:
      json.dump(self.steps, f, indent=1)


def _latest_step(model_dir: str) -> int | None:
  d = run_layout.checkpoints(model_dir)
  steps = [int(s) for s in os.listdir(d) if s.isdigit()] if os.path.isdir(d) else []
  return max(steps) if steps else None


def _evaluated_step(results: dict) -> int | None:
  """The checkpoint step an evaluation read ('mlit:MODEL_DIR@<step>+...' in results.json)."""
  m = re.search(r'@(\d+)', str(results.get('model', {}).get('name', '')))
  return int(m.group(1)) if m else None


def _differences(recorded: dict, now: dict) -> str:
  keys = sorted(set(recorded) | set(now))
  return '; '.join(
    f'{k} {recorded.get(k)!r} then, {now.get(k)!r} now'
    for k in keys
    if recorded.get(k) != now.get(k)
  )


def stale_evaluation(results: dict, recorded: dict | None, inputs: dict) -> str | None:
  """Why earlier results cannot stand for an evaluation with `inputs`, or None when they can."""
  if recorded is None:
    return f'no record of the arguments it ran with in {STEPS_RECORD}'
  evaluated = _evaluated_step(results)
  if evaluated != inputs['checkpoint_step']:
    return (
      f'it evaluated step {evaluated}, the checkpoint is now at step {inputs["checkpoint_step"]}'
    )
  return _differences(recorded, inputs) or None


def _eval(name, run_dir, config, args, record, model_dir, extra=()) -> dict:
  """Evaluates `model_dir`'s latest step into run_dir, or reuses results of the same inputs."""
  step = _latest_step(model_dir)
  inputs = {
    'eval_gin': args.eval_gin,
    'eval_binding': list(args.eval_binding or []),
    'checkpoint_step': step,
  }
  results = run_layout.results(run_dir)
  if os.path.isfile(results):
    with open(results, encoding='utf-8') as f:
      old = json.load(f)
    why = stale_evaluation(old, record.steps.get(name), inputs)
    if why is None:
      record.reused.append(f'{name} (step {step})')
      return old
    print(f'== add-language {name}: evaluating again ({why})', flush=True)
    shutil.rmtree(run_dir)  # this command's own output: results of the old inputs
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
  record.done(name, inputs)
  with open(results, encoding='utf-8') as f:
    return json.load(f)


def main_score(run_dir: str):
  """The score the comparison reads: the evaluation's main column, as `mlit report` leads with it
  (top-1 accuracy where there is one, else text->image recall@1)."""
  from eval_multilingual import report_data  # pylint: disable=g-import-not-at-top

  run = report_data.load_run(run_dir)
  col = report_data.main_column(run, report_data.score_columns(run))
  if col is None:
    raise UserError(
      f'{run_dir}: the evaluation of --eval-gin scored no top-1 accuracy or recall@k to compare'
    )
  return col


def scores(results: dict, col) -> dict[str, float]:
  """{language: the column's score} of an evaluation's results.json."""
  return {
    lang: tasks[col.task][col.metric]
    for lang, tasks in results['languages'].items()
    if col.metric in tasks.get(col.task, {})
  }


def compare(lang: str, before: dict, grown: dict, after: dict, metric: str) -> dict:
  """The new language's score before/grown/after; the old ones' changes (median, worst)."""
  old = sorted(set(before) & set(after) - {lang})
  change = {k: after[k] - before[k] for k in old}
  worst = min(old, key=change.get) if old else None
  median = lambda values: float(np.median(values)) if values else None  # noqa: E731
  return {
    'metric': metric,
    'language': lang,
    'new_language': {
      'before': before.get(lang),
      'grown': grown.get(lang),
      'after': after.get(lang),
    },
    'old_languages': len(old),
    'old_median_before': median([before[k] for k in old]),
    'old_median_after': median([after[k] for k in old]),
    'old_median_change': median(list(change.values())),
    'old_worst_change': {'language': worst, 'change': change[worst]} if old else None,
    'old_improved': sum(v > 0 for v in change.values()),
    'old_unchanged_when_grown': sum(grown.get(k) == before[k] for k in old),
    'per_language': {
      k: {'before': before.get(k), 'grown': grown.get(k), 'after': after.get(k)}
      for k in sorted(set(before) | set(after))
    },
  }


def summary_lines(result: dict, what: str) -> list[str]:
  """The lines `run` ends with: the new language's score, then the old languages'."""
  pct = lambda v: 'n/a' if v is None else f'{100 * v:.2f}%'  # noqa: E731
  new, lang, n_old = result['new_language'], result['language'], result['old_languages']
  lines = [
    f'== {lang} {what}: before {pct(new["before"])}, grown (not tuned) {pct(new["grown"])}, '
    f'after {pct(new["after"])}'
  ]
  if not n_old:
    lines.append(
      f'== no other language was scored before and after (the evaluation has only {lang})'
    )
    return lines
  worst = result['old_worst_change']
  lines.append(
    f'== {n_old} old language{"s" if n_old > 1 else ""}: median {pct(result["old_median_before"])} -> '
    f'{pct(result["old_median_after"])} (median change '
    f'{100 * result["old_median_change"]:+.2f} points; worst {worst["language"]} '
    f'{100 * worst["change"]:+.2f}; {result["old_improved"]} improved); '
    f'identical when grown, before tuning: {result["old_unchanged_when_grown"]} of {n_old}'
  )
  return lines


def _gin_exists(path: str) -> bool:
  """As the evaluation finds --gin_file: as given, or under the default gin search paths."""
  return os.path.isfile(path) or any(
    os.path.isfile(os.path.join(d, path)) for d in gin_flags.default_search_paths()
  )


def check_inputs(args) -> None:
  """Every input of every step, before the first one runs (a typo must not cost the others)."""
  if not _gin_exists(args.eval_gin):
    raise UserError(f'--eval-gin {args.eval_gin}: no such gin file')
  for flag in ('texts', 'old_texts'):
    for path in getattr(args, flag) or []:
      if not os.path.exists(path):
        raise UserError(f'--{flag.replace("_", "-")} {path}: no such file')
  if args.wit_train and not args.wit_images:
    raise UserError('--wit-train needs --wit-images (the directory of the WIT images)')
  if args.wit_images and not os.path.isdir(args.wit_images):
    raise UserError(f'--wit-images {args.wit_images}: no such directory')


def _abs(paths):
  return [os.path.abspath(p) for p in paths] if paths else None


def _extension_inputs(args, base: str) -> dict:
  return {
    'vocab': os.path.abspath(args.vocab),
    'checkpoint': base,
    'checkpoint_step': _latest_step(base),
    'lang': args.lang,
    'num_pieces': args.num_pieces,
    'old_sample': args.old_sample,
    'pad_to': args.pad_to,
    'emoji_data': os.path.abspath(args.emoji_data) if args.emoji_data else None,
    'texts': _abs(args.texts),
    'old_texts': _abs(args.old_texts),
    'allow_old_changes': bool(args.allow_old_changes),
    'max_len': args.max_len,
    'text_field': args.text_field,
    'lang_field': args.lang_field,
  }


def _refuse_if_changed(out: str, step: str, recorded: dict | None, inputs: dict, ignore=()):
  if recorded is None:
    raise UserError(
      f'--out {out}: its {step} has no record of the arguments it ran with ({STEPS_RECORD}; an '
      'older mlit, or an interrupted run): choose another --out, or remove that one'
    )
  diff = _differences(
    {k: v for k, v in recorded.items() if k not in ignore},
    {k: v for k, v in inputs.items() if k not in ignore},
  )
  if diff:
    raise UserError(
      f'--out {out}: its {step} ran with other arguments ({diff}) and every later step depends on '
      'it: choose another --out, or remove that one'
    )


def _check_tuning_data(base: str, args) -> None:
  """What the gin step would refuse (a language the base run's emoji/CLDR data lacks; WIT rows
  without the language, or a base run on pre-computed embeddings of an unknown tower), before the
  first step: the gin step refused it after the extension and two evaluations."""
  from mlit.commands import add_language  # pylint: disable=g-import-not-at-top
  from mlit.language import gin_file  # pylint: disable=g-import-not-at-top

  path = run_layout.config(base)
  if not os.path.isfile(path):
    return  # extend-vocab names what the base run lacks
  with open(path, encoding='utf-8') as f:
    config = f.read()
  try:
    if args.wit_train:
      wit = {'train': args.wit_train, 'images': args.wit_images}
      gin_file.embeddings_tower_lines(config, base)
      gin_file.wit_plan(config, args.lang, wit, args.repeat, add_language.tuned_languages(base))
    else:
      gin_file.check_emoji_source(config, args.lang)
  except gin_file.GinFileError as e:
    raise UserError(str(e)) from e


def run(args) -> int:
  check_inputs(args)
  out = os.path.abspath(args.out)
  base = run_layout.model_dir_of(args.checkpoint)
  _check_tuning_data(base, args)
  created = not os.path.exists(out)
  os.makedirs(out, exist_ok=True)
  try:
    return _run(args, out, base)
  finally:  # a failed step leaves no empty directories behind (OUT included when it made it)
    from mlit.commands import add_language  # pylint: disable=g-import-not-at-top

    for d in (os.path.join(out, 'extension'), os.path.join(out, 'eval_before')):
      add_language.remove_empty_dirs(d)
    if created:
      add_language.remove_empty_dirs(out)


def _run(args, out: str, base: str) -> int:
  py = [sys.executable, '-m']
  record = _Record(out)
  ext_dir = os.path.join(out, 'extension')
  ext_inputs = _extension_inputs(args, base)
  if os.path.isfile(os.path.join(ext_dir, 'extension.json')):
    _refuse_if_changed(out, 'extension', record.steps.get('extension'), ext_inputs)
    record.reused.append('extension')
  else:
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
    record.done('extension', ext_inputs)
  with open(os.path.join(ext_dir, 'extension.json'), encoding='utf-8') as f:
    ext = json.load(f)
  before = _eval(
    'eval before', os.path.join(out, 'eval_before'), run_layout.config(base), args, record, base
  )
  col = main_score(os.path.join(out, 'eval_before'))
  scored = scores(before, col)
  if args.lang not in scored:  # before the tuning, not after it
    raise UserError(
      f'--eval-gin {args.eval_gin}: its evaluation scored no {args.lang} ({col.label} of '
      f'{len(scored)} languages: {", ".join(sorted(scored)[:8])}): give one with held-out '
      f'{args.lang} data (e.g. eval/captions.gin or eval/wit.gin on its image-text pairs)'
    )
  grown = _eval(
    'eval grown',
    os.path.join(out, 'eval_grown'),
    run_layout.config(base),
    args,
    record,
    ext_dir,
    [
      f'--gin.MODEL_DIR={json.dumps(ext_dir)}',
      f'--gin.seqio.SentencePieceVocabulary.sentencepiece_model_file={json.dumps(ext["vocabulary"])}',
      f'--gin.text_tower.T5Config.vocab_size={ext["embedding_rows"][1]}',
    ],
  )

  gin_path = os.path.join(out, f'{args.lang}.gin')
  model_dir = os.path.join(out, 'train')
  train_inputs = {
    'steps': args.steps,
    'warmup': args.warmup,
    'repeat': args.repeat,
    'wit_train': args.wit_train,
    'wit_images': args.wit_images,
  }
  trained = _latest_step(model_dir)
  if trained is not None:
    # More --steps resume the run (as mlit train does); other settings would change the data
    # or the warmup under steps already taken.
    _refuse_if_changed(out, 'train', record.steps.get('train'), train_inputs, ignore=('steps',))
    if args.steps < trained:
      raise UserError(
        f'--steps {args.steps}: {model_dir} is already trained to step {trained}: give --steps '
        f'{trained} or more, or another --out'
      )
  if trained is not None and trained == args.steps:
    record.reused.append(f'train (step {trained})')
  else:
    if trained is not None:
      print(
        f'== add-language train: continuing {model_dir} from step {trained} to {args.steps} '
        f'(steps after {trained} follow the learning-rate schedule of --steps {args.steps})',
        flush=True,
      )
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
    cmd += (
      ['--wit-train', args.wit_train, '--wit-images', args.wit_images] if args.wit_train else []
    )
    _step('gin', cmd)
    # Recorded before it runs: an interrupted tuning resumes on a re-run with the same settings.
    record.done('train', train_inputs)
    _step('train', [*py, 'mlit.training.train', f'--gin_file={gin_path}'])
  after = _eval(
    'eval after',
    os.path.join(out, 'eval_after'),
    run_layout.config(model_dir),
    args,
    record,
    model_dir,
  )
  if record.reused:
    print(
      f'== add-language reused from an earlier run into {out} (same arguments, same checkpoint '
      f'steps; {STEPS_RECORD}): {", ".join(record.reused)}',
      flush=True,
    )

  result = compare(
    args.lang,
    scores(before, col),
    scores(grown, col),
    scores(after, col),
    f'{col.task}/{col.metric}',
  )
  with open(os.path.join(out, 'comparison.json'), 'w', encoding='utf-8') as f:
    json.dump(result, f, indent=1)
  what = 'zero-shot top-1' if col.metric == 'acc1' else col.label
  print('\n'.join([*summary_lines(result, what), f'== {os.path.join(out, "comparison.json")}']))
  return 0
