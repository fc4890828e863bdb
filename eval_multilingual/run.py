r"""Evaluates one model on a gin-configured list of evaluations, in every chosen language.

  python -m eval_multilingual.run --gin_file=eval.gin --gin.RUN_DIR=\"/tmp/eval\"

(or `mlit eval ...`). The gin file binds `evaluate.run_dir`, `evaluate.encoder` (an
eval_multilingual.encoders constructor) and `evaluate.evaluations` (a list of
eval_multilingual.evaluations objects). Writes, under run_dir:
  per_task/<dataset>/<task>/<language>.json  {"metrics": {...}, "meta": {...}, "model": ...,
                  "settings": the evaluation's data files, image size, prompts... (or null)}
  results.json   {"model", "languages": {lang: {"<dataset>/<task>": metrics}},
                  "macro": {"<dataset>/<task>": mean over languages}, "meta": {lang: ...},
                  "tuning_counts": {"file", "source", "fingerprint", "sha256"} when counted}
  language_stats.json  the evaluated model's tuning examples per language (copy_tuning_counts)
  results.csv    language,dataset,task,metric,value,n_examples ('macro' rows last)
  eval_config.gin
A per-task file of the same model and settings is reused, so an interrupted run resumes, and
results.json keeps the model's earlier evaluations in run_dir that this gin does not run.
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'eval')  # `python -m`: the command, before the heavy imports

import csv
import glob
import hashlib

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
from eval_multilingual import error_analysis, language_choice
from mlit import job_progress, run_layout
from tasks import file_io, language_codes
from tasks.user_error import UserError

MACRO = 'macro'


def _write_json(path: str, obj) -> None:
  with file_io.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    json.dump(obj, f, indent=1, ensure_ascii=False, sort_keys=True)


def _checksum(record: dict) -> str:
  """sha256 of a per_task record's scores and counts: a file edited by hand (or damaged) is
  evaluated again instead of reused into results.json."""
  body = {k: record.get(k) for k in ('metrics', 'meta', 'per_class', 'model')}
  return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _per_task_record(path: str) -> tuple[dict | None, str]:
  """(the per_task file's record, '') or (None, why it cannot be reused)."""
  try:
    with open(path, encoding='utf-8') as f:
      record = json.load(f)
  except (OSError, ValueError) as e:
    return None, f'unreadable ({type(e).__name__})'
  fields = ('metrics', 'meta', 'model', 'dataset', 'task', 'language')
  if not isinstance(record, dict) or not all(
    isinstance(record.get(k), (dict, str)) for k in fields
  ):
    return None, 'not a per_task record'
  if 'checksum' in record and record['checksum'] != _checksum(record):
    return None, 'changed since mlit eval wrote it (its checksum differs)'
  return record, ''


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


TUNING_COUNTS = 'tuning_counts'  # results.json: where RUN_DIR/language_stats.json came from


def _sha256(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def _count_sources(path: str) -> list[str]:
  """The 'source' of the entries of a language_stats.json ('trained batches' from the trainer);
  'unknown' for entries without one (a file made by hand, or by an older mlit)."""
  try:
    with open(path, encoding='utf-8') as f:
      stats = json.load(f)
  except (OSError, ValueError):
    return ['unreadable']
  if not isinstance(stats, dict):
    return ['unreadable']
  return sorted(
    {str(v.get('source', 'unknown')) if isinstance(v, dict) else 'unknown' for v in stats.values()}
  )


def copy_tuning_counts(
  run_dir: str, model: dict, previous: dict | None = None, model_dir: str | None = None
) -> dict | None:
  """RUN_DIR/language_stats.json (tuning examples per language, for `mlit report`) from the
  evaluated model's training run, which the trainer writes; returns the record results.json
  keeps of it (file, source, model fingerprint, sha256) so the report can tell whose counts
  it shows. `previous` is the record of the results.json this run replaces; `model_dir` the
  evaluated run's directory as the encoder found it (a config.gin read from another folder
  binds MODEL_DIR relative to the folder it trained in), by default the bound checkpoint_dir.

  The model's own file always replaces RUN_DIR's: a file left by an earlier eval of another
  model (or counts of another kind, e.g. distinct texts rather than trained batches) would put
  another meaning, or another model's data, under this model's scores."""
  dst = run_layout.language_stats(run_dir)
  from eval_multilingual import encoders  # pylint: disable=g-import-not-at-top

  if model_dir is None:
    try:  # registered by the gin files that evaluate an mlit checkpoint
      model_dir = gin.get_bindings(encoders.from_mlit_checkpoint).get('checkpoint_dir')
    except ValueError:
      model_dir = None
  for d in (model_dir, os.path.dirname(os.path.normpath(model_dir or ''))):
    src = run_layout.language_stats(d) if d else ''
    # RUN_DIR itself (the demo evaluates runs/demo/train into runs/demo) is not a source: its
    # file may be another model's, and is judged below.
    if src and os.path.exists(src) and not (os.path.exists(dst) and os.path.samefile(src, dst)):
      if os.path.exists(dst) and _sha256(src) != _sha256(dst):
        logging.warning(
          "replacing %s (sources: %s) with the evaluated model's %s",
          dst,
          ', '.join(_count_sources(dst)),
          src,
        )
      if os.path.islink(dst):  # linked from another run (demo_compare): not written through
        os.remove(dst)
      shutil.copyfile(src, dst)
      return {
        'file': os.path.relpath(src, run_dir),
        'source': ', '.join(_count_sources(dst)),
        'fingerprint': model['fingerprint'],
        'sha256': _sha256(dst),
      }
  if not os.path.exists(dst):
    return None
  prev = previous if isinstance(previous, dict) else {}
  dst_sha = _sha256(dst)
  if prev.get('sha256') == dst_sha and prev.get('fingerprint') == model['fingerprint']:
    return prev  # copied for this same model by an earlier eval
  if prev.get('sha256') == dst_sha and prev.get('fingerprint') is not None:
    # Copied by an earlier eval from another model's training run: not this model's data.
    os.remove(dst)
    logging.warning(
      'removed %s: it held the tuning counts of the model evaluated before (fingerprint %s), '
      "and this model's run has no language_stats.json",
      dst,
      prev['fingerprint'],
    )
    return None
  logging.warning(
    "keeping %s as this model's tuning counts (sources: %s): its model is not recorded; "
    'the report says so',
    dst,
    ', '.join(_count_sources(dst)),
  )
  return {
    'file': run_layout.LANGUAGE_STATS,
    'source': ', '.join(_count_sources(dst)),
    'fingerprint': None,
    'sha256': dst_sha,
  }


def check_languages(languages: Sequence[str], available: set[str]) -> None:
  """UserError naming the codes of run.evaluate.languages that no evaluation has."""
  language_codes.check_languages(
    languages, available, 'run.evaluate.languages', 'no evaluation has'
  )


def _settings(ev) -> dict | None:
  """The evaluation's data and settings its scores depend on (its `settings()`, as JSON reads
  them back), None for an evaluation without any beyond the model."""
  settings = getattr(ev, 'settings', None)
  return json.loads(json.dumps(settings())) if settings else None


def _changed(old: dict | None, new: dict | None) -> str:
  """'' when a per_task file's settings are these, else what differs ('image_size 224, now
  160'): a reused score must come from the same data, images and prompts as a fresh one."""
  if old == new:
    return ''
  if not isinstance(old, dict) or not isinstance(new, dict):
    return 'settings (not recorded)'
  keys = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
  shown = [
    f'{k} {old.get(k)!r}, now {new.get(k)!r}'
    if len(repr(old.get(k)) + repr(new.get(k))) < 60
    else k
    for k in keys
  ]
  return '; '.join(shown)


def _earlier_results(run_dir: str, model: dict, done: set, settings: dict) -> tuple[dict, dict]:
  """per_task files of this model in run_dir outside `done` ((key, lang) pairs this run
  evaluates): evaluations of an earlier, larger gin stay in results.json, unless this run has
  their evaluation with other settings (`settings`: key -> settings), e.g. other data files."""
  per_task, per_class = {}, {}
  root = os.path.join(run_dir, 'per_task')
  for path in sorted(glob.glob(os.path.join(root, '*', '*', '*.json'))):
    old, why = _per_task_record(path)
    if old is None:
      logging.warning('%s: %s; left out of results.json', path, why)
      continue
    key, lang = f'{old["dataset"]}/{old["task"]}', old['language']
    if (key, lang) in done or old['model'].get('fingerprint') != model['fingerprint']:
      continue
    if key in settings and (changed := _changed(old.get('settings'), settings[key])):
      logging.warning('%s: evaluated with other %s; left out of results.json', path, changed)
      continue
    per_task[(key, lang)] = (old['metrics'], old['meta'])
    per_class[(key, lang)] = old.get('per_class')
  return per_task, per_class


def _read_results(path: str) -> dict:
  try:
    with open(path, encoding='utf-8') as f:
      old = json.load(f)
  except (OSError, ValueError):
    return {}
  return old if isinstance(old, dict) else {}


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
  languages = language_choice.parse(languages, 'run.evaluate.languages')
  if languages is not None:
    check_languages(languages, {l for ev in evaluations for l in ev.languages()})
  for ev in evaluations:
    langs = ev.languages()
    if languages is not None:
      langs = [l for l in langs if l in set(languages)]
    jobs += [(ev, lang) for lang in langs]
  if not jobs:
    raise UserError('run.evaluate: no evaluation has any language to run (evaluations empty?)')
  settings = {ev.key: _settings(ev) for ev in evaluations}
  logging.info('%d evaluations x languages to run', len(jobs))
  per_task, per_class = {}, {}
  progress = job_progress.Progress(len(jobs), 'evaluations')
  for ev, lang in jobs:
    dataset, task = ev.key.split('/', 1)
    path = os.path.join(run_dir, 'per_task', dataset, task, f'{lang}.json')
    if resume and os.path.exists(path):
      old, why = _per_task_record(path)
      if old is None:
        logging.warning('%s: %s; evaluating it again', path, why)
      elif old['model'].get('fingerprint') != model['fingerprint']:
        pass  # another model's: evaluated afresh, replacing it
      elif changed := _changed(old.get('settings'), settings[ev.key]):
        logging.warning('%s: evaluated with other %s; evaluating it again', path, changed)
      else:
        per_task[(ev.key, lang)] = (old['metrics'], old['meta'])
        per_class[(ev.key, lang)] = old.get('per_class')
        progress.skip()
        continue
    t0 = time.time()
    metrics, meta = ev.run(encoder, lang)
    meta['seconds'] = round(time.time() - t0, 3)
    per_class[(ev.key, lang)] = meta.pop('per_class', None)  # per_class.json, not results.json
    per_task[(ev.key, lang)] = (metrics, meta)
    record = {
      'metrics': metrics,
      'meta': meta,
      'model': model,
      'dataset': dataset,
      'task': task,
      'language': lang,
      'per_class': per_class[(ev.key, lang)],
      'settings': settings[ev.key],
    }
    # Through JSON first, so the checksum is over what the file will read back as.
    record = json.loads(json.dumps(record))
    _write_json(path, {**record, 'checksum': _checksum(record)})
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
  earlier, earlier_classes = _earlier_results(run_dir, model, set(per_task), settings)
  if earlier:
    logging.warning(
      'results.json also keeps %d earlier evaluations of this model in %s (%s); a new RUN_DIR '
      "holds only this run's",
      len(earlier),
      run_dir,
      ', '.join(sorted({k for k, _ in earlier})),
    )
  old = _read_results(run_layout.results(run_dir))
  old_model = old.get('model') if isinstance(old.get('model'), dict) else {}
  if old_model and old_model.get('fingerprint') != model['fingerprint']:
    gone = sorted(
      {k for t in (old.get('languages') or {}).values() if isinstance(t, dict) for k in t}
    )
    logging.warning(
      'replacing results.json of another model (%s, fingerprint %s): its results of %s are '
      'dropped (their per_task files stay)',
      old_model.get('name'),
      old_model.get('fingerprint'),
      ', '.join(gone) or 'nothing',
    )
  results = aggregate({**earlier, **per_task}, model)
  if not results['languages']:  # e.g. XM3600_IMAGES naming another folder: exit 0 and '{}'
    raise UserError(
      f'run.evaluate: no score in any language of {", ".join(sorted({k for k, _ in per_task}))}: '
      'none of their images was found or readable (the warnings above name the first; '
      'n_images_missing in the per_task files); check the image directory'
    )
  counts = copy_tuning_counts(
    run_dir, model, old.get(TUNING_COUNTS), getattr(encoder, 'model_dir', None)
  )
  if counts:
    results[TUNING_COUNTS] = counts
  analysis = error_analysis.analyse({**earlier_classes, **per_class})
  analysis_path = os.path.join(run_dir, error_analysis.FILENAME)
  if analysis['tasks']:  # beside results.json: a row per class and language
    _write_json(analysis_path, analysis)
  elif os.path.exists(analysis_path):  # another model's rows would sit beside these results
    os.remove(analysis_path)
  _write_json(run_layout.results(run_dir), results)
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

  logging.getLogger().setLevel(logging.INFO)  # the progress lines
  if not logging.getLogger().handlers:  # run as a module, not through the mlit command
    logging.basicConfig(format='%(asctime)s %(message)s')
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
