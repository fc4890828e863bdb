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
      + [v for c in cols for v in (_pct(run.score(lang, c)), _ci(run, lang, c, min_n))]
    )
  return rows


def _names(run: Run, codes: list[str]) -> str:
  return ', '.join(f'{report_data.language_info(run, c).name} ({c})' for c in codes) or 'none'


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
    'English − median',
    'At/below chance',
    f'Below {_pct(threshold)}%',
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
      ]
    )
    if s.below_chance:
      notes.append(f'{s.col.label}, at or below chance: {_names(run, s.below_chance)}.')
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


def script_section(sums: list[report_data.Summary]) -> list[doc.Block]:
  """Per writing system: languages, and mean/median of every score."""
  per = {}
  for s in sums:
    for script, n, mean, med, lo, hi in s.by_script:
      per.setdefault(script, {'n': 0})
      per[script]['n'] = max(per[script]['n'], n)
      per[script][s.col] = (mean, med, lo, hi)
  headers = ['Script', 'Languages'] + [f'{s.col.label} mean / median %' for s in sums]
  if sums:
    headers += [f'Lowest / highest ({sums[0].col.label})']
  first = sums[0].col if sums else None
  order = sorted(per, key=lambda k: -(per[k].get(first, (0, 0))[1]))
  rows = []
  for k in order:
    row = [f'{languages.SCRIPT_NAMES.get(k, k)} ({k})', per[k]['n']]
    row += [
      f'{_pct(per[k][s.col][0])} / {_pct(per[k][s.col][1])}' if s.col in per[k] else ''
      for s in sums
    ]
    if first in per[k]:
      row.append(f'{per[k][first][2]} / {per[k][first][3]}')
    rows.append(row)
  return [doc.Heading('By script'), doc.Table(headers, rows, 1)]


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
  try:
    v = float(value_text)
  except ValueError:
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
    group.append((p, f'{col.label}: per language, sorted (English outlined; dashed: chance)'))
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
  sums = [report_data.summarize(run, c, threshold, min_n) for c in cols]

  model = run.results.get('model') if isinstance(run.results.get('model'), dict) else {}
  model_rows = [[k, v if isinstance(v, (int, float, str)) else repr(v)] for k, v in model.items()]
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
  blocks += headline_section(run, sums, threshold) + script_section(sums)
  if others:
    blocks.append(doc.Heading('Comparison (Δ = other − this run, points)'))
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
  blocks += report_error_analysis.blocks(run.path, run.results)
  blocks.append(doc.Heading('Plots'))
  for label, group in plotted:
    blocks += [doc.Heading(label, 3), doc.Figures(group)]

  score_start = len(LANG_HEADERS)
  vmax = {
    j: max([float(r[j]) for r in rows if r[j]] or [0.0])
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
  if warnings:
    blocks += [doc.Heading('Input warnings'), doc.Bullets(warnings, css_class='warn')]

  paths = {'html': os.path.join(out_dir, 'index.html'), 'md': os.path.join(out_dir, 'report.md')}
  with open(paths['md'], 'w', encoding='utf-8') as f:
    f.write(doc.markdown(title, blocks))
  with open(paths['html'], 'w', encoding='utf-8') as f:
    f.write(doc.html_page(title, blocks, out_dir))
  return paths


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
    taken = {run.name}
    for o in others:  # Equal names would make the comparison columns ambiguous.
      if o.name in taken:
        o.name = f'{o.name} ({os.path.basename(os.path.normpath(o.path))})'
      taken.add(o.name)
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
