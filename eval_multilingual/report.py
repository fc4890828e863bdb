"""`mlit report RUN_DIR [--compare OTHER ...]`: per-language report of an evaluation run.

Writes RUN_DIR/report/index.html (one self-contained file: plots embedded as base64 PNG, every
text from the data HTML-escaped), report.md and the PNG plots. Scores are shown in percent;
deltas are OTHER − RUN_DIR in percentage points.
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'report')  # `python -m`: the command, before the heavy imports

import argparse
import datetime
import os
import statistics
import sys

from eval_multilingual import languages, report_data, report_error_analysis, report_plots
from eval_multilingual import report_doc as doc
from eval_multilingual.report_data import Column, Run
from mlit import run_layout

LANG_HEADERS = [
  'Language',
  'Code',
  'Script',
  'Tuning examples',
  'Tokens/word',
  'Byte-fallback %',
  'Truncated %',
  'Prompt chrF',
]


def _pct(v: float | None, signed: bool = False) -> str:
  if v is None:
    return ''
  if signed:  # a difference that rounds to zero reads +0.0, not -0.0
    return f'{round(100 * v, 1) + 0.0:+.1f}'
  return f'{100 * v:.1f}'


def _number(text) -> float | None:
  """The number a cell starts with ('30.9 (139-way)' -> 30.9); None for an empty cell."""
  try:
    return float(str(text).split(' ', 1)[0])
  except ValueError:
    return None


def language_label(run: Run, code: str) -> str:
  """'German (de)'; the code alone when the language has no known name."""
  name = report_data.language_info(run, code).name
  return code if name == code else f'{name} ({code})'


def _score_cell(run: Run, lang: str, col: Column, usual: int | None) -> str:
  """The score in %, with '(N-way)' when the language was scored among fewer candidates than
  the task's usual: its chance is higher and it is not comparable with the rest."""
  text = _pct(run.score(lang, col))
  n = report_data.n_candidates(run, lang, col)
  if text and n is not None and usual is not None and n < usual:
    text += f' ({n}-way)'
  return text


def _ci(run: Run, lang: str, col: Column, min_n: int) -> str:
  """'lo–hi (n=N)' of the 95% Wilson interval; † when n is under min_n."""
  n, ci = report_data.n_trials(run, lang, col), report_data.interval(run, lang, col)
  if n is None or ci is None:
    return ''
  mark = ' †' if n < min_n else ''
  return f'{_pct(ci[0])}–{_pct(ci[1])} (n={n}{mark})'


def language_rows(
  run: Run, cols: list[Column], order_col: Column | None, min_n: int = report_data.DEFAULT_MIN_N
) -> list[list]:
  rows = []
  usual = {c: report_data.usual_candidates(run, c) for c in cols}
  for lang in report_data.ordered_languages(run, order_col, min_n):
    info = report_data.language_info(run, lang)
    tok = report_data.side_stats(run.tokenizer_stats, lang)
    tpu, unit = report_data.tokens_per_unit(tok)
    tpu_text = '' if tpu is None else (f'{tpu:.2f}' + (' /char' if unit == 'char' else ''))
    chrf = report_data.side_stats(run.prompt_quality, lang).get('chrf')
    rows.append(
      [
        info.name,
        lang,
        info.script,
        report_data.n_tuning_examples(run, lang),
        tpu_text,
        _pct(tok.get('byte_fallback_share')),
        _pct(tok.get('truncated_share')),
        '' if chrf is None else f'{float(chrf):.1f}',
      ]
      + [v for c in cols for v in (_score_cell(run, lang, c, usual[c]), _ci(run, lang, c, min_n))]
    )
  return rows


def _names(run: Run, codes: list[str]) -> str:
  return ', '.join(language_label(run, c) for c in codes) or 'none'


_NOTE_NAMES = 12  # languages named in a note; the per-language table has them all


def candidates_note(run: Run, col: Column) -> str | None:
  """Which languages were scored among fewer candidates than the task's usual, with their
  counts and chance; None when every language had the usual count."""
  usual = report_data.usual_candidates(run, col)
  fewer = {
    lang: n
    for lang in report_data.ordered_languages(run, col)
    if run.score(lang, col) is not None
    and (n := report_data.fewer_candidates(run, lang, col)) is not None
  }
  if not fewer:
    return None
  fewest = sorted(fewer.items(), key=lambda kv: (kv[1], kv[0]))
  shown = '; '.join(
    f'{language_label(run, l)} {n}, chance {_pct(report_data.chance(run, l, col))}%'
    for l, n in fewest[:_NOTE_NAMES]
  )
  more = (
    f'; and {len(fewer) - _NOTE_NAMES} more (per-language table)'
    if len(fewer) > _NOTE_NAMES
    else ''
  )
  return (
    f'{col.label}: {len(fewer)} languages scored among fewer candidates than the usual {usual} '
    f'(shown "N-way"; higher chance, not comparable with the rest), fewest first: {shown}{more}.'
  )


