"""TSV and JSONL files read line by line: a malformed line is counted by reason and skipped.

`skip(reason, where)` receives every skipped line (`where` = 'path:line'): seqio sources pass
tasks.data_stats.skip, one-off readers a Counter's bump. Blank lines and a byte order mark are ignored. Files may be
plain, .gz or .bz2, local or on any tf.io.gfile filesystem; one cut short or corrupt is one skip
('damaged_file', where it broke), its lines before that read.
"""

import codecs
import json
from typing import Callable, Iterator

from tasks import file_io

Skip = Callable[[str, str], None]


def text_lines(path: str, skip: Skip) -> Iterator[tuple[str, str]]:
  """(where, line without its line break) of every non-blank line that is UTF-8."""
  line_no = 0

  def damaged(error):  # a cut .gz: its lines so far stay counted
    skip('damaged_file', file_io.damaged_at(path, line_no + 1, error))

  with file_io.open_binary(path) as f:
    for line_no, raw in file_io.until_damaged(enumerate(f, 1), damaged):
      if line_no == 1 and raw.startswith(codecs.BOM_UTF8):  # a Windows editor's mark, not text
        raw = raw[len(codecs.BOM_UTF8) :]
      where = f'{path}:{line_no}'
      if not raw.strip():
        continue
      try:
        line = raw.rstrip(b'\r\n').decode('utf-8')
      except UnicodeDecodeError:
        skip('invalid_utf8', where)
        continue
      yield where, line


def tsv_rows(path: str, skip: Skip) -> Iterator[tuple[str, list[str]]]:
  """(where, columns) of every non-blank line (no header handling, no quoting)."""
  for where, line in text_lines(path, skip):
    yield where, line.split('\t')


def jsonl_objects(path: str, skip: Skip) -> Iterator[tuple[str, dict]]:
  """(where, object) of every line holding a JSON object."""
  for where, line in text_lines(path, skip):
    try:
      obj = json.loads(line)
    except json.JSONDecodeError:
      skip('invalid_json', where)
      continue
    if not isinstance(obj, dict):
      skip('not_an_object', where)
      continue
    yield where, obj


def counting(counter) -> Skip:
  """A `skip` that counts reasons in `counter` (a collections.Counter)."""
  return lambda reason, where: counter.update((reason,))
