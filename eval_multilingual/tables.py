"""Plain tables (Markdown, CSV, escaped HTML) for the coverage and evaluation reports."""

import csv
import html
import io
import math
from typing import Any, Sequence


def fmt(value: Any, digits: int = 3) -> str:
  """Human-readable cell: '' for missing/NaN, fixed digits for floats, thousands for ints."""
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return ''
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, int):
    return f'{value:,}'
  if isinstance(value, float):
    return f'{value:.{digits}f}'
  return str(value)


_MD_SPECIAL = str.maketrans(
  {c: '\\' + c for c in '\\`*[]|'} | {'<': '&lt;', '>': '&gt;', '&': '&amp;', '\n': ' '}
)


def md_escape(text: str) -> str:
  """Data text as literal Markdown: no emphasis, links, HTML tags or table breaks.

  Underscores stay: GitHub Markdown ignores them inside words (emoji_cldr), the usual case.
  """
  return str(text).translate(_MD_SPECIAL)


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
  def cell(v):
    return md_escape(fmt(v, digits))

  lines = [
    '| ' + ' | '.join(cell(h) for h in headers) + ' |',
    '|' + '|'.join('---' for _ in headers) + '|',
  ]
  lines += ['| ' + ' | '.join(cell(v) for v in row) + ' |' for row in rows]
  return '\n'.join(lines) + '\n'


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator='\n')
  writer.writerow(headers)
  for row in rows:
    writer.writerow(['' if v is None else v for v in row])
  return buf.getvalue()


def html_table(
  headers: Sequence[str],
  rows: Sequence[Sequence[Any]],
  digits: int = 3,
  cell_style=None,
  numeric_cols: Sequence[int] = (),
  table_class: str = 'data',
) -> str:
  """Escaped HTML table; cell_style(row_index, col_index) -> inline CSS or None."""
  out = [f'<table class="{html.escape(table_class)}"><thead><tr>']
  out += [f'<th>{html.escape(str(h))}</th>' for h in headers]
  out.append('</tr></thead><tbody>')
  for i, row in enumerate(rows):
    out.append('<tr>')
    for j, v in enumerate(row):
      styles = []
      if j in numeric_cols or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        styles.append('text-align:right')
      extra = cell_style(i, j) if cell_style else None
      if extra:
        styles.append(extra)
      attr = f' style="{html.escape(";".join(styles))}"' if styles else ''
      out.append(f'<td{attr}>{html.escape(fmt(v, digits))}</td>')
    out.append('</tr>')
  out.append('</tbody></table>')
  return ''.join(out)