def headline_section(
  run: Run, sums: list[report_data.Summary], threshold: float
) -> list[doc.Block]:
  """One row per score: macro average, English vs the median of the rest, weak languages."""
  headers = [
    'Score',
    'Languages',
    'Macro avg %',
    'English %',
    'Median of rest %',
    'English − median (pp)',
    'At/below chance',
    f'Below {_pct(threshold)}%',
    'Usual candidates (chance %)',
    'Fewer candidates',
  ]
  rows, notes = [], []
  for s in sums:
    gap = s.english - s.median_rest if s.english is not None and s.median_rest is not None else None
    macro = _pct(s.macro) + (
      f' ({_pct(s.macro_reported)})'
      if s.macro_reported is not None and abs(s.macro_reported - (s.macro or 0)) > 5e-4
      else ''
    )
    rows.append(
      [
        s.col.label,
        s.n,
        macro,
        _pct(s.english),
        _pct(s.median_rest),
        _pct(gap, signed=True),
        len(s.below_chance),
        len(s.below_threshold),
        _usual_cell(run, s.col),
        len(_fewer(run, s.col)),
      ]
    )
    if line := candidates_note(run, s.col):
      notes.append(line)
    if s.below_chance:
      notes.append(f'{s.col.label}, at or below chance: {_names(run, s.below_chance)}.')
    if line := shared_texts_note(run, s.col):
      notes.append(line)
    if s.below_threshold:
      notes.append(f'{s.col.label}, below {_pct(threshold)}%: {_names(run, s.below_threshold)}.')
    if s.small:
      notes.append(
        f'{s.col.label}, under {s.min_n} examples (shown †, left out of every summary and '
        f'plot): {_names(run, s.small)}.'
      )
  notes.append(
    'Macro average over the languages scored here on at least the minimum n (--min-n); in '
    'parentheses the macro of results.json when it differs.'
  )
  return [doc.Heading('Summary'), doc.Table(headers, rows, 1), doc.Bullets(notes)]


def shared_texts_note(run: Run, col: Column) -> str | None:
  """A line when some languages' retrieval texts include strings that caption several images
  (retrieval.py): their scores have a merged version in the report."""
  if 'recall@' not in col.metric:
    return None
  shared = [
    lang
    for lang in report_data.ordered_languages(run, col)
    if run.score(lang, col) is not None
    and isinstance(m := run.meta(lang).get(col.task), dict)
    and m.get('n_texts_shared')
  ]
  if not shared:
    return None
  return (
    f'{col.label}: in {len(shared)} language{"s" * (len(shared) > 1)} some texts caption several '
    'images, which lowers this score whatever the model does; "Texts that caption several '
    'images" has it with each such text counted for each of its images.'
  )


def _usual_cell(run: Run, col: Column) -> str:
  """The task's usual number of candidates and its chance in %: '371 (0.3)'."""
  usual = report_data.usual_candidates(run, col)
  return '' if usual is None else f'{usual} ({_pct(report_data.chance_among(col, usual))})'


def _fewer(run: Run, col: Column) -> list[str]:
  return [
    l
    for l in run.results['languages']
    if run.score(l, col) is not None and report_data.fewer_candidates(run, l, col) is not None
  ]


