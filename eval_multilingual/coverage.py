"""`mlit coverage --vocab X.model TEXTS...`: how well a SentencePiece vocabulary covers each language.

Per language: tokens per word (per character for scripts written without spaces), the share of
pieces that are byte-fallback pieces (<0xNN>), the share of unknown pieces, and the share of texts
longer than the tuning length (16 tokens, counting the EOS the tasks append). Inputs are TSV (header
with a language column), JSONL (objects with a language field) or plain text, one text per line,
whose language comes from --lang or from langdetect.
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'coverage')  # `python -m`: the command, before the heavy imports

import argparse
import collections
import csv
import dataclasses
import functools
import glob
import gzip
import json
import math
import os
import sys
from typing import Iterable, Iterator

import sentencepiece as spm

from eval_multilingual import languages, tables
from tasks import file_io, langid, language_codes, line_files
from tasks.user_error import UserError

LANG_FIELDS = ('language', 'lang', 'locale')
TEXT_FIELDS = ('text', 'caption', 'caption_reference_description', 'title', 'sentence')


@dataclasses.dataclass
class Counts:
  """Running sums for one language."""

  n_texts: int = 0
  n_tokens: int = 0
  n_words: int = 0
  n_chars: int = 0
  n_byte: int = 0
  n_unk: int = 0
  n_truncated: int = 0

  def add(self, other: 'Counts') -> None:
    for f in dataclasses.fields(self):
      setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@functools.lru_cache(maxsize=4)
def load_sentencepiece(path: str, flag: str = '--vocab') -> spm.SentencePieceProcessor:
  """The SentencePiece model at `path`, or one line naming the flag and what is wrong with it
  (SentencePiece aborts the process on a directory and raises a bare RuntimeError on other files)."""
  if not os.path.exists(path):
    raise UserError(f'{flag} {path}: no such file')
  if not os.path.isfile(path):
    raise UserError(f'{flag} {path}: a directory, not a SentencePiece .model file')
  try:
    return spm.SentencePieceProcessor(model_file=path)
  except (RuntimeError, OSError) as e:
    raise UserError(f'{flag} {path}: not a SentencePiece model ({" ".join(str(e).split())})') from e


def _byte_ids(sp: spm.SentencePieceProcessor) -> frozenset[int]:
  # Once per model: a scan of a 32k vocabulary per language cost seconds over 100+ languages.
  return frozenset(i for i in range(sp.get_piece_size()) if sp.is_byte(i))


def count_texts(
  sp: spm.SentencePieceProcessor, texts: list[str], max_len: int = 16, count_eos: bool = True
) -> Counts:
  """Token statistics of `texts` under `sp`. A text is truncated when its ids (+EOS) > max_len."""
  c = Counts()
  byte_ids = _byte_ids(sp)
  unk = sp.unk_id()
  for text, ids in zip(texts, sp.encode(texts)):
    c.n_texts += 1
    c.n_tokens += len(ids)
    c.n_words += len(text.split())
    c.n_chars += sum(1 for ch in text if not ch.isspace())
    c.n_byte += sum(1 for i in ids if i in byte_ids)
    c.n_unk += sum(1 for i in ids if i == unk)
    c.n_truncated += int(len(ids) + int(count_eos) > max_len)
  return c


def summarize(code: str, c: Counts) -> dict:
  """Counts -> the tokenizer_stats.json record (plus unit-aware tokens per word/char)."""

  def ratio(a, b):
    return a / b if b else None

  spaces = languages.uses_spaces(code)
  per_word, per_char = ratio(c.n_tokens, c.n_words), ratio(c.n_tokens, c.n_chars)
  return {
    'tokens_per_word': per_word,
    'tokens_per_char': per_char,
    'unit': 'word' if spaces else 'char',
    'tokens_per_unit': per_word if spaces else per_char,
    'byte_fallback_share': ratio(c.n_byte, c.n_tokens),
    'unk_share': ratio(c.n_unk, c.n_tokens),
    'truncated_share': ratio(c.n_truncated, c.n_texts),
    'n_texts': c.n_texts,
    'n_tokens': c.n_tokens,
  }


class InputReader:
  """Reads (language, text) pairs from TSV/JSONL/plain text; counts malformed rows per reason."""

  def __init__(
    self,
    lang: str | None = None,
    lang_field: str | None = None,
    text_field: str | None = None,
    detect: bool = True,
  ):
    """detect=False: a text without a language is 'und' (kept), not detected with langdetect."""
    self.lang, self.lang_field, self.text_field = lang, lang_field, text_field
    self.detect = detect
    self.skipped = collections.Counter()
    # Texts whose language could not be detected, per Unicode script (ISO 15924).
    self.undetectable_scripts = collections.Counter()
    # Texts per language whose language came from langdetect, not from --lang or a field.
    self.detected = collections.Counter()
    # The first JSONL row without a text field: (where, its fields), for the hint.
    self.first_without_text: tuple[str, list[str]] | None = None
    # Where the first row skipped for each reason is ('path:line', or the file), for its line.
    self.first_skipped: dict[str, str] = {}

  def _skip(self, reason: str, where: str) -> None:
    self.skipped[reason] += 1
    self.first_skipped.setdefault(reason, where)

  def undetectable_message(self) -> str | None:
    """One line on the texts dropped as undetectable, by script, and how to keep them."""
    if not self.undetectable_scripts:
      return None
    by_script = ', '.join(
      f'{languages.SCRIPT_NAMES.get(s, s)} ({s}) {n}'
      for s, n in self.undetectable_scripts.most_common()
    )
    return (
      f'skipped {sum(self.undetectable_scripts.values())} rows: language not detectable, by '
      f'script: {by_script}. Pass --lang CODE when every text is in one language, or give a '
      'TSV/JSONL with a language column (--lang-field)'
    )

  def read(self, path: str) -> Iterator[tuple[str, str]]:
    name = path[:-3] if path.endswith('.gz') else path
    if name.endswith(('.jsonl', '.json')):
      yield from self._jsonl(path)
    elif name.endswith('.tsv'):
      yield from self._tsv(path)
    else:
      yield from self._plain(path)

  def _open(self, path):
    opener = gzip.open if path.endswith('.gz') else open
    # A bad byte is one row skipped (file_io.has_invalid_utf8), not the file's end.
    return opener(path, 'rt', encoding='utf-8-sig', errors='surrogateescape', newline='')

  def _pick(self, keys, wanted, defaults, path, what):
    if wanted:
      if wanted not in keys:
        raise UserError(f'{path}: no {what} field {wanted!r} (fields: {sorted(keys)})')
      return wanted
    for k in defaults:
      if k in keys:
        return k
    return None

  def _emit(self, lang, text, where):
    lang = self.lang or (lang or '').strip()
    text = (text or '').strip()
    if not text:
      self._skip('empty_text', where)
      return None
    # Every text seen without a language is detected (no minimum length).
    detected = not lang
    if detected and not self.detect:
      return language_codes.UNDETERMINED, text
    lang = language_codes.normalize(lang) if lang else langid.detect_language(text, min_length=1)
    if lang == language_codes.UNDETERMINED:
      self.skipped['language_not_detectable'] += 1
      self.undetectable_scripts[languages.detect_script(text)] += 1
      return None
    if detected:
      self.detected[lang] += 1
    return lang, text

  def skipped_lines(self) -> list[str]:
    """'skipped N rows: reason' per reason, the JSONL rows without a text field with
    no_text_hint; not the undetectable languages (undetectable_message says those, by script)."""
    return [
      f'skipped {n:,} row{"s" if n != 1 else ""}: {reason}'
      + (
        self.no_text_hint()
        if reason == 'no_text_field'
        else f' (the first: {self.first_skipped[reason]})'
        if reason in self.first_skipped
        else ''
      )
      for reason, n in sorted(self.skipped.items())
      if reason != 'language_not_detectable'
    ]

  def why_nothing_was_read(self) -> str:
    """The end of the one line for files that gave no text: ' (skipped: reason N, ...)' and
    no_text_hint."""
    skipped = ', '.join(f'{r} {n}' for r, n in sorted(self.skipped.items()))
    return (f' (skipped: {skipped})' if skipped else '') + self.no_text_hint()

  def no_text_hint(self) -> str:
    """Where the first JSONL row without a text field is, its fields and the flag that names
    one (a user's own JSONL rarely calls its text 'text'); '' when every row had one."""
    if self.first_without_text is None:
      return ''
    where, fields = self.first_without_text
    wanted = repr(self.text_field) if self.text_field else f'any of {", ".join(TEXT_FIELDS)}'
    return (
      f'; the first, {where}, has fields {", ".join(fields) or "(none)"} and no string in '
      f'{wanted}: name the text field with --text-field'
    )

  def detection_warning(self) -> str | None:
    """One line when any language was guessed: langdetect on short texts mixes up related
    languages (Hindi as Nepali or Marathi, Ukrainian/Russian/Bulgarian/Macedonian)."""
    if not self.detected:
      return None
    return (
      f'warning: the language of {sum(self.detected.values())} texts ({len(self.detected)} '
      'languages) was detected, not given; detection on short texts is unreliable, so those '
      'rows (marked "detected") may name the wrong language. Pass --lang CODE, or a TSV/JSONL '
      'language column (--lang-field)'
    )

  def _jsonl(self, path):
    for where, obj in line_files.jsonl_objects(path, self._skip):
      tf = self._pick(obj, self.text_field, TEXT_FIELDS, where, 'text')
      if tf is not None and obj[tf] is None:  # e.g. CLDR entries without a name: no text
        self._skip('empty_text', where)
        continue
      if tf is None or not isinstance(obj.get(tf), str):
        self.skipped['no_text_field'] += 1
        if self.first_without_text is None:
          self.first_without_text = (where, sorted(obj))
        continue
      lf = self._pick(obj, self.lang_field, LANG_FIELDS, where, 'language')
      pair = self._emit(obj.get(lf) if lf else None, obj[tf], where)
      if pair:
        yield pair

  def _tsv(self, path):
    with self._open(path) as f:
      reader = csv.DictReader(f, delimiter='\t')
      try:
        keys = reader.fieldnames or []
      except file_io.DAMAGED_FILE_ERRORS as e:
        raise UserError(f'{path}: line 1: unreadable ({type(e).__name__}: {e})') from e
      tf = self._pick(keys, self.text_field, TEXT_FIELDS, path, 'text')
      if tf is None:
        raise UserError(
          f'{path}: header row {keys} has no text column (one of {TEXT_FIELDS}); name it with '
          '--text-field, or put a header row first (a .tsv is read with one)'
        )
      lf = self._pick(keys, self.lang_field, LANG_FIELDS, path, 'language')

      def damaged(error):  # a .gz cut short or corrupt: its rows so far are read
        self._skip('damaged_file', file_io.damaged_at(path, reader.line_num + 1, error))

      for row in file_io.until_damaged(reader, damaged):
        where = f'{path}:{reader.line_num}'
        if None in row:
          self._skip('extra_columns', where)
          continue
        if any(file_io.has_invalid_utf8(v) for v in row.values() if isinstance(v, str)):
          self._skip('invalid_utf8', where)
          continue
        pair = self._emit(row.get(lf) if lf else None, row.get(tf), where)
        if pair:
          yield pair

  def _plain(self, path):
    for where, line in line_files.text_lines(path, self._skip):
      pair = self._emit(None, line, where)
      if pair:
        yield pair


def coverage(
  sp: spm.SentencePieceProcessor,
  pairs: Iterable[tuple[str, str]],
  max_len: int = 16,
  chunk: int = 2048,
) -> dict[str, dict]:
  """{lang: summary} over (lang, text) pairs, encoded in chunks to bound memory."""
  totals: dict[str, Counts] = collections.defaultdict(Counts)
  pending: dict[str, list[str]] = collections.defaultdict(list)
  for lang, text in pairs:
    pending[lang].append(text)
    if len(pending[lang]) >= chunk:
      totals[lang].add(count_texts(sp, pending.pop(lang), max_len))
  for lang, texts in pending.items():
    totals[lang].add(count_texts(sp, texts, max_len))
  return {lang: summarize(lang, totals[lang]) for lang in sorted(totals)}


HEADERS = (
  'code',
  'language',
  'script',
  'texts',
  'tokens/unit',
  'unit',
  'byte-fallback share',
  'unk share',
  'truncated share',
  'language from',
)
DETECTED_NOTE = (
  'language from: "given" (--lang or a language field) or "detected" (langdetect, unreliable '
  'on short texts: related languages are mixed up); "n of m detected" when both.'
)


def language_source(s: dict) -> str:
  if 'n_detected' not in s:  # counted by a caller that does not say
    return ''
  n, total = s['n_detected'], s['n_texts']
  if not n:
    return 'given'
  return 'detected' if n >= total else f'{n} of {total} detected'


def rows(stats: dict[str, dict]) -> list[list]:
  out = []
  for code, s in sorted(stats.items(), key=lambda kv: -_nan0(kv[1]['tokens_per_unit'])):
    info = languages.lookup(code)
    out.append(
      [
        code,
        info.name,
        info.script,
        s['n_texts'],
        s['tokens_per_unit'],
        s['unit'],
        s['byte_fallback_share'],
        s['unk_share'],
        s['truncated_share'],
        language_source(s),
      ]
    )
  return out


def _nan0(x):
  return 0.0 if x is None or math.isnan(x) else x


def plot(stats: dict[str, dict], path: str, title: str = '') -> None:
  """Two panels per language: tokens per unit, and byte-fallback/truncated shares."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  codes = [r[0] for r in rows(stats)][::-1]
  h = max(2.5, 0.28 * len(codes) + 1.2)
  fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, h), sharey=True)
  y = range(len(codes))
  tpu = [_nan0(stats[c]['tokens_per_unit']) for c in codes]
  colors = ['#c44e52' if stats[c]['unit'] == 'char' else '#4c72b0' for c in codes]
  a1.barh(y, tpu, color=colors)
  a1.set_yticks(list(y), [f'{languages.lookup(c).name} ({c})' for c in codes], fontsize=8)
  a1.set_xlabel('tokens per word (blue) / per character (red)')
  a2.barh(
    [i + 0.2 for i in y],
    [_nan0(stats[c]['byte_fallback_share']) for c in codes],
    height=0.4,
    color='#dd8452',
    label='byte-fallback share of tokens',
  )
  a2.barh(
    [i - 0.2 for i in y],
    [_nan0(stats[c]['truncated_share']) for c in codes],
    height=0.4,
    color='#55a868',
    label='texts truncated',
  )
  a2.set_xlim(0, 1)
  a2.set_xlabel('share')
  a2.legend(loc='lower right', fontsize=8)
  for a in (a1, a2):
    a.grid(axis='x', alpha=0.3)
  fig.suptitle(title or 'Tokenizer coverage')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_outputs(stats: dict[str, dict], out_dir: str, title: str = '') -> dict[str, str]:
  os.makedirs(out_dir, exist_ok=True)
  paths = {k: os.path.join(out_dir, 'coverage.' + k) for k in ('md', 'csv', 'json', 'png')}
  r = rows(stats)
  with open(paths['md'], 'w', encoding='utf-8') as f:
    f.write(
      f'# {title or "Tokenizer coverage"}\n\n{tables.md_escape(DETECTED_NOTE)}\n\n'
      + tables.markdown(HEADERS, r)
    )
  with open(paths['csv'], 'w', encoding='utf-8') as f:
    f.write(tables.csv_text(HEADERS, r))
  with open(paths['json'], 'w', encoding='utf-8') as f:
    json.dump(stats, f, indent=1, sort_keys=True)
  plot(stats, paths['png'], title)
  return paths


def expand(paths: list[str]) -> list[str]:
  """Paths, with a pattern no file is named after expanded (a README or script command run
  without a shell passes 'texts/*.jsonl' as is); a pattern matching nothing is an error."""
  out = []
  for path in paths:
    if os.path.exists(path) or not glob.has_magic(path):
      out.append(path)
      continue
    found = sorted(glob.glob(path))
    if not found:
      raise UserError(f'{path}: no file matches this pattern')
    out += found
  return out


def _say_what_is_replaced(path: str, stats: dict) -> None:
  """A printed line when `path` (an earlier coverage.json or tokenizer_stats.json) held
  languages this run does not: the report would lose their columns without a word."""
  try:
    with open(path, encoding='utf-8') as f:
      old = json.load(f)
  except (OSError, ValueError):
    return
  gone = sorted(set(old) - set(stats)) if isinstance(old, dict) else []
  if gone:
    shown = ', '.join(gone[:10]) + (f' and {len(gone) - 10} more' if len(gone) > 10 else '')
    print(
      f'warning: replacing {path} ({len(old)} languages) with {len(stats)} languages; no '
      f'longer in it: {shown}',
      file=sys.stderr,
    )


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    prog='mlit coverage',
    description=__doc__.split('\n')[0],
    epilog='example:\n  mlit coverage --vocab=runs/demo/spm.model --out=runs/demo/coverage '
    'captions.tsv',
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument('--vocab', required=True, help='SentencePiece .model file')
  p.add_argument(
    'texts',
    nargs='+',
    help='text files (.gz allowed): .tsv with a header row naming its columns (--text-field, '
    '--lang-field), .jsonl, or any other name as plain text (one text per line, all of --lang). '
    "A headerless id<TAB>text .tsv (mlit backtranslate's input) needs a header row first, or "
    'cut -f2 it into a plain text file. A pattern (texts/*.jsonl) is expanded here when the '
    'shell did not',
  )
  p.add_argument('--lang', help='language of every text (skips detection and language fields)')
  p.add_argument('--lang-field', help='language field/column (default: language, lang, locale)')
  p.add_argument('--text-field', help=f'text field/column (default: first of {TEXT_FIELDS})')
  p.add_argument(
    '--max-len',
    type=int,
    default=16,
    help="the model's text length in tokens incl. EOS; texts longer are counted as truncated "
    "(default 16; a run's is text_length in MODEL_DIR/mlit_model.json)",
  )
  p.add_argument('--out', help='directory for coverage.{md,csv,json,png}')
  p.add_argument('--stats-json', help='also write tokenizer_stats.json here (e.g. RUN_DIR/...)')
  args = p.parse_args(argv)
  if args.lang and args.lang_field:
    p.error('--lang-field cannot apply with --lang: --lang is the language of every text')
  if args.max_len < 1:
    p.error(f'--max-len must be >= 1, got {args.max_len}')
  sp = load_sentencepiece(args.vocab)
  reader = InputReader(args.lang, args.lang_field, args.text_field)
  pairs = (pair for path in expand(args.texts) for pair in reader.read(path))
  stats = coverage(sp, pairs, args.max_len)
  if not stats:  # nothing to write: an empty table would replace the languages of earlier files
    if reader.undetectable_message():
      print(reader.undetectable_message(), file=sys.stderr)
    raise UserError(f'no text read from {", ".join(args.texts)}{reader.why_nothing_was_read()}')
  for lang, s in stats.items():
    s['n_detected'] = reader.detected[lang]
  title = (
    f'Tokenizer coverage of {os.path.basename(args.vocab)} (truncated: over {args.max_len} '
    'tokens incl. EOS)'
  )
  print(f'truncated share: texts over --max-len {args.max_len} tokens incl. EOS', file=sys.stderr)
  sys.stdout.write(tables.markdown(HEADERS, rows(stats)))
  for line in reader.skipped_lines():
    print(line, file=sys.stderr)
  if reader.undetectable_message():
    print(reader.undetectable_message(), file=sys.stderr)
  if reader.detection_warning():
    print(reader.detection_warning(), file=sys.stderr)
  if args.out:
    _say_what_is_replaced(os.path.join(args.out, 'coverage.json'), stats)
    for path in write_outputs(stats, args.out, title).values():
      print(f'wrote {path}', file=sys.stderr)
  if args.stats_json:
    _say_what_is_replaced(args.stats_json, stats)
    with open(args.stats_json, 'w', encoding='utf-8') as f:
      json.dump(
        {
          k: {
            m: v[m]
            for m in (
              'tokens_per_word',
              'byte_fallback_share',
              'unk_share',
              'truncated_share',
              'n_texts',
              'tokens_per_char',
              'unit',
            )
          }
          for k, v in stats.items()
        },
        f,
        indent=1,
        sort_keys=True,
      )
  return 0
