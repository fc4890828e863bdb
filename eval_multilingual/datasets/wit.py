"""WIT (Wikipedia-based Image Text) retrieval pairs, read from the released TSV files.

Give the test split files (wit_v1.test.all-*.tsv.gz; plain .tsv works too). Each file has
a header row and 17 tab-separated columns; fields may be quoted and span lines, so rows
are parsed with the csv module, not split on lines. Per language (the 'language' column,
e.g. 'en', 'iw', 'zh-TW': all 108 WIT languages are read, none is hard-coded) the pairs
are (image_url, text), text = the first non-empty of `text_fields` (default: the
reference description) with whitespace collapsed, de-duplicated by image_url (first row
kept), capped at `max_pairs` per language in file order. Skipped rows are counted per
language and reason, never fatal; the rows no language can hold (wrong column count, bad
quoting, a byte that is not UTF-8, no language, a .gz cut short or corrupt: the rows before the
damage are read) are counted per reason in the file-level counts, and one warning line per
reason names the count and the first rows ('path:line').
"""

import collections
import csv
import dataclasses
import glob
import logging
import re
import sys
from typing import Iterable, Sequence

from tasks import file_io
from tasks import wit as wit_columns
from tasks.user_error import UserError

COLUMNS = wit_columns.COLUMNS  # one WIT schema for training and evaluation
DEFAULT_TEXT_FIELDS = ('caption_reference_description',)
_SPACE = re.compile(r'\s+')


class WitFormatError(UserError):
  pass


@dataclasses.dataclass
class Pairs:
  """Retrieval pairs of one language: texts[i] describes image_keys[text_to_image[i]]."""

  texts: list[str] = dataclasses.field(default_factory=list)
  image_keys: list[str] = dataclasses.field(default_factory=list)
  text_to_image: list[int] = dataclasses.field(default_factory=list)
  skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)


class SkipLog:
  """Counts skipped rows per reason and keeps the first few places ('path:line') of each."""

  SHOWN = 3

  def __init__(self):
    self.first: dict[str, list[str]] = {}

  def __call__(self, reason: str, where: str) -> None:
    shown = self.first.setdefault(reason, [])
    if len(shown) < self.SHOWN:
      shown.append(where)

  def warn(self, source: str, counts: dict) -> None:
    """One warning line per reason: `counts[reason]` rows skipped, the first named."""
    for reason, n in sorted(counts.items()):
      logging.warning(
        '%s: skipped %d row%s: %s (first: %s)',
        source,
        n,
        '' if n == 1 else 's',
        reason,
        ', '.join(self.first.get(reason, [])),
      )


def expand(paths: Sequence[str] | str) -> list[str]:
  if isinstance(paths, str):
    paths = [paths]
  files = []
  for p in paths:
    hits = sorted(glob.glob(p))
    if not hits:
      raise FileNotFoundError(f'no WIT file matches {p!r}')
    files.extend(hits)
  return files


def iter_rows(
  path: str, counts: collections.Counter, log: SkipLog | None = None
) -> Iterable[tuple[str, dict]]:
  """('path:line', row as a dict) of one file; malformed rows counted in `counts` (and their places given to
  `log`) and skipped. A row's place is 'path:line' of its first line."""
  log = log or SkipLog()
  csv.field_size_limit(sys.maxsize)
  with file_io.open_text(path) as f:  # a bad byte marks its row (has_invalid_utf8), no more
    reader = csv.reader(f, delimiter='\t', quotechar='"')
    try:
      header = next(reader)
    except StopIteration:
      raise WitFormatError(f'{path}: empty file (expected a header row)') from None
    except file_io.DAMAGED_FILE_ERRORS as e:
      raise WitFormatError(f'{path}: line 1: unreadable ({type(e).__name__}: {e})') from e
    if tuple(header) != COLUMNS:
      missing = sorted(set(COLUMNS) - set(header))
      raise WitFormatError(
        f'{path}: line 1: header is not the 17 WIT columns'
        + (f' (missing {missing})' if missing else f': {header}')
      )
    while True:
      where = f'{path}:{reader.line_num + 1}'
      try:
        row = next(reader)
      except StopIteration:
        return
      except csv.Error:
        counts['csv_error'] += 1
        log('csv_error', where)
        continue
      except file_io.DAMAGED_FILE_ERRORS as e:  # a cut .gz: the rows before it are kept
        counts['damaged_file'] += 1
        log('damaged_file', file_io.damaged_at(path, reader.line_num + 1, e))
        return
      if len(row) != len(COLUMNS):
        counts['wrong_column_count'] += 1
        log('wrong_column_count', where)
        continue
      if any(file_io.has_invalid_utf8(v) for v in row):  # was kept with U+FFFD in its text
        counts['invalid_utf8'] += 1
        log('invalid_utf8', where)
        continue
      yield where, dict(zip(COLUMNS, row))


def read_wit(
  paths: Sequence[str] | str,
  *,
  languages: Sequence[str] | None = None,
  text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
  max_pairs: int | None = 5000,
) -> tuple[dict[str, Pairs], collections.Counter]:
  """Reads WIT TSV files: ({language: Pairs}, file-level skip counts)."""
  for t in text_fields:
    if t not in COLUMNS:
      raise UserError(f'text_fields: {t!r} is not a WIT column; choose from {", ".join(COLUMNS)}')
  wanted = set(languages) if languages else None
  out: dict[str, Pairs] = {}
  seen: dict[str, set] = collections.defaultdict(set)
  file_counts, log, lang_counts = collections.Counter(), SkipLog(), collections.Counter()

  def skip(pairs: Pairs, lang: str, reason: str, where: str) -> None:
    pairs.skipped[reason] += 1
    lang_counts[f'{reason} ({lang})'] += 1
    log(f'{reason} ({lang})', where)

  files = expand(paths)
  for path in files:
    for where, row in iter_rows(path, file_counts, log):
      lang = row['language'].strip()
      if not lang:
        file_counts['no_language'] += 1
        log('no_language', where)
        continue
      if wanted is not None and lang not in wanted:
        continue
      pairs = out.setdefault(lang, Pairs())
      url = row['image_url'].strip()
      text = next((_SPACE.sub(' ', row[t]).strip() for t in text_fields if row[t].strip()), '')
      if not url:
        skip(pairs, lang, 'no_image_url', where)
      elif not text:
        skip(pairs, lang, 'no_text', where)
      elif url in seen[lang]:
        skip(pairs, lang, 'duplicate_image_url', where)
      elif max_pairs is not None and len(pairs.texts) >= max_pairs:
        pairs.skipped['over_cap'] += 1  # a chosen cap, not a fault of the row
      else:
        seen[lang].add(url)
        pairs.text_to_image.append(len(pairs.image_keys))
        pairs.image_keys.append(url)
        pairs.texts.append(text)
  log.warn(
    f'WIT ({len(files)} file{"" if len(files) == 1 else "s"})', {**file_counts, **lang_counts}
  )
  return out, file_counts
