"""WIT (Wikipedia-based Image Text) retrieval pairs, read from the released TSV files.

Give the test split files (wit_v1.test.all-*.tsv.gz; plain .tsv works too). Each file has
a header row and 17 tab-separated columns; fields may be quoted and span lines, so rows
are parsed with the csv module, not split on lines. Per language (the 'language' column,
e.g. 'en', 'iw', 'zh-TW': all 108 WIT languages are read, none is hard-coded) the pairs
are (image_url, text), text = the first non-empty of `text_fields` (default: the
reference description) with whitespace collapsed, de-duplicated by image_url (first row
kept), capped at `max_pairs` per language in file order. Skipped rows are counted per
language and reason, never fatal.
"""

import collections
import csv
import dataclasses
import glob
import gzip
import io
import re
import sys
from typing import Iterable, Sequence

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


def _open(path: str):
  raw = gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb')
  # newline='' lets csv see the line breaks inside quoted fields.
  return io.TextIOWrapper(raw, encoding='utf-8', errors='replace', newline='')


def _expand(paths: Sequence[str] | str) -> list[str]:
  if isinstance(paths, str):
    paths = [paths]
  files = []
  for p in paths:
    hits = sorted(glob.glob(p))
    if not hits:
      raise FileNotFoundError(f'no WIT file matches {p!r}')
    files.extend(hits)
  return files


def iter_rows(path: str, counts: collections.Counter) -> Iterable[dict]:
  """Rows of one file as dicts; malformed rows counted in `counts` and skipped."""
  csv.field_size_limit(sys.maxsize)
  with _open(path) as f:
    reader = csv.reader(f, delimiter='\t', quotechar='"')
    try:
      header = next(reader)
    except StopIteration:
      raise WitFormatError(f'{path}: empty file (expected a header row)') from None
    if tuple(header) != COLUMNS:
      missing = sorted(set(COLUMNS) - set(header))
      raise WitFormatError(
        f'{path}: line 1: header is not the 17 WIT columns'
        + (f' (missing {missing})' if missing else f': {header}')
      )
    while True:
      try:
        row = next(reader)
      except StopIteration:
        return
      except csv.Error:
        counts['csv_error'] += 1
        continue
      if len(row) != len(COLUMNS):
        counts['wrong_column_count'] += 1
        continue
      yield dict(zip(COLUMNS, row))


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
      raise ValueError(f'text field {t!r} is not a WIT column; choose from {COLUMNS}')
  wanted = set(languages) if languages else None
  out: dict[str, Pairs] = {}
  seen: dict[str, set] = collections.defaultdict(set)
  file_counts = collections.Counter()
  for path in _expand(paths):
    for row in iter_rows(path, file_counts):
      lang = row['language'].strip()
      if not lang:
        file_counts['no_language'] += 1
        continue
      if wanted is not None and lang not in wanted:
        continue
      pairs = out.setdefault(lang, Pairs())
      url = row['image_url'].strip()
      text = next((_SPACE.sub(' ', row[t]).strip() for t in text_fields if row[t].strip()), '')
      if not url:
        pairs.skipped['no_image_url'] += 1
      elif not text:
        pairs.skipped['no_text'] += 1
      elif url in seen[lang]:
        pairs.skipped['duplicate_image_url'] += 1
      elif max_pairs is not None and len(pairs.texts) >= max_pairs:
        pairs.skipped['over_cap'] += 1
      else:
        seen[lang].add(url)
        pairs.text_to_image.append(len(pairs.image_keys))
        pairs.image_keys.append(url)
        pairs.texts.append(text)
  return out, file_counts
