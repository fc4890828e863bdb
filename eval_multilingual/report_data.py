"""Reads an evaluation run directory and builds per-language rows, summaries and deltas.

Inputs (contracts in the evaluation suite): RUN_DIR/results.json (required), and when present
language_stats.json (tuning examples per language), tokenizer_stats.json (coverage of the
vocabulary) and prompt_quality.json ({lang: {"chrf": float, ...}}, round-trip chrF of the
translated prompts, written by `mlit add-language prompts`).
"""

import collections
import dataclasses
import hashlib
import json
import math
import os
import statistics
from typing import Any

from eval_multilingual import languages
from mlit import run_layout
from tasks import language_codes
from tasks.user_error import UserError

ZEROSHOT_METRIC = 'acc1'
# The files of a run directory the report reads.
RUN_FILES = (
  run_layout.RESULTS,
  run_layout.LANGUAGE_STATS,
  run_layout.TOKENIZER_STATS,
  run_layout.PROMPT_QUALITY,
)
# Languages evaluated on fewer examples are shown but marked, and left out of macro averages and
# summary plots (a language with 4 held-out names moves a macro by 25 points per name).
DEFAULT_MIN_N = 20
_Z95 = 1.959964


@dataclasses.dataclass(frozen=True)
class Column:
  """One score column: a metric of a dataset/task."""

  task: str
  metric: str

  @property
  def label(self) -> str:
    dataset = self.task.split('/')[0]
    short = {'acc1': 'top-1 acc', 'acc5': 'top-5 acc'}.get(self.metric)
    if short is None and 'recall@' in self.metric:
      direction = 'T→I' if self.metric.startswith('image_') else 'I→T'
      short = f'{direction} R@{self.metric.rsplit("@", 1)[1]}'
    return f'{dataset} {short or self.metric}'

  @property
  def slug(self) -> str:
    return ''.join(ch if ch.isalnum() else '_' for ch in f'{self.task}_{self.metric}')


@dataclasses.dataclass
class Run:
  name: str
  path: str
  results: dict
  language_stats: dict
  tokenizer_stats: dict
  prompt_quality: dict
  warnings: list[str]
  # Where the 'Tuning examples' counts come from (shown under the table and on the plots).
  counts_note: str = ''

  def score(self, lang: str, col: Column) -> float | None:
    v = self.results['languages'].get(lang, {}).get(col.task, {}).get(col.metric)
    return float(v) if _is_number(v) else None

  def meta(self, lang: str) -> dict:
    m = self.results.get('meta', {}).get(lang, {})
    return m if isinstance(m, dict) else {}


