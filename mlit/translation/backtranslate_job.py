r"""Offline backtranslation: every text to K pivot languages and back, scored, filtered, sharded.

example:
  mlit backtranslate --input captions.tsv --out bt/ --source en --pivots es,ca --backend apertium

Input: a TSV of `id<TAB>text` (no header needed; a row `id<TAB>text` is set aside as header_row) or
JSONL with "id" and "text" fields; rows without an id or a text are set aside too. Output in --out:
  candidates-NNNNN.jsonl  one record per text: {id, text, candidates: [{pivot, pivot_text, text, chrf, bleu,
                          verdict}]}
  failures-NNNNN.jsonl    translator batches of that shard that failed after retries (ids, pivot, error)
  rejected_rows.jsonl     input rows that could not be read or repeat an id (file, line, reason)
  summary.json            per pivot: kept, dropped per reason, failed, mean chrF/BLEU of kept
A shard file is written atomically once complete, so a killed job resumes at the first missing
shard. The training-time substitution reads the candidates with verdict "kept"
(tasks/backtranslation.py).
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'backtranslate')  # `python -m`: the command, before the heavy imports

import argparse
import collections
import json
import os
from typing import Iterator

from mlit import job_progress
from mlit.translation import backends as translation_backends
from mlit.translation import backtranslation as backtranslation_core
from tasks import file_io, language_codes
from tasks.user_error import UserError


def _other_language(language, source: str | None) -> str | None:
  """The rejection reason of a row whose given language is known and not `source`."""
  lang = language_codes.normalize(str(language)) if language not in (None, '') else None
  if source is None or lang is None or lang == language_codes.UNDETERMINED:
    return None
  if lang.split('-')[0].lower() == source.split('-')[0].lower():
    return None
  return (
    f'other_language: {lang}, not --source {source}: translated as {source} its round trips '
    'would be mangled (one job per source language)'
  )


def parse_row(raw: bytes, is_jsonl: bool, source: str | None = None):
  """Returns (id, text) for a good row, a rejection reason (str) for a bad one, None for a blank.
  A row may give its language (JSONL "language", a TSV's third column): one that is not
  `source` is rejected (other_language)."""
  try:
    line = raw.decode('utf-8').rstrip('\r\n')
  except UnicodeDecodeError:
    return 'invalid_utf8'
  if not line.strip():
    return None
  if is_jsonl:
    try:
      row = json.loads(line)
    except ValueError as e:
      return f'bad_json: {e}'
    if not isinstance(row, dict):
      return f'bad_json: a {type(row).__name__}, not an object with id and text'
    missing = [k for k in ('id', 'text') if k not in row]
    if missing:
      return f'missing field {" and ".join(missing)}'
    example_id, text, language = str(row['id']), str(row['text']), row.get('language')
  else:
    fields = line.split('\t')
    if len(fields) not in (2, 3):
      return (
        f'wrong_column_count: {len(fields)} tab-separated columns, not 2 (id, text) or 3 (and '
        'language)'
      )
    example_id, text, language = (*fields, None)[:3]
    if [f.strip().lower() for f in fields] in (['id', 'text'], ['id', 'text', 'language']):
      return 'header_row: column names, not an id and its text (no header is needed)'
  if not example_id.strip():
    return 'empty_id'
  if not text.strip():
    return 'empty_text'
  return _other_language(language, source) or (example_id, text)


def _rows(path: str, source: str | None) -> Iterator[tuple[int, object]]:
  """(line number, parse_row's result) of every non-blank line."""
  is_jsonl = path.endswith(('.jsonl', '.json'))
  with open(path, 'rb') as f:
    for line_no, raw in enumerate(f, start=1):
      parsed = parse_row(raw, is_jsonl, source)
      if parsed is not None:
        yield line_no, parsed


def repeated_ids(path: str, source: str | None = None) -> dict[str, tuple[int, int, bool]]:
  """{id: (its first line, its rows, whether they all have one text)} for ids on several rows.

  Training substitutes round trips by id (tasks/backtranslation.py), so an id must name one text:
  an id whose rows disagree cannot say which text its round trips belong to."""
  seen = {}  # id -> [first line, rows, hash of the first text, texts agree]
  for line_no, parsed in _rows(path, source):
    if isinstance(parsed, str):
      continue
    example_id, text = parsed
    entry = seen.get(example_id)
    if entry is None:
      seen[example_id] = [line_no, 1, hash(text), True]
    else:
      entry[1] += 1
      entry[3] = entry[3] and hash(text) == entry[2]
  return {k: (v[0], v[1], v[3]) for k, v in seen.items() if v[1] > 1}


def read_texts(
  path: str, rejected: list, repeated: dict, source: str | None = None
) -> Iterator[tuple[str, str]]:
  """Yields (id, text) once per id; unreadable rows and the rows of `repeated` ids
  (`repeated_ids`) that cannot be translated are appended to `rejected` with file, line and
  reason: the later copies of an id's one text, and every row of an id with several texts."""
  for line_no, parsed in _rows(path, source):
    if not isinstance(parsed, str) and parsed[0] in repeated:
      first, rows, one_text = repeated[parsed[0]]
      if not one_text:
        parsed = (
          f'duplicate_id: id {parsed[0]!r} is on {rows} rows with different texts (first at line '
          f'{first}): which text its round trips would belong to is unknown, so none is translated'
        )
      elif line_no != first:
        parsed = f'duplicate_row: the id and text of line {first}, translated once'
    if isinstance(parsed, str):
      rejected.append({'file': path, 'line': line_no, 'reason': parsed})
    else:
      yield parsed


def shard_path(out_dir: str, index: int) -> str:
  return os.path.join(out_dir, f'candidates-{index:05d}.jsonl')


def failures_path(out_dir: str, index: int) -> str:
  return os.path.join(out_dir, f'failures-{index:05d}.jsonl')


def _write_atomically(path: str, lines: list[str]):
  with file_io.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    f.writelines(lines)


def _chunks(iterator, size):
  chunk = []
  for item in iterator:
    chunk.append(item)
    if len(chunk) == size:
      yield chunk
      chunk = []
  if chunk:
    yield chunk


def run(
  input_path,
  out_dir,
  *,
  source,
  pivots,
  backend,
  examples_per_shard=1000,
  batch_size=64,
  quality=backtranslation_core.QualityFilter(),
  retries=2,
  log=print,
):
  """Runs (or resumes) the job. Returns the final per-pivot summary."""
  # A first pass counts the readable rows, for the progress line's ETA (translation is the slow
  # part), and stops a job with nothing to translate before it records any setting.
  first_rejected, repeated = [], repeated_ids(input_path, source)
  total = sum(1 for _ in read_texts(input_path, first_rejected, repeated, source))
  if not total:
    raise UserError(_no_texts(input_path, out_dir, first_rejected))
  os.makedirs(out_dir, exist_ok=True)
  _check_settings(
    out_dir,
    {
      'input_sha256': file_io.file_sha256(input_path),
      'source': source,
      'pivots': list(pivots),
      'backend': getattr(backend, 'name', type(backend).__name__),
      'min_chrf': quality.min_chrf,
      'max_chrf': quality.max_chrf,
      'examples_per_shard': examples_per_shard,
    },
  )
  num_shards = -(-total // examples_per_shard)
  progress = job_progress.Progress(total, 'texts')
  rejected, resumed = [], 0
  shards = _chunks(read_texts(input_path, rejected, repeated, source), examples_per_shard)
  for index, shard in enumerate(shards):
    path = shard_path(out_dir, index)
    if os.path.exists(path):
      resumed += 1
      progress.skip(len(shard))
      continue
    if resumed and not progress.advanced:  # said once, before this run's first shard
      log(_resumed_line(resumed, num_shards, progress.skipped))
    records, failures = [], []
    for batch in _chunks(shard, batch_size):
      ids, texts = zip(*batch)
      r, f = backtranslation_core.backtranslate_batch(
        backend, ids, texts, source=source, pivots=pivots, quality=quality, retries=retries
      )
      records.extend(r)
      failures.extend(f)
    # Failures first: a shard counts as done only once its candidates file exists.
    _write_atomically(
      failures_path(out_dir, index), [json.dumps(f, ensure_ascii=False) + '\n' for f in failures]
    )
    _write_atomically(path, [json.dumps(r, ensure_ascii=False) + '\n' for r in records])
    progress.advance(len(shard))
    log(f'shard {index + 1} of {num_shards}: {len(failures)} failed batches; {progress.line()}')
  if resumed and not progress.advanced:  # every shard was complete
    log(_resumed_line(resumed, num_shards, progress.skipped))
  _write_rejected(out_dir, rejected)
  summary = summarise_dir(out_dir)
  summary['rejected_rows'] = len(rejected)
  with open(os.path.join(out_dir, 'summary.json'), 'w', encoding='utf-8') as f:
    json.dump(summary, f, indent=2, ensure_ascii=False)
  for pivot, s in summary['pivots'].items():
    log(pivot_line(pivot, s, summary['texts']))
  if summary['texts'] and not any(s['kept'] for s in summary['pivots'].values()):
    first = next(iter_records(out_dir))
    log(
      f'warning: no round trip of the {summary["texts"]:,} texts was kept: check that the input '
      f'is id<TAB>text[<TAB>language] rows of --source {source} (the first row read: id '
      f'{first["id"]!r}, text {first["text"][:60]!r})'
    )
  if rejected:
    reasons = collections.Counter(r['reason'].split(':')[0] for r in rejected)
    shown = ', '.join(f'{reason} {n:,}' for reason, n in reasons.most_common())
    log(f'{len(rejected):,} input rows rejected ({shown}; see {REJECTED_FILE})')
  return summary


SETTINGS_FILE = 'job.json'
REJECTED_FILE = 'rejected_rows.jsonl'


def _write_rejected(out_dir: str, rejected: list) -> str:
  path = os.path.join(out_dir, REJECTED_FILE)
  with open(path, 'w', encoding='utf-8') as f:
    for row in rejected:
      f.write(json.dumps(row, ensure_ascii=False) + '\n')
  return path


def _no_texts(input_path: str, out_dir: str, rejected: list) -> str:
  """The one line for an input without a readable text; its rejected rows are written first."""
  if not rejected:
    return f'no texts read from {input_path}: it has no non-blank row (id<TAB>text or JSONL)'
  os.makedirs(out_dir, exist_ok=True)
  path = _write_rejected(out_dir, rejected)
  first = rejected[0]
  return (
    f'no texts read from {input_path} ({len(rejected)} rows rejected, the first at line '
    f'{first["line"]}: {first["reason"]}; see {path})'
  )


def _check_settings(out_dir: str, settings: dict) -> None:
  """A resumed job keeps its shards: with another input or other settings they would be mixed
  into one output without a word, so the settings of the first run are kept and compared."""
  path = os.path.join(out_dir, SETTINGS_FILE)
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      before = json.load(f)
    changed = [k for k in settings if before.get(k) != settings[k]]
    if changed:
      what = '; '.join(f'{k} {before.get(k)!r} then, {settings[k]!r} now' for k in changed)
      raise UserError(
        f'--out {out_dir} holds a job with other settings ({what}): give another --out, or '
        'remove it to start over'
      )
    return
  if any(n.startswith('candidates-') for n in os.listdir(out_dir)):
    return  # written before settings were recorded: nothing to compare against
  _write_atomically(path, [json.dumps(settings, indent=1) + '\n'])


def _resumed_line(shards: int, num_shards: int, texts: int) -> str:
  return f'resumed: {shards} of {num_shards} shards already complete ({texts:,} texts)'


def pivot_line(pivot: str, s: dict, texts: int) -> str:
  """E.g. 'pivot ca: kept 843 of 6,243 texts, dropped 5,400 (near-identical 4,376, drifted 1,024),
  failed 0; mean chrF of kept 60.34'."""
  dropped = sum(s['dropped'].values())
  reasons = ', '.join(
    f'{reason.replace("_", "-")} {n:,}'
    for reason, n in sorted(s['dropped'].items(), key=lambda kv: -kv[1])
  )
  return (
    f'pivot {pivot}: kept {s["kept"]:,} of {texts:,} texts, dropped {dropped:,}'
    + (f' ({reasons})' if reasons else '')
    + f', failed {s["failed"]:,}'
    + (f'; mean chrF of kept {s["mean_chrf_kept"]}' if s['kept'] else '')
  )


def iter_records(out_dir: str) -> Iterator[dict]:
  """Every record of every complete shard in `out_dir`, in shard order."""
  names = sorted(
    n for n in os.listdir(out_dir) if n.startswith('candidates-') and n.endswith('.jsonl')
  )
  for name in names:
    with open(os.path.join(out_dir, name), encoding='utf-8') as f:
      for line in f:
        yield json.loads(line)


def summarise_dir(out_dir: str) -> dict:
  """Summary over all shards and the recorded failures (so resumed shards are counted too)."""
  records = list(iter_records(out_dir))
  failures = []
  for name in sorted(os.listdir(out_dir)):
    if name.startswith('failures-') and name.endswith('.jsonl'):
      with open(os.path.join(out_dir, name), encoding='utf-8') as f:
        failures.extend(json.loads(line) for line in f)
  sums = backtranslation_core.summarise(records, failures)
  return {'texts': len(records), 'pivots': backtranslation_core.finalise_summary(sums)}


class _Once(argparse.Action):
  """A flag given twice is refused: argparse would keep the last one without a word."""

  def __call__(self, parser, namespace, values, option_string=None):
    if getattr(namespace, self.dest, None) is not None:
      parser.error(f'{option_string} given twice ({getattr(namespace, self.dest)} and {values})')
    setattr(namespace, self.dest, values)


def add_translation_flags(parser: argparse.ArgumentParser) -> None:
  """The options `mlit backtranslate` and `mlit backtranslate-beam` share."""
  parser.add_argument('--source', default='en', help='language of the input texts (default en)')
  parser.add_argument(
    '--pivots',
    required=True,
    action=_Once,
    help='comma-separated pivot languages, e.g. es,ca (once)',
  )
  parser.add_argument(
    '--backend',
    default='apertium',
    help='apertium | command:<program {source} {target}> | transformers:<dir>',
  )
  parser.add_argument(
    '--batch_size', type=int, default=64, help='texts per translator call (default 64)'
  )
  parser.add_argument(
    '--min_chrf',
    type=float,
    default=backtranslation_core.QualityFilter.min_chrf,
    help='drop round trips below this chrF as drifted (default %(default)s)',
  )
  parser.add_argument(
    '--max_chrf',
    type=float,
    default=backtranslation_core.QualityFilter.max_chrf,
    help='drop round trips at or above this chrF, or equal to the text once case, punctuation '
    'and spacing are ignored, as near-identical (default %(default)s)',
  )


def parse_pivots(args) -> list[str]:
  """--pivots as a list; none, repeats, the source itself, a --batch_size below 1 and a chrF window
  that keeps nothing are mistakes, said in one line before any translation."""
  pivots = [p.strip() for p in args.pivots.split(',') if p.strip()]
  if not pivots:
    raise UserError(f'--pivots {args.pivots!r}: no pivot language given, e.g. --pivots es,ca')
  if args.batch_size < 1:
    raise UserError(f'--batch_size must be >= 1, got {args.batch_size}')
  repeated = sorted({p for p in pivots if pivots.count(p) > 1})
  if repeated:
    raise UserError(f'--pivots {args.pivots}: {", ".join(repeated)} given twice')
  if args.source in pivots:
    raise UserError(f'--pivots {args.pivots}: {args.source} is the --source language itself')
  if args.min_chrf >= args.max_chrf:
    raise UserError(
      f'--min_chrf {args.min_chrf} is not below --max_chrf {args.max_chrf}: every round trip '
      'would be dropped'
    )
  return pivots


def main(argv=None):
  parser = argparse.ArgumentParser(
    prog='mlit backtranslate',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    allow_abbrev=False,  # --pivot for --pivots would be taken silently, the last one winning
  )
  parser.add_argument('--input', required=True, help='TSV (id<TAB>text) or JSONL (id, text)')
  parser.add_argument('--out', required=True, help='output directory (candidates, summary.json)')
  add_translation_flags(parser)
  parser.add_argument(
    '--examples_per_shard', type=int, default=1000, help='texts per output shard (default 1000)'
  )
  parser.add_argument(
    '--retries', type=int, default=2, help='retries of a failed translator batch (default 2)'
  )
  args = parser.parse_args(argv)
  if not os.path.exists(args.input):
    parser.error(f'--input {args.input}: no such file')
  if args.examples_per_shard < 1:
    parser.error(f'--examples_per_shard must be >= 1, got {args.examples_per_shard}')
  if args.retries < 0:
    parser.error(f'--retries must be >= 0, got {args.retries}')
  pivots = parse_pivots(args)
  backend = translation_backends.make_backend(args.backend)
  translation_backends.check_pairs(backend, args.source, pivots)
  run(
    args.input,
    args.out,
    source=args.source,
    pivots=pivots,
    backend=backend,
    examples_per_shard=args.examples_per_shard,
    batch_size=args.batch_size,
    quality=backtranslation_core.QualityFilter(args.min_chrf, args.max_chrf),
    retries=args.retries,
  )
  return 0
