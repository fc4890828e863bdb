"""Matplotlib (Agg) figures of the language report: bars, score vs data, per-script boxes, deltas."""

import math

import matplotlib

matplotlib.use('Agg')
import matplotlib.lines  # pylint: disable=g-import-not-at-top,wrong-import-position
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from eval_multilingual import languages, report_data

# Colour per script, stable across figures; scripts beyond the palette are grey.
_PALETTE = (
  '#4c72b0',
  '#dd8452',
  '#55a868',
  '#c44e52',
  '#8172b3',
  '#937860',
  '#da8bc3',
  '#8c8c8c',
  '#ccb974',
  '#64b5cd',
  '#2f4b7c',
  '#a05195',
)
_OTHER = '#bbbbbb'


def _safe(text: str) -> str:
  # '$' starts mathtext in matplotlib; data text must stay literal.
  return str(text).replace('$', r'\$')


def _tick(code: str) -> str:
  code = _safe(code)
  return code if len(code) <= 12 else code[:11] + '…'


def script_colors(scripts) -> dict[str, str]:
  counts = {}
  for s in scripts:
    counts[s] = counts.get(s, 0) + 1
  ranked = sorted(counts, key=lambda s: (-counts[s], s))
  return {s: (_PALETTE[i] if i < len(_PALETTE) else _OTHER) for i, s in enumerate(ranked)}


def _legend(ax, colors: dict[str, str], used, outside: bool = False, extra=()) -> None:
  """Every palette script by name; the scripts beyond the palette, drawn grey, as one entry
  that names them (a grey bar must not go unexplained)."""
  named = [s for s in colors if s in used and colors[s] != _OTHER]
  handles = [plt.Rectangle((0, 0), 1, 1, color=colors[s]) for s in named]
  labels = [_safe(languages.SCRIPT_NAMES.get(s, s)) for s in named]
  other = sorted(s for s in colors if s in used and colors[s] == _OTHER)
  if other:
    handles.append(plt.Rectangle((0, 0), 1, 1, color=_OTHER))
    labels.append(_safe(other_scripts_label(other)))
  for handle, label in extra:  # other marks of the plot (chance), after the scripts
    handles.append(handle)
    labels.append(label)
  if handles:
    where = (
      dict(loc='upper left', bbox_to_anchor=(1.01, 1.0)) if outside else dict(loc='upper right')
    )
    ax.legend(
      handles,
      labels,
      fontsize=7,
      ncol=1 if outside else 2,
      title='script',
      title_fontsize=7,
      framealpha=0.85,
      **where,
    )


def other_scripts_label(scripts) -> str:
  shown = ', '.join(scripts[:6]) + (f' +{len(scripts) - 6}' if len(scripts) > 6 else '')
  return f'other scripts ({shown})'


def bars(run: report_data.Run, col: report_data.Column, path: str) -> None:
  """Per-language bars sorted by score, coloured by script, with chance level."""
  langs = [l for l in report_data.ordered_languages(run, col) if run.score(l, col) is not None]
  scripts = {l: report_data.language_info(run, l).script for l in langs}
  colors = script_colors(scripts.values())
  width = min(40.0, max(6.0, 0.16 * len(langs) + 2.0))
  fig, ax = plt.subplots(figsize=(width, 3.8))
  vals = [100 * run.score(l, col) for l in langs]
  ax.bar(range(len(langs)), vals, color=[colors[scripts[l]] for l in langs], width=0.8)
  if 'en' in langs:
    i = langs.index('en')
    ax.bar([i], [vals[i]], color='none', edgecolor='black', linewidth=1.2, width=0.8)
  _chance_marks(ax, [report_data.chance(run, l, col) for l in langs])
  ax.set_xticks(range(len(langs)), [_tick(l) for l in langs], rotation=90, fontsize=7)
  ax.set_xlim(-0.6, len(langs) - 0.4)
  ax.set_ylabel(f'{_safe(col.label)} [%]')
  ax.set_title(_safe(f'{run.name}: {col.label} per language (English outlined)'), fontsize=10)
  ax.grid(axis='y', alpha=0.3)
  chance_handle = matplotlib.lines.Line2D([], [], color=_CHANCE, lw=1.2)
  _legend(ax, colors, set(scripts.values()), extra=[(chance_handle, 'chance (per language)')])
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


_CHANCE = 'black'  # the palette's red is a script's colour: black shows on every bar


def _chance_marks(ax, chances: list[float | None]) -> None:
  """A short line over each bar at its own chance level: languages are scored among
  different numbers of candidates (4 to 371 classes), so one line for all would mislead."""
  xs = [i for i, c in enumerate(chances) if c is not None]
  if xs:
    ys = [100 * chances[i] for i in xs]
    ax.hlines(ys, [x - 0.45 for x in xs], [x + 0.45 for x in xs], colors=_CHANCE, lw=1.2, zorder=3)