def _is_number(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_count(v: Any) -> bool:
  """A positive whole number (an example count)."""
  return _is_number(v) and v == int(v) and v > 0


def read_json(path: str, required: bool) -> dict:
  """The JSON object in `path`; UserError naming the file when it is not UTF-8, not JSON or not
  an object ({} for a missing optional file)."""
  if not os.path.exists(path):
    if required:
      raise FileNotFoundError(f'{path}: no such file (expected the evaluation results)')
    return {}
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except json.JSONDecodeError as e:
    raise UserError(f'{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}') from e
  except UnicodeDecodeError as e:
    raise UserError(
      f'{path}: not UTF-8 text (byte {e.start}: {e.object[e.start : e.end]!r})'
    ) from e
  except RecursionError as e:  # thousands of nested brackets
    raise UserError(f'{path}: JSON nested too deeply') from e
  if not isinstance(data, dict):
    raise UserError(f'{path}: top level must be an object')
  return data


def _by_code(side_file: dict) -> dict:
  """A {lang: ...} side file keyed by the canonical code: training data and coverage may spell
  a language differently from results.json ('zh_tw', 'zh-TW')."""
  return {language_codes.normalize(k): v for k, v in side_file.items()}


def side_stats(side_file: dict, lang: str) -> dict:
  """The entry of results.json's `lang` in a side file of the run ({} when absent)."""
  v = side_file.get(language_codes.normalize(lang))
  return v if isinstance(v, dict) else {}


def load_run(run_dir: str) -> Run:
  """Loads and validates a run directory; malformed metric entries are dropped with a warning."""
  path = run_layout.results(run_dir)
  results = read_json(path, required=True)
  langs = results.get('languages')
  if not isinstance(langs, dict):
    raise UserError(f'{path}: key "languages" missing or not an object')
  warnings = []
  clean = {}
  for lang, tasks in langs.items():
    if not isinstance(tasks, dict):
      warnings.append(f'{path}: languages.{lang} is not an object; ignored')
      continue
    clean[lang] = {}
    for task, metrics in tasks.items():
      if not isinstance(metrics, dict):
        warnings.append(f'{path}: languages.{lang}.{task} is not an object; ignored')
        continue
      clean[lang][task] = {}
      for m, v in metrics.items():
        if not _is_number(v):
          warnings.append(f'{path}: languages.{lang}.{task}.{m} = {v!r} is not a number; ignored')
        elif not 0 <= v <= 1:  # every score mlit eval writes is a share (accuracy, recall@k)
          warnings.append(
            f'{path}: languages.{lang}.{task}.{m} = {v!r} is not a share in [0, 1]; ignored'
          )
        else:
          clean[lang][task][m] = v
  results = dict(results, languages=clean)
  warnings += _count_warnings(path, results)
  model = results.get('model') if isinstance(results.get('model'), dict) else {}
  # The run directory names a run in titles and comparison columns (short, chosen by the
  # user); the model's own name (checkpoint path and step) stays in results['model'].
  # The absolute path: `mlit report .` is named after the folder, not '.'.
  name = os.path.basename(os.path.abspath(run_dir)) or str(model.get('name') or run_dir)
  stats, note = tuning_counts(run_dir, results, warnings)
  return Run(
    name=name,
    path=run_dir,
    results=results,
    counts_note=note,
    language_stats=stats,
    tokenizer_stats=_by_code(read_json(run_layout.tokenizer_stats(run_dir), False)),
    prompt_quality=_by_code(read_json(run_layout.prompt_quality(run_dir), False)),
    warnings=warnings,
  )


def _count_warnings(path: str, results: dict) -> list[str]:
  """Lines for example counts (meta.LANG.TASK.n_examples, n_texts, n_images) that are not
  positive whole numbers, and for scores with no count: their intervals and the min-n mark need
  one, so those scores are shown without them."""
  out, uncounted = [], []
  meta = results.get('meta') if isinstance(results.get('meta'), dict) else {}
  for lang, tasks in results['languages'].items():
    lang_meta = meta.get(lang) if isinstance(meta.get(lang), dict) else {}
    for task, metrics in tasks.items():
      task_meta = lang_meta.get(task) if isinstance(lang_meta.get(task), dict) else {}
      for key in ('n_examples', 'n_texts', 'n_images'):
        v = task_meta.get(key)
        if v is not None and not _is_count(v):
          out.append(f'{path}: meta.{lang}.{task}.{key} = {v!r} is not a positive whole number')
      if metrics and not _is_number(task_meta.get('n_examples')):
        uncounted.append(f'{lang} {task}')
  if uncounted:
    out.append(
      f'{path}: {len(uncounted)} language/task results have no example count (meta.LANG.TASK.n_examples), so '
      f'no interval or min-n mark: {", ".join(uncounted[:5])}'
      + (f' and {len(uncounted) - 5} more' if len(uncounted) > 5 else '')
    )
  return out


def _entry_sources(stats: dict) -> str:
  found = {str(v.get('source', 'unknown')) for v in stats.values() if isinstance(v, dict)}
  return ', '.join(sorted(found)) or 'unknown'


def tuning_counts(run_dir: str, results: dict, warnings: list[str]) -> tuple[dict, str]:
  """RUN_DIR/language_stats.json by canonical code, and a sentence saying whose counts they are
  and what they count, from the record `mlit eval` keeps in results.json ('tuning_counts').
  Counts recorded for another model are not shown (a warning says so)."""
  path = run_layout.language_stats(run_dir)
  stats = read_json(path, False)
  if not stats:
    return {}, ''
  record = results.get('tuning_counts')
  record = record if isinstance(record, dict) else {}
  with open(path, 'rb') as f:
    sha = hashlib.sha256(f.read()).hexdigest()
  model = results.get('model') if isinstance(results.get('model'), dict) else {}
  what = _entry_sources(stats)
  if not record:
    return _by_code(stats), (
      f'Tuning examples: {run_layout.LANGUAGE_STATS} ({what}); which model they belong to is not '
      'recorded in results.json (mlit eval records it)'
    )
  if record.get('sha256') != sha:
    warnings.append(
      f"{path} changed after mlit eval recorded it: its tuning counts may not be this model's"
    )
    return _by_code(stats), (
      f'Tuning examples: {run_layout.LANGUAGE_STATS} ({what}), changed after mlit eval; '
      'model not known'
    )
  fingerprint = record.get('fingerprint')
  if fingerprint is not None and fingerprint != model.get('fingerprint'):
    warnings.append(
      f'{path} holds the tuning counts of model {fingerprint}, not of the evaluated '
      f"{model.get('fingerprint')}: not shown (run mlit eval again to copy this model's)"
    )
    return {}, 'Tuning examples: not shown (the counts in the run belong to another model)'
  where = (
    f"the evaluated model's {record.get('file')}"
    if fingerprint is not None
    else f'{run_layout.LANGUAGE_STATS} of unrecorded origin'
  )
  return _by_code(stats), f'Tuning examples: {what}, from {where}'


def recall_ks(run: Run) -> list[int]:
  """The k of every recall@k in the results."""
  ks = set()
  for tasks in run.results['languages'].values():
    for ms in tasks.values():
      ks.update(
        int(m.rsplit('@', 1)[1]) for m in ms if 'recall@' in m and m.rsplit('@', 1)[1].isdigit()
      )
  return sorted(ks)


def main_column(run: Run, cols: list[Column], sort_by: str | None = None) -> Column | None:
  """The score tables and summaries are sorted by: `sort_by` ('dataset/task' or
  'dataset/task:metric') if given, else the top-1 accuracy scored in the most languages (a task
  where most languages are missing or at chance must not set the order); UserError when
  `sort_by` names no column."""
  if sort_by:
    task, _, metric = sort_by.partition(':')
    found = [c for c in cols if c.task == task and (not metric or c.metric == metric)]
    if not found:
      raise UserError(f'--sort-by {sort_by}: {_why_not_sortable(run, task, metric, cols)}')
    return found[0]
  if not cols:
    return None

  def n_scored(c):
    return sum(run.score(l, c) is not None for l in run.results['languages'])

  return max(cols, key=lambda c: (c.metric == ZEROSHOT_METRIC, n_scored(c), -cols.index(c)))


def _why_not_sortable(run: Run, task: str, metric: str, cols: list[Column]) -> str:
  """Why --sort-by TASK:METRIC names no column, and the scores it can sort by."""
  names = ', '.join(f'{c.task}:{c.metric}' for c in cols)
  in_results = any(
    task in tasks and (not metric or metric in tasks[task])
    for tasks in run.results['languages'].values()
  )
  if in_results:
    return (
      'in the results, but the report shows and sorts by top-1 accuracy and recall@k '
      f'(--recall-k) only; it can sort by: {names}'
    )
  return f'no such score in the results; it can sort by: {names}'


def score_columns(run: Run, recall_k: int = 1) -> list[Column]:
  """Zero-shot top-1 accuracy and text<->image recall@k of every task, in a stable order."""
  metrics = collections.defaultdict(set)
  for tasks in run.results['languages'].values():
    for task, ms in tasks.items():
      metrics[task].update(ms)
  cols = []
  for task in sorted(metrics, key=lambda t: ('retrieval' in t, t)):
    wanted = [
      ZEROSHOT_METRIC,
      f'image_retrieval_recall@{recall_k}',
      f'text_retrieval_recall@{recall_k}',
    ]
    chosen = [m for m in wanted if m in metrics[task]]
    if not chosen:  # A task with other metric names: show them all rather than hide it.
      chosen = sorted(metrics[task])
    cols.extend(Column(task, m) for m in chosen)
  return cols


def n_candidates(run: Run, lang: str, col: Column) -> int | None:
  """How many candidates a query is ranked among: classes for top-k accuracy, images for
  text->image recall, texts for image->text recall (n_examples when those counts are absent).

  Counts come from results.json meta[lang][task] (or meta[lang]); None when unknown.
  """
  meta = run.meta(lang)
  task_meta = meta.get(col.task) if isinstance(meta.get(col.task), dict) else {}
  if col.metric.startswith('acc'):
    n = task_meta.get('n_classes', meta.get('n_classes'))
  elif 'recall@' in col.metric:
    which = 'n_images' if col.metric.startswith('image_') else 'n_texts'
    n = task_meta.get(which, task_meta.get('n_examples', meta.get('n_examples')))
  else:
    return None
  return int(n) if _is_number(n) and n > 0 else None


def chance_among(col: Column, n: int) -> float:
  """Chance level of `col` among n candidates: k/n for top-k accuracy and recall@k."""
  k = 5 if col.metric == 'acc5' else 1
  if '@' in col.metric:
    k = int(col.metric.rsplit('@', 1)[1])
  return min(1.0, k / n)


def chance(run: Run, lang: str, col: Column) -> float | None:
  """Chance level: k/n_classes for top-k accuracy, k/(images or texts ranked) for recall@k."""
  n = n_candidates(run, lang, col)
  return None if n is None else chance_among(col, n)


def usual_candidates(run: Run, col: Column) -> int | None:
  """The task's most common number of candidates over the languages scored (the larger on a
  tie): scores ranked among fewer are easier and not comparable with the rest."""
  counts = collections.Counter(
    n
    for lang in run.results['languages']
    if run.score(lang, col) is not None and (n := n_candidates(run, lang, col)) is not None
  )
  return max(counts, key=lambda n: (counts[n], n)) if counts else None


def fewer_candidates(run: Run, lang: str, col: Column) -> int | None:
  """The language's number of candidates when it is under the task's usual, else None."""
  n, usual = n_candidates(run, lang, col), usual_candidates(run, col)
  return n if n is not None and usual is not None and n < usual else None


def language_info(run: Run, lang: str) -> languages.Language:
  return languages.lookup(lang)


def tokens_per_unit(stats: dict) -> tuple[float | None, str]:
  """The tokenizer-stats value to show: per character for unspaced scripts when available."""
  unit = stats.get('unit', 'word')
  v = stats.get('tokens_per_char' if unit == 'char' else 'tokens_per_word')
  return (float(v) if _is_number(v) else None), unit


def n_tuning_examples(run: Run, lang: str) -> int | None:
  """The language's tuning examples: 0 when the run's counts do not list it (counts are kept
  for languages seen in training), None when the run has no counts."""
  if not run.language_stats:
    return None
  v = side_stats(run.language_stats, lang).get('n_train_examples', 0)
  return int(v) if _is_number(v) else None


def ordered_languages(run: Run, col: Column | None, min_n: int = DEFAULT_MIN_N) -> list[str]:
  """Languages by decreasing score of `col`; those under min_n examples, then missing scores,
  last (a language with 4 examples at 75% must not lead the table)."""
  langs = list(run.results['languages'])

  def key(lang):
    s = run.score(lang, col) if col else None
    small = bool(col) and too_small(run, lang, col, min_n)
    return (s is None, small, -(s or 0.0), lang)

  return sorted(langs, key=key)


@dataclasses.dataclass
class Summary:
  col: Column
  n: int
  macro: float | None
  macro_reported: float | None
  english: float | None
  median_rest: float | None
  by_script: list[tuple[str, int, float, float, str, str]]  # script, n, mean, median, min, max
  below_chance: list[str]
  below_threshold: list[str]
  small: list[str] = dataclasses.field(default_factory=list)  # fewer than min_n examples
  min_n: int = DEFAULT_MIN_N


def summarize(run: Run, col: Column, threshold: float, min_n: int = DEFAULT_MIN_N) -> Summary:
  """Macro, English vs the rest, per-script statistics over languages with at least min_n
  examples; the others are listed in `small`."""
  all_scores = {l: s for l in run.results['languages'] if (s := run.score(l, col)) is not None}
  small = sorted(l for l in all_scores if too_small(run, l, col, min_n))
  scores = {l: s for l, s in all_scores.items() if l not in small}
  reported = run.results.get('macro', {}).get(col.task, {}).get(col.metric)
  english = scores.get('en')
  rest = [s for l, s in scores.items() if l != 'en']
  groups = collections.defaultdict(list)
  for l, s in scores.items():
    groups[language_info(run, l).script].append((s, l))
  by_script = []
  for script, items in sorted(
    groups.items(), key=lambda kv: -statistics.median(s for s, _ in kv[1])
  ):
    vals = [s for s, _ in items]
    lo, hi = min(items), max(items)
    by_script.append(
      (script, len(items), statistics.fmean(vals), statistics.median(vals), lo[1], hi[1])
    )
  below_chance = sorted(
    l for l, s in scores.items() if (c := chance(run, l, col)) is not None and s <= c
  )
  below_threshold = sorted(l for l, s in scores.items() if s < threshold)
  return Summary(
    col=col,
    n=len(scores),
    macro=statistics.fmean(scores.values()) if scores else None,
    macro_reported=float(reported) if _is_number(reported) else None,
    english=english,
    median_rest=statistics.median(rest) if rest else None,
    by_script=by_script,
    below_chance=below_chance,
    below_threshold=below_threshold,
    small=small,
    min_n=min_n,
  )


def n_trials(run: Run, lang: str, col: Column) -> int | None:
  """How many queries a score averages: images for zero-shot accuracy, the query side for recall.

  Text->image recall ('image_retrieval_recall@k') averages over texts, image->text over images;
  counts come from results.json meta[lang][task]. None when unknown.
  """
  task_meta = run.meta(lang).get(col.task)
  task_meta = task_meta if isinstance(task_meta, dict) else {}
  if col.metric.startswith('image_retrieval'):
    n = task_meta.get('n_texts', task_meta.get('n_examples'))
  elif col.metric.startswith('text_retrieval'):
    n = task_meta.get('n_images', task_meta.get('n_examples'))
  else:
    n = task_meta.get('n_examples')
  return int(n) if _is_count(n) else None


def wilson(p: float, n: int, z: float = _Z95) -> tuple[float, float]:
  """Wilson score interval of a proportion p observed on n trials (95% by default)."""
  denom = 1 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
  return max(0.0, centre - half), min(1.0, centre + half)


def interval(run: Run, lang: str, col: Column) -> tuple[float, float] | None:
  s, n = run.score(lang, col), n_trials(run, lang, col)
  return wilson(s, n) if s is not None and n else None


def too_small(run: Run, lang: str, col: Column, min_n: int) -> bool:
  """True when the score rests on fewer than min_n examples (unknown counts are not marked)."""
  n = n_trials(run, lang, col)
  return n is not None and n < min_n


def large_enough(run: Run, col: Column, min_n: int) -> Run:
  """The run without the languages whose `col` rests on fewer than min_n examples (for plots)."""
  kept = {l: t for l, t in run.results['languages'].items() if not too_small(run, l, col, min_n)}
  return dataclasses.replace(run, results=dict(run.results, languages=kept))


def delta_outside_intervals(base: Run, other: Run, lang: str, col: Column) -> bool | None:
  """Whether the two runs' 95% intervals do not overlap (a conservative test); None if unknown."""
  a, b = interval(base, lang, col), interval(other, lang, col)
  if a is None or b is None:
    return None
  return a[1] < b[0] or b[1] < a[0]


def same_run(a: Run, b: Run) -> str | None:
  """Why b is the same run as a (same folder, or same model in results.json), None if not."""
  if os.path.realpath(a.path) == os.path.realpath(b.path):
    return 'the same run directory as RUN_DIR'
  model_a, model_b = (r.results.get('model') for r in (a, b))
  if not isinstance(model_a, dict) or not isinstance(model_b, dict):
    return None
  # The fingerprint decides when both have one (a retrained model may keep its name).
  key = 'fingerprint' if model_a.get('fingerprint') and model_b.get('fingerprint') else 'name'
  if model_a.get(key) and model_a.get(key) == model_b.get(key):
    return f'the same model as RUN_DIR (results.json model.{key} {model_a[key]})'
  return None


def deltas(base: Run, other: Run, col: Column) -> dict[str, float]:
  """Per-language other − base for languages scored in both runs."""
  out = {}
  for lang in base.results['languages']:
    a, b = base.score(lang, col), other.score(lang, col)
    if a is not None and b is not None:
      out[lang] = b - a
  return out
