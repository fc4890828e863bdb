"""WIT (Wikipedia-based Image Text) TSV training tasks, one per description kind.

Files wit_v1.*.tsv.gz have a header row and 17 columns; fields may be quoted and
span lines, so rows are read with the csv module. Booleans are the strings
'true'/'false' (bool('false') is True, the TFDS pitfall). Tasks: wit_<kind> for
kind in reference, attribution, alt_text, and wit_<kind>.<lang> per language.
Attribution texts are used only when attribution_passes_lang_id is 'true'.
"""

import collections
import csv
import sys
from typing import Iterator, Mapping, Optional, Sequence

import tensorflow as tf

import gin
from tasks import (
  data_stats,
  file_io,
  image_store,
  language_codes,
  row_source,
  shard_image_store,
  task_builder,
  text_cleaning,
)
from tasks.user_error import UserError

COLUMNS = (
  'language',
  'page_url',
  'image_url',
  'page_title',
  'section_title',
  'hierarchical_section_title',
  'caption_reference_description',
  'caption_attribution_description',
  'caption_alt_text_description',
  'mime_type',
  'original_height',
  'original_width',
  'is_main_image',
  'attribution_passes_lang_id',
  'page_changed_recently',
  'context_page_description',
  'context_section_description',
)
BOOLEANS = ('is_main_image', 'attribution_passes_lang_id', 'page_changed_recently')
KINDS = {
  'reference': 'caption_reference_description',
  'attribution': 'caption_attribution_description',
  'alt_text': 'caption_alt_text_description',
}


def parse_bool(value: str) -> bool | None:
  """WIT's 'true'/'false' (TFDS's bool() read 'false' as True); an empty field is None: WIT leaves
  a flag empty where it was not computed, and such a row is no malformed one."""
  v = value.strip().lower()
  if v in ('true', 'false'):
    return v == 'true'
  if not v:
    return None
  raise ValueError(f"expected 'true', 'false' or empty, got {value!r}")


def _check_header(path: str, header) -> None:
  if header is None or tuple(h.strip() for h in header) != COLUMNS:
    shown = header if header is None else '\t'.join(header)[:200]
    raise UserError(f'{path}:1: WIT header must be the 17 columns {COLUMNS}, got {shown!r}')


def check_headers(tsv_pattern: str) -> None:
  """Every file's header, at registration: a file that is not WIT's TSV stops the run before
  any work, in one line, instead of inside the input pipeline mid-run."""
  csv.field_size_limit(sys.maxsize)
  file_io.check_patterns('register_wit.tsv_pattern', tsv_pattern)
  for path in sorted(tf.io.gfile.glob(tsv_pattern)):
    with file_io.open_text(path) as f:
      try:
        header = next(csv.reader(f, delimiter='\t', quotechar='"'), None)
      except file_io.DAMAGED_FILE_ERRORS as e:
        raise UserError(f'{path}:1: unreadable ({type(e).__name__}: {e})') from e
      _check_header(path, header)


def count_languages(tsv_pattern: str, kind: str = 'reference') -> collections.Counter:
  """{language: rows read_wit keeps for `kind`} over the files of a pattern (their headers
  checked): what a mixture over the languages can weigh, read before any training."""
  check_headers(tsv_pattern)
  return collections.Counter(
    ex['language'] for path in sorted(tf.io.gfile.glob(tsv_pattern)) for ex in read_wit(path, kind)
  )