def script_section(run: Run, sums: list[report_data.Summary]) -> list[doc.Block]:
  """Per writing system: mean/median of every score over its languages (counted per score)."""
  per = {}
  for s in sums:
    for script, n, mean, med, lo, hi in s.by_script:
      per.setdefault(script, {})[s.col] = (mean, med, lo, hi, n)
  headers = ['Script'] + [f'{s.col.label} mean / median % (languages)' for s in sums]
  if sums:
    headers += [f'Lowest / highest ({sums[0].col.label})']
  first = sums[0].col if sums else None
  order = sorted(per, key=lambda k: (-(per[k][first][1] if first in per[k] else -1.0), k))
  rows = []
  for k in order:
    row = [f'{languages.SCRIPT_NAMES.get(k, k)} ({k})']
    row += [
      f'{_pct(per[k][s.col][0])} / {_pct(per[k][s.col][1])} ({per[k][s.col][4]})'
      if s.col in per[k]
      else ''
      for s in sums
    ]
    if first in per[k]:
      row.append(
        f'{language_label(run, per[k][first][2])} / {language_label(run, per[k][first][3])}'
      )
    rows.append(row)
  sorted_by = f'median {first.label}, highest first' if first else 'name'
  return [
    doc.Heading('By script'),
    doc.Line(
      f'Scripts sorted by {sorted_by}. In parentheses: the languages of the script scored on '
      'that score with at least --min-n examples (the mean and median are over them).'
    ),
    doc.Table(headers, rows, 1),
  ]


def compare_section(
  run: Run, others: list[Run], col: Column, min_n: int = report_data.DEFAULT_MIN_N
) -> tuple[list[str], list[list]]:
  """Scores with their 95% intervals and n, deltas, and whether each delta is outside the two
  runs' intervals (they do not overlap: 'yes'; 'no' means the difference may be noise): every
  'yes' can be checked against the two intervals beside it."""
  headers = ['Language', 'Code', run.name, f'{run.name} 95% CI']
  for o in others:
    headers += [o.name, f'{o.name} 95% CI', f'Δ {o.name}', f'{o.name}: beyond 95% CIs']
  rows = []
  for lang in report_data.ordered_languages(run, col, min_n):
    if all(r.score(lang, col) is None for r in [run, *others]):
      continue  # no run scored it on this task: an empty row says nothing
    row = [report_data.language_info(run, lang).name, lang, _pct(run.score(lang, col))]
    row.append(_ci(run, lang, col, min_n))
    for o in others:
      d = report_data.deltas(run, o, col).get(lang)
      outside = report_data.delta_outside_intervals(run, o, lang, col) if d is not None else None
      scored = o.score(lang, col) is not None
      row += [_pct(o.score(lang, col)), _ci(o, lang, col, min_n) if scored else '']
      row += [_pct(d, signed=True), _yes_no(outside)]
    rows.append(row)
  return headers, rows


def only_in_others_note(run: Run, others: list[Run], col: Column) -> str | None:
  """The languages a compared run scored on `col` that this run has no results for (they have
  no row: rows are this run's languages)."""
  parts = []
  for o in others:
    only = [
      l
      for l in o.results['languages']
      if l not in run.results['languages'] and o.score(l, col) is not None
    ]
    if only:
      parts.append(f'{o.name}: {_names(o, sorted(only))}')
  return f'Scored only in the other run, not shown: {"; ".join(parts)}.' if parts else None


def compare_summary(run: Run, other: Run, col: Column, min_n: int) -> str | None:
  """The comparison's headline: mean and median delta, and how many deltas are beyond both runs'
  95% intervals, over the languages with at least min_n examples in both runs."""
  d = report_data.deltas(
    report_data.large_enough(run, col, min_n), report_data.large_enough(other, col, min_n), col
  )
  if not d:
    return None
  beyond = [lang for lang in d if report_data.delta_outside_intervals(run, other, lang, col)]
  up = sum(d[lang] > 0 for lang in beyond)
  return (
    f'{other.name}: mean Δ {_pct(statistics.mean(d.values()), signed=True)}, median Δ '
    f'{_pct(statistics.median(d.values()), signed=True)} points over {len(d)} languages with at '
    f'least {min_n} examples; beyond both 95% CIs in {len(beyond)} ({up} up, '
    f'{len(beyond) - up} down).'
  )


def _yes_no(flag: bool | None) -> str:
  return '' if flag is None else ('yes' if flag else 'no')


def _heat(value_text: str, vmax: float) -> str | None:
  v = _number(value_text)
  if v is None:
    return None
  a = 0.05 + 0.5 * max(0.0, min(1.0, v / vmax)) if vmax > 0 else 0.0
  return f'background-color:rgba(85,168,104,{a:.2f})'


def _delta_style(value_text: str) -> str | None:
  try:
    v = float(value_text)
  except ValueError:
    return None
  a = min(0.6, 0.08 + abs(v) / 20)
  return f'background-color:rgba({"85,168,104" if v >= 0 else "196,78,82"},{a:.2f})'


