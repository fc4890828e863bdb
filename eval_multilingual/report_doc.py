"""The report as one list of blocks, rendered twice: Markdown (report.md) and HTML (index.html).

The HTML is one self-contained file: figures are embedded as base64 PNG and every text is
escaped. Presentation that only HTML has (cell colours, a collapsed table) rides on the block.
"""

import base64
import dataclasses
import html
import os
from typing import Callable, Sequence, Union

from eval_multilingual import tables

CellStyle = Callable[[int, int], Union[str, None]]  # (row, column) -> inline CSS or None


@dataclasses.dataclass
class Heading:
  text: str
  level: int = 2


@dataclasses.dataclass
class Line:
  """A sentence under the title (HTML: a grey subtitle)."""

  text: str


@dataclasses.dataclass
class Table:
  headers: list
  rows: list
  numeric_from: int  # columns from here on are right-aligned in HTML
  cell_style: CellStyle | None = None
  collapsed: bool = False  # HTML: behind a 'table' toggle


@dataclasses.dataclass
class Bullets:
  items: Sequence[str]
  css_class: str = ''


@dataclasses.dataclass
class Figures:
  """PNG files in the output folder with captions; HTML puts all after the first in one row."""

  items: Sequence[tuple[str, str]]  # (file name, caption)


Block = Union[Heading, Line, Table, Bullets, Figures]


def markdown(title: str, blocks: Sequence[Block]) -> str:
  """Every text is escaped (run names, language names, warnings come from data files)."""
  esc = tables.md_escape
  out = [f'# {esc(title)}\n']
  for b in blocks:
    if isinstance(b, Heading):
      out.append(f'{"#" * b.level} {esc(b.text)}\n')
    elif isinstance(b, Line):
      out.append(f'{esc(b.text)}\n')
    elif isinstance(b, Table):
      out.append(tables.markdown(b.headers, b.rows))
    elif isinstance(b, Bullets):
      out += [f'- {esc(item)}' for item in b.items] + ['']
    elif isinstance(b, Figures):
      out += [f'![{esc(caption)}]({path})\n' for path, caption in b.items]
  return '\n'.join(out)


_CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ddd;
padding-bottom:4px;margin-top:32px}h3{font-size:15px}
.sub{color:#666;font-size:13px}
table.data{border-collapse:collapse;font-size:12.5px;margin:8px 0}
table.data th{background:#f3f3f3;position:sticky;top:0;text-align:left;padding:4px 8px;
border-bottom:2px solid #ccc}
table.data td{padding:3px 8px;border-bottom:1px solid #eee}
table.data tr:hover td{background-color:#f7fbff}
figure{margin:12px 0}figure img{max-width:100%;height:auto}
.row{display:flex;gap:12px;align-items:flex-start}.row figure{flex:1;min-width:0}
details summary{cursor:pointer;color:#4c72b0;font-size:13px}
figcaption{color:#666;font-size:12px}
.warn{color:#8a5300;font-size:12px}
"""


def _figure(path: str, caption: str) -> str:
  with open(path, 'rb') as f:
    data = base64.b64encode(f.read()).decode('ascii')
  return (
    f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
    f'<figcaption>{html.escape(caption)}</figcaption></figure>'
  )


def _html_block(b: Block, out_dir: str) -> list[str]:
  if isinstance(b, Heading):
    return [f'<h{b.level}>{html.escape(b.text)}</h{b.level}>']
  if isinstance(b, Line):
    return [f'<div class="sub">{html.escape(b.text)}</div>']
  if isinstance(b, Table):
    numeric = tuple(range(b.numeric_from, len(b.headers)))
    table = tables.html_table(b.headers, b.rows, cell_style=b.cell_style, numeric_cols=numeric)
    return [f'<details><summary>table</summary>{table}</details>' if b.collapsed else table]
  if isinstance(b, Bullets):
    cls = f' class="{html.escape(b.css_class)}"' if b.css_class else ''
    return [f'<ul{cls}>' + ''.join(f'<li>{html.escape(i)}</li>' for i in b.items) + '</ul>']
  if isinstance(b, Figures):
    first, *rest = [_figure(os.path.join(out_dir, p), caption) for p, caption in b.items]
    return [first] + (['<div class="row">' + ''.join(rest) + '</div>'] if rest else [])
  raise TypeError(f'not a report block: {b!r}')


def html_page(title: str, blocks: Sequence[Block], out_dir: str) -> str:
  """index.html; figure files are read from out_dir."""
  out = [
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
    f'<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>',
    f'<h1>{html.escape(title)}</h1>',
  ]
  for b in blocks:
    out += _html_block(b, out_dir)
  out.append('</body></html>')
  return '\n'.join(out)