def read_wit(path: str, kind: str, images=None) -> Iterator[dict]:
  """Rows of one WIT file with a non-empty `kind` description."""
  csv.field_size_limit(sys.maxsize)
  with file_io.open_text(path) as f:
    reader = csv.reader(f, delimiter='\t', quotechar='"')
    _check_header(path, next(reader, None))
    line = reader.line_num + 1  # where the next row starts: quoted fields may span lines

    def damaged(error):  # a cut .gz: its rows so far stay counted
      data_stats.skip('damaged_file', file_io.damaged_at(path, line, error))

    for row in file_io.until_damaged(reader, damaged):
      where, line = f'{path}:{line}', reader.line_num + 1
      if not row:  # a blank line is no row (as in the other readers), not a malformed one
        continue
      if len(row) != len(COLUMNS):
        data_stats.skip('wrong_column_count', f'{where} ({len(row)} columns)')
        continue
      if any(file_io.has_invalid_utf8(v) for v in row):
        data_stats.skip('invalid_utf8', where)
        continue
      rec = dict(zip(COLUMNS, row))
      try:
        flags = {k: parse_bool(rec[k]) for k in BOOLEANS}
      except ValueError as e:
        data_stats.skip('bad_field', f'{where}: {e}')
        continue
      text = text_cleaning.clean_text(rec[KINDS[kind]])
      if not text:
        data_stats.skip('all_signals_empty', where)
        continue
      if kind == 'attribution' and not flags['attribution_passes_lang_id']:
        # An attribution is often in another language than its page ('English: ...' on a de
        # page): kept only when WIT's check passed; an empty flag is no pass.
        given = 'false' if flags['attribution_passes_lang_id'] is False else 'empty'
        data_stats.skip('failed_language_id', f'{where}: attribution_passes_lang_id {given}')
        continue
      is_main = flags['is_main_image']
      example = {
        'example_id': image_store.url_id(rec['image_url']),
        'text': text,
        'language': language_codes.normalize(rec['language']),
        'is_main_image': '' if is_main is None else str(is_main).lower(),  # '': not given
      }
      if not image_store.attach_image(example, images, where, rec['image_url']):
        continue
      data_stats.keep('wit')
      yield example


@gin.configurable
def register_wit(
  tsv_pattern: str = gin.REQUIRED,
  *,
  kinds: Sequence[str] = ('reference',),
  languages: Sequence[str] = (),
  image_dir: Optional[str] = None,
  image_path_format: str = '{id}.jpg',
  image_shards: Optional[str] = None,
  image_shard_key: str = 'url',
  language_rates: Optional[Mapping[str, float]] = None,
) -> list:
  """image_dir (one file per id) or image_shards (a pattern of webdataset tars or TFRecords, joined
  by url_id(url) of the sample's json by default; see tasks.shard_image_store).

  language_rates: {lang: rate} over `languages`: also a mixture wit_<kind>.languages of their
  tasks at these rates (`mlit add-language gin` weighs a new language's rows against the old)."""
  check_headers(tsv_pattern)
  rates = {language_codes.normalize(k): r for k, r in (language_rates or {}).items()}
  typed = [language_codes.typed_task_language(c, 'register_wit.languages') for c in languages]
  if rates and (set(rates) != set(typed) or any(float(r) <= 0 for r in rates.values())):
    raise UserError(
      f'register_wit.language_rates {rates}: a rate > 0 for each of register_wit.languages '
      f'{list(typed)}, and no other'
    )
  images = shard_image_store.make_image_store(
    image_dir, image_path_format, image_shards, image_shard_key
  )
  keys = ['example_id', 'text', 'language', 'is_main_image'] + (['image'] if images else [])
  signature = {k: tf.TensorSpec((), tf.string) for k in keys}
  names = []
  for kind in kinds:
    if kind not in KINDS:
      raise UserError(f'WIT description kind {kind!r} not in {sorted(KINDS)}')
    source = row_source.RowSource(
      lambda p, kind=kind: read_wit(p, kind, images),
      signature,
      {'train': tsv_pattern},
      name='wit',
    )
    for lang in (None, *typed):
      name = f'wit_{kind}' + (f'.{language_codes.task_name_part(lang)}' if lang else '')
      pre = [task_builder.filter_equal('language', lang)] if lang else []
      task_builder.add_task(
        name, source, text_names=('text',), image='image' if images else None, pre_cache=pre
      )
      names.append(name)
    if rates:
      mixture = f'wit_{kind}.languages'
      task_builder.add_mixture(
        mixture,
        [(f'wit_{kind}.{language_codes.task_name_part(l)}', float(rates[l])) for l in typed],
      )
      names.append(mixture)
  return names