FEWER_CANDIDATES_NOTE = (
  '"(N-way)": the language was scored among N candidates (classes; for recall, images for '
  'T→I and texts for I→T), fewer than the task\'s usual number (Summary: "Usual candidates"): '
  "its chance, 1/N for top-1 and k/N for top-k and R@k, is higher than the rest's, so the "
  'score is not comparable with theirs.'
)


def how_to_read(min_n: int) -> list[doc.Block]:
  """What the report's numbers are, once, before the first table."""
  return [
    doc.Heading('How to read this report'),
    doc.Bullets(
      [
        'Scores are percentages; a difference between two scores (English − median, Δ) is in '
        'percentage points (pp).',
        'top-1 / top-5 acc: the share of images whose class is ranked first / among the first '
        'five of the candidate classes ("classes": the classes the language\'s images are '
        'classified among; chance is 1/classes for top-1, 5/classes for top-5).',
        'T→I R@k (text to image): the share of texts whose image is among the k images ranked '
        'highest for it; I→T R@k (image to text): the share of images whose text is among the k '
        'texts ranked highest. Chance is k over the images (T→I) or texts (I→T) ranked.',
        'n: what a score averages over: images for zero-shot accuracy; for recall the query '
        'side, texts for T→I and images for I→T.',
        '95% CI: the Wilson score interval of the score as a proportion of n.',
        f'†: scored on fewer than {min_n} examples (--min-n): shown, ordered last, and left out '
        'of macro averages, medians, per-script summaries and plots.',
        'Median of rest: the median over every language except English, leaving out those '
        'under --min-n; English − median is English minus it, in pp.',
        FEWER_CANDIDATES_NOTE,
      ]
    ),
  ]


def _without_empty(headers: list, rows: list[list], names: list[str]) -> tuple[list, list]:
  """Leaves out the named columns when they are empty in every row (no data for them)."""
  drop = {j for j, h in enumerate(headers) if h in names and all(r[j] in ('', None) for r in rows)}
  keep = [j for j in range(len(headers)) if j not in drop]
  return [headers[j] for j in keep], [[r[j] for j in keep] for r in rows]


def comparison_blocks(
  run: Run, others: list[Run], cols: list[Column], min_n: int, out_dir: str
) -> list[doc.Block]:
  """Per score: the summary line per compared run, the delta plot and the side-by-side table."""
  if not others:
    return []
  blocks = [doc.Heading('Comparison (Δ = other − this run, percentage points)')]
  for col in cols:
    ch, cr = compare_section(run, others, col, min_n)

    def delta_style(i, j, ch=ch, cr=cr):
      return _delta_style(cr[i][j]) if ch[j].startswith('Δ ') else None

    blocks.append(doc.Heading(col.label, 3))
    for o in others:
      line = compare_summary(run, o, col, min_n)
      if line:
        blocks.append(doc.Line(line))
    p = f'delta_{col.slug}.png'
    big = [report_data.large_enough(o, col, min_n) for o in others]
    if report_plots.delta_bars(
      report_data.large_enough(run, col, min_n), big, col, os.path.join(out_dir, p)
    ):
      blocks.append(doc.Figures([(p, f'{col.label}: per-language deltas')]))
    blocks.append(doc.Table(ch, cr, 2, cell_style=delta_style, collapsed=True))
    if note := only_in_others_note(run, others, col):
      blocks.append(doc.Line(note))
  return blocks