def score_vs_data(run: report_data.Run, col: report_data.Column, path: str) -> bool:
  """Score against tuning examples per language (log x). False when no counts are known."""
  pts = [
    (l, report_data.n_tuning_examples(run, l), run.score(l, col)) for l in run.results['languages']
  ]
  pts = [(l, n, s) for l, n, s in pts if n is not None and s is not None]
  if not pts:
    return False
  scripts = {l: report_data.language_info(run, l).script for l, _, _ in pts}
  colors = script_colors(scripts.values())
  fig, ax = plt.subplots(figsize=(8.5, 4.8))
  groups = {}  # one scatter call per (script colour, hollow): a call per point cost seconds
  for l, n, s in pts:
    x = max(n, 1)  # zero examples cannot sit on a log axis: drawn hollow at 1
    groups.setdefault((colors[scripts[l]], n > 0), []).append((x, 100 * s))
    ax.annotate(_tick(l), (x, 100 * s), fontsize=6.5, xytext=(3, 2), textcoords='offset points')
  for (color, filled), xy in groups.items():
    xs, ys = zip(*xy)
    ax.scatter(xs, ys, s=28, facecolor=color if filled else 'none', edgecolor=color, zorder=3)
  ax.set_xscale('log')
  ax.set_xlabel('tuning examples in the language (log; hollow = none)')
  ax.set_ylabel(f'{_safe(col.label)} [%]')
  ax.set_title(_safe(f'{run.name}: {col.label} vs tuning data'), fontsize=10)
  ax.grid(alpha=0.3, which='both')
  _legend(ax, colors, set(scripts.values()), outside=True)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def script_boxes(run: report_data.Run, col: report_data.Column, path: str) -> None:
  """Score distribution per script (box + every language as a point)."""
  groups = {}
  for l in run.results['languages']:
    s = run.score(l, col)
    if s is not None:
      groups.setdefault(report_data.language_info(run, l).script, []).append(100 * s)
  order = sorted(groups, key=lambda k: -sorted(groups[k])[len(groups[k]) // 2])
  fig, ax = plt.subplots(figsize=(min(11.0, max(5.0, 0.5 * len(order) + 2)), 4.8))
  data = [groups[k] for k in order]
  ax.boxplot(data, widths=0.55, showfliers=False)
  for i, vals in enumerate(data, 1):
    # Deterministic spread so overlapping points stay visible.
    xs = [i + 0.18 * (((j * 0.618) % 1.0) - 0.5) for j in range(len(vals))]
    ax.scatter(xs, vals, s=12, alpha=0.7, color='#4c72b0', zorder=3)
  labels = [f'{_safe(languages.SCRIPT_NAMES.get(k, k))}\n(n={len(groups[k])})' for k in order]
  ax.set_xticks(range(1, len(order) + 1), labels, fontsize=7, rotation=60, ha='right')
  ax.set_ylabel(f'{_safe(col.label)} [%]')
  ax.set_title(_safe(f'{run.name}: {col.label} by script'), fontsize=10)
  ax.grid(axis='y', alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def delta_bars(base: report_data.Run, others, col: report_data.Column, path: str) -> bool:
  """Per-language deltas (other − base) in points, one panel per compared run."""
  panels = [(o, report_data.deltas(base, o, col)) for o in others]
  panels = [(o, d) for o, d in panels if d]
  if not panels:
    return False
  n = max(len(d) for _, d in panels)
  width = min(40.0, max(6.0, 0.16 * n + 2.0))
  fig, axes = plt.subplots(len(panels), 1, figsize=(width, 3.4 * len(panels)), squeeze=False)
  for ax, (other, d) in zip(axes[:, 0], panels):
    langs = sorted(d, key=lambda l: (-d[l], l))
    vals = [100 * d[l] for l in langs]
    ax.bar(
      range(len(langs)), vals, width=0.8, color=['#55a868' if v >= 0 else '#c44e52' for v in vals]
    )
    ax.axhline(0, color='black', lw=0.8)
    mean = sum(vals) / len(vals)
    ax.axhline(mean, color='#4c72b0', ls='--', lw=1, label=f'mean {mean:+.1f}')
    ax.set_xticks(range(len(langs)), [_tick(l) for l in langs], rotation=90, fontsize=7)
    ax.set_xlim(-0.6, len(langs) - 0.4)
    ax.set_ylabel('Δ [points]')
    ax.set_title(_safe(f'{col.label}: {other.name} − {base.name}'), fontsize=10)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8, loc='upper right')
    lim = max(1.0, max(abs(v) for v in vals) * 1.1)
    if math.isfinite(lim):
      ax.set_ylim(-lim, lim)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True
