r"""Evaluates one model on a gin-configured list of evaluations, in every chosen language.

  python -m eval_multilingual.run --gin_file=eval.gin --gin.RUN_DIR=\"/tmp/eval\"

(or `mlit eval ...`). The gin file binds `evaluate.run_dir`, `evaluate.encoder` (an
eval_multilingual.encoders constructor) and `evaluate.evaluations` (a list of
eval_multilingual.evaluations objects). Writes, under run_dir:
  per_task/<dataset>/<task>/<language>.json  {"metrics": {...}, "meta": {...}, "model": ...}
  results.json   {"model", "languages": {lang: {"<dataset>/<task>": metrics}},
                  "macro": {"<dataset>/<task>": mean over languages}, "meta": {lang: ...}}
  results.csv    language,dataset,task,metric,value,n_examples ('macro' rows last)
  eval_config.gin
A per-task file of the same model is reused, so an interrupted run resumes.
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'eval')  # `python -m`: the command, before the heavy imports

import csv

# gin's dynamic registration calls importlib.util without importing it.
import json
import logging
import os
import shutil
import sys
import time
from typing import Sequence

import numpy as np

import gin
from eval_multilingual import error_analysis
from mlit import job_progress, run_layout
from tasks import file_io

MACRO = 'macro'


def _write_json(path: str, obj) -> None:
  with file_io.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    json.dump(obj, f, indent=1, ensure_ascii=False, sort_keys=True)


def aggregate(per_task: dict, model: dict) -> dict:
  """{(key, lang): (metrics, meta)} -> the results.json object (CONTRACTS.md)."""
  languages, meta, values = {}, {}, {}
  for (key, lang), (metrics, m) in sorted(per_task.items()):
    if metrics:
      languages.setdefault(lang, {})[key] = metrics
    lm = meta.setdefault(lang, {'n_examples': 0})
    lm['n_examples'] += int(m.get('n_examples', 0))
    lm[key] = m
    for name, v in metrics.items():
      values.setdefault(key, {}).setdefault(name, []).append(v)
  macro = {key: {name: float(np.mean(v)) for name, v in d.items()} for key, d in values.items()}
  for key in macro:
    macro[key]['n_languages'] = len(
      {lang for (k, lang), (mt, _) in per_task.items() if k == key and mt}
    )
  return {'model': model, 'languages': languages, 'macro': macro, 'meta': meta}


def write_csv(path: str, results: dict) -> None:
  with open(path, 'w', newline='', encoding='utf-8') as f:
    w = csv.writer(f)
    w.writerow(['language', 'dataset', 'task', 'metric', 'value', 'n_examples'])
    for lang, tasks in sorted(results['languages'].items()):
      for key, metrics in sorted(tasks.items()):
        n = results['meta'][lang][key].get('n_examples', '')
        for name, v in sorted(metrics.items()):
          w.writerow([lang, *key.split('/', 1), name, f'{v:.6f}', n])
    for key, metrics in sorted(results['macro'].items()):
      for name, v in sorted(metrics.items()):
        w.writerow([MACRO, *key.split('/', 1), name, f'{v:.6f}', ''])


def copy_tuning_counts(run_dir: str) -> str | None:
  """RUN_DIR/language_stats.json (tuning examples per language, for `mlit report`) from the
  evaluated model's training run, which the trainer writes; a run dir's own file is kept."""
  dst = run_layout.language_stats(run_dir)
  if os.path.exists(dst):
    return dst
  from eval_multilingual import encoders  # pylint: disable=g-import-not-at-top

  try:  # registered by the gin files that evaluate an mlit checkpoint
    model_dir = gin.get_bindings(encoders.from_mlit_checkpoint).get('checkpoint_dir')
  except ValueError:
    return None
  for d in (model_dir, os.path.dirname(os.path.normpath(model_dir or ''))):
    src = run_layout.language_stats(d) if d else ''
    if src and os.path.exists(src):
      shutil.copyfile(src, dst)
      return dst
  return None


@gin.configurable
def evaluate(
  run_dir: str = gin.REQUIRED,
  encoder=gin.REQUIRED,
  evaluations=gin.REQUIRED,
  languages: Sequence[str] | None = None,
  resume: bool = True,
) -> dict:
  """Runs every evaluation in every language (restricted to `languages` if given)."""
  model = encoder.describe()
  jobs = []
  for ev in evaluations:
    langs = ev.languages()
    if languages is not None:
      langs = [l for l in langs if l in set(languages)]
    jobs += [(ev, lang) for lang in langs]
  logging.info('%d evaluations x languages to run', len(jobs))
  per_task, per_class = {}, {}
  progress = job_progress.Progress(len(jobs), 'evaluations')
  for ev, lang in jobs:
    dataset, task = ev.key.split('/', 1)
    path = os.path.join(run_dir, 'per_task', dataset, task, f'{lang}.json')
    if resume and os.path.exists(path):
      with open(path, encoding='utf-8') as f:
        old = json.load(f)
      if old.get('model', {}).get('fingerprint') == model['fingerprint']:
        per_task[(ev.key, lang)] = (old['metrics'], old['meta'])
        per_class[(ev.key, lang)] = old.get('per_class')
        progress.skip()
        continue
    t0 = time.time()
    metrics, meta = ev.run(encoder, lang)
    meta['seconds'] = round(time.time() - t0, 3)
    per_class[(ev.key, lang)] = meta.pop('per_class', None)  # per_class.json, not results.json
    per_task[(ev.key, lang)] = (metrics, meta)
    _write_json(
      path,
      {
        'metrics': metrics,
        'meta': meta,
        'model': model,
        'dataset': dataset,
        'task': task,
        'language': lang,
        'per_class': per_class[(ev.key, lang)],
      },
    )
    progress.advance()
    shown = ', '.join(f'{k}={v:.3f}' for k, v in list(metrics.items())[:3])
    logging.info(
      '[%d/%d, ETA %s] %s %s: %s',
      progress.done,
      len(jobs),
      # The first evaluation carries the compilation (9 s against 0.03 s on the demo): its time
      # alone would promise hours.
      progress.eta() if progress.advanced > 1 or progress.done == len(jobs) else '?',
      ev.key,
      lang,
      shown or 'no result',
    )
  if progress.skipped:  # else a run that found everything done prints nothing it did
    logging.info(
      '%d of %d evaluations reused from %s (written for this model, fingerprint %s); '
      '--gin.run.evaluate.resume=False runs them again',
      progress.skipped,
      len(jobs),
      os.path.join(run_dir, 'per_task'),
      model['fingerprint'],
    )
  results = aggregate(per_task, model)
  analysis = error_analysis.analyse(per_class)
  if analysis['tasks']:  # beside results.json: a row per class and language
    _write_json(os.path.join(run_dir, error_analysis.FILENAME), analysis)
  _write_json(run_layout.results(run_dir), results)
  copy_tuning_counts(run_dir)
  write_csv(run_layout.results_csv(run_dir), results)
  with open(run_layout.eval_config(run_dir), 'w', encoding='utf-8') as f:
    f.write(gin.config_str())
  return results


_EXAMPLE = (
  'mlit eval --gin_file=runs/demo/train/config.gin --gin_file=demo/eval_emoji.gin \\\n'
  '    --gin.RUN_DIR=\\"runs/demo\\"'
)


def main(argv=None) -> int:
  from mlit.commands import gin_flags  # pylint: disable=g-import-not-at-top

  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
  argv = list(sys.argv[1:] if argv is None else argv)
  gin_flags.parse_flags(
    argv,
    __doc__.split('\n\n', 1)[0].strip(),
    prog='mlit eval',
    example=_EXAMPLE,
  )
  results = evaluate()
  print(json.dumps(results['macro'], indent=1, ensure_ascii=False))
  return 0