def build(
  run: Run,
  others: list[Run],
  out_dir: str,
  threshold: float,
  recall_k: int,
  max_plots: int = 12,
  min_n: int = report_data.DEFAULT_MIN_N,
  sort_by: str | None = None,
) -> dict[str, str]:
  """Writes the plots, report.md and index.html into out_dir; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  cols = report_data.score_columns(run, recall_k)
  order_col = report_data.main_column(run, cols, sort_by)
  if order_col is not None:  # the main score first: tables, summaries and plots lead with it
    cols = [order_col] + [c for c in cols if c != order_col]
  left_out = cols[max_plots:]
  if left_out:
    run.warnings.append(
      f'plots of {len(left_out)} scores left out (over {max_plots}): '
      + ', '.join(c.label for c in left_out)
    )
  counts_what = run.counts_note.split(':', 1)[-1].strip() if run.counts_note else ''
  plotted = []  # (score label, [(png filename, caption)]): bars, then the two small plots
  unplotted = []  # scores no language has --min-n examples for: an empty axis says nothing
  for col in cols[:max_plots]:
    group = []
    plot_run = report_data.large_enough(run, col, min_n)  # small languages stay off the plots
    if all(plot_run.score(l, col) is None for l in plot_run.results['languages']):
      unplotted.append(col.label)
      continue
    p = f'bars_{col.slug}.png'
    report_plots.bars(plot_run, col, os.path.join(out_dir, p))
    group.append(
      (
        p,
        f'{col.label}: per language, sorted (English outlined; red tick over each bar: its chance level)',
      )
    )
    p = f'vs_data_{col.slug}.png'
    if report_plots.score_vs_data(plot_run, col, os.path.join(out_dir, p)):
      group.append((p, f'{col.label} vs tuning examples in the language ({counts_what})'))
    p = f'scripts_{col.slug}.png'
    report_plots.script_boxes(plot_run, col, os.path.join(out_dir, p))
    group.append((p, f'{col.label} by script'))
    plotted.append((col.label, group))
  if unplotted:
    run.warnings.append(
      f'no plots of {", ".join(unplotted)}: no language has {min_n} examples or more (--min-n)'
    )
  headers = LANG_HEADERS + [h for c in cols for h in (f'{c.label} %', f'{c.label} 95% CI')]
  rows = language_rows(run, cols, order_col, min_n)
  headers, rows = _without_empty(headers, rows, ['Prompt chrF'])
  sums = [report_data.summarize(run, c, threshold, min_n) for c in cols]

  model = run.results.get('model') if isinstance(run.results.get('model'), dict) else {}
  model_rows = [[k, v if isinstance(v, (int, float, str)) else repr(v)] for k, v in model.items()]
  error_blocks = report_error_analysis.blocks(
    run.path, run.results, min_n, run.warnings, lambda code: language_label(run, code)
  )
  warnings = run.warnings + [w for o in others for w in o.warnings]
  title = f'Language report: {run.name}'
  stamp = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
  sources = ', '.join(f for f in report_data.RUN_FILES if os.path.exists(os.path.join(run.path, f)))
  model_line = '; '.join(f'{k}: {v}' for k, v in model_rows)

  blocks = [
    doc.Line(
      f'Generated {stamp} from {sources}. '
      f'{len(rows)} languages; scores in %; chance from results.json meta. Languages are '
      f'sorted by {order_col.label if order_col else "code"}'
      + (
        ' (--sort-by).' if sort_by else ' (the top-1 accuracy scored in most languages; --sort-by).'
      )
    )
  ]
  if model_line:
    blocks.append(doc.Line(f'Model: {model_line}'))
  blocks += how_to_read(min_n)
  blocks += headline_section(run, sums, threshold) + script_section(run, sums)
  blocks += comparison_blocks(run, others, cols, min_n, out_dir)
  blocks += error_blocks
  blocks.append(doc.Heading('Plots'))
  for label, group in plotted:
    blocks += [doc.Heading(label, 3), doc.Figures(group)]

  score_start = next((j for j, h in enumerate(headers) if h.endswith(' 95% CI')), len(headers)) - 1
  vmax = {
    j: max([v for r in rows if (v := _number(r[j])) is not None] or [0.0])
    for j in range(score_start, len(headers))
    if headers[j].endswith(' %')
  }

  def lang_style(i, j):
    return _heat(rows[i][j], vmax[j]) if j in vmax else None

  blocks.append(doc.Heading('Per language'))
  blocks.append(doc.Line(f'Sorted by {order_col.label if order_col else "code"}.'))
  if run.counts_note:
    blocks.append(doc.Line(run.counts_note + '.'))
  blocks.append(doc.Table(headers, rows, 3, cell_style=lang_style))
  if any('-way)' in str(c) for r in rows for c in r):
    blocks.append(doc.Line(FEWER_CANDIDATES_NOTE))
  if warnings:
    blocks += [doc.Heading('Input warnings'), doc.Bullets(warnings, css_class='warn')]

  paths = {'html': os.path.join(out_dir, 'index.html'), 'md': os.path.join(out_dir, 'report.md')}
  with open(paths['md'], 'w', encoding='utf-8') as f:
    f.write(doc.markdown(title, blocks))
  with open(paths['html'], 'w', encoding='utf-8') as f:
    f.write(doc.html_page(title, blocks, out_dir))
  return paths


def name_compared_runs(run: Run, others: list[Run]) -> None:
  """Gives every compared run a name of its own (equal names make the comparison columns
  ambiguous: 'x/s1' beside 's1'), and warns about one that is this run again (every Δ 0)."""
  taken = {run.name}
  tasks = _tasks(run)
  for o in others:
    if not tasks & (
      theirs := _tasks(o)
    ):  # the same model on other evaluations is not the run again
      run.warnings.append(
        f'--compare {o.path}: shares no evaluation with RUN_DIR (it has {_listed(theirs)}; '
        f'RUN_DIR has {_listed(tasks)}): its columns stay empty'
      )
    elif (why := report_data.same_run(run, o)) is not None:
      run.warnings.append(f'--compare {o.path}: {why}; its deltas compare the run with itself')
    if o.name in taken:
      o.name = _unique_name(o, taken)
    taken.add(o.name)


def _tasks(run: Run) -> set[str]:
  """The evaluations the run scored (those with a score column)."""
  return {c.task for c in report_data.score_columns(run)}


def _listed(tasks: set[str]) -> str:
  return ', '.join(sorted(tasks)) or 'none'


def _unique_name(o: Run, taken: set[str]) -> str:
  """The run folder with its parent ('x/s1'), numbered when that is taken too."""
  parent = os.path.basename(os.path.dirname(os.path.abspath(o.path)))
  name = f'{parent}/{o.name}' if parent else o.name
  i = 2
  candidate = name
  while candidate in taken:
    candidate, i = f'{name} #{i}', i + 1
  return candidate


def _error(message: str) -> int:
  print(f'mlit report: error: {message}', file=sys.stderr)
  return 2


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    prog='mlit report',
    description=__doc__.split('\n')[0],
    epilog='example:\n  mlit report runs/demo --compare runs/demo/compare/english_only --min-n 20\n  (runs/demo/compare/: make experiments)',
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument('run_dir', help='evaluation run directory holding results.json')
  p.add_argument(
    '--compare',
    nargs='+',
    default=[],
    metavar='OTHER',
    help='other run directories shown side by side with per-language deltas',
  )
  p.add_argument('--out', help='output directory (default RUN_DIR/report)')
  p.add_argument(
    '--threshold',
    type=float,
    default=0.05,
    help='list languages scoring below this fraction (default 0.05)',
  )
  p.add_argument(
    '--recall-k', type=int, default=None, help='recall@k shown for retrieval (default 1)'
  )
  p.add_argument(
    '--sort-by',
    metavar='TASK[:METRIC]',
    help='score the tables and summaries are sorted by, e.g. emoji_cldr/zeroshot_classification '
    '(default: the top-1 accuracy scored in most languages)',
  )
  p.add_argument(
    '--min-n',
    type=int,
    default=report_data.DEFAULT_MIN_N,
    help='languages scored on fewer examples are shown (marked †) but left out of macro '
    'averages and summary plots (default %(default)s)',
  )
  args = p.parse_args(argv)
  if not 0 < args.threshold <= 1:
    return _error(f'--threshold {args.threshold:g}: a fraction in (0, 1] is expected (5% is 0.05)')
  if args.min_n < 0:
    return _error(f'--min-n {args.min_n}: a count of examples, 0 or more')
  if args.recall_k is not None and args.recall_k < 1:
    return _error(f'--recall-k {args.recall_k}: k is 1 or more')
  try:
    run = report_data.load_run(args.run_dir)
    if not run.results['languages']:
      raise ValueError(
        f'{run_layout.results(args.run_dir)}: no language has results; nothing to report'
      )
    ks = report_data.recall_ks(run)
    if args.recall_k is not None and ks and args.recall_k not in ks:
      raise ValueError(
        f'--recall-k {args.recall_k}: the results have recall@k for k in {", ".join(map(str, ks))}'
      )
    if args.recall_k is not None and not ks:
      run.warnings.append(f'--recall-k {args.recall_k}: the results have no retrieval scores')
    others = [report_data.load_run(d) for d in args.compare]
    name_compared_runs(run, others)
    paths = build(
      run,
      others,
      args.out or run_layout.report(args.run_dir),
      args.threshold,
      args.recall_k or 1,
      min_n=args.min_n,
      sort_by=args.sort_by,
    )
  except (OSError, ValueError) as e:
    return _error(str(e))
  for w in run.warnings:
    print(f'warning: {w}', file=sys.stderr)
  print(f'wrote {paths["html"]} and {paths["md"]}')
  return 0
