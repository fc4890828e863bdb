"""`mlit coverage` on damaged inputs: a bad byte or a .gz cut short is counted and skipped (it
stopped the command with a traceback), and inputs without one text are one line, not an empty
table written over the coverage of earlier files."""

import gzip

import pytest
from spm_fixture import spm_model_path  # noqa: F401

from eval_multilingual import coverage
from tasks.user_error import UserError


def _read(path, **reader_args):
  reader = coverage.InputReader(**reader_args)
  return list(reader.read(str(path))), dict(reader.skipped)


def test_a_bad_byte_skips_its_row_in_plain_and_tsv_files(tmp_path):
  (tmp_path / 'a.txt').write_bytes(b'good line\n\xff\xfe bad\nanother\n')
  (tmp_path / 'a.tsv').write_bytes(b'text\tlang\nhello\ten\n\xff bad\ten\n')
  assert _read(tmp_path / 'a.txt', lang='en') == (
    [('en', 'good line'), ('en', 'another')],
    {'invalid_utf8': 1},
  )
  assert _read(tmp_path / 'a.tsv') == ([('en', 'hello')], {'invalid_utf8': 1})


@pytest.mark.parametrize('name', ['a.txt.gz', 'a.tsv.gz'])
def test_a_cut_gz_keeps_the_rows_before_the_damage(tmp_path, name):
  path = tmp_path / name
  lines = [f'{i:06d} {i * 7919 % 104729:06d} zebra' for i in range(20_000)]
  tsv = name.endswith('.tsv.gz')
  rows = ['text\tlang', *(f'{t}\ten' for t in lines)] if tsv else lines
  with gzip.open(path, 'wt', encoding='utf-8') as f:
    f.write('\n'.join(rows) + '\n')
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  pairs, skipped = _read(path, lang=None if tsv else 'en')
  assert 0 < len(pairs) < len(lines) and skipped == {'damaged_file': 1}
  assert [t for _, t in pairs] == lines[: len(pairs)]
  reader = coverage.InputReader(lang=None if tsv else 'en')
  list(reader.read(str(path)))
  (line,) = reader.skipped_lines()  # it named neither the file nor the line
  assert line.startswith(f'skipped 1 row: damaged_file (the first: {path}:')


def test_a_null_text_is_an_empty_text_not_a_missing_field(tmp_path):
  """The demo's CLDR rows without a name ("name": null) were counted as no_text_field, whose line
  told the user to name the text field they had named (--text-field name)."""
  (tmp_path / 'a.jsonl').write_text(
    '{"lang": "en", "name": "cat"}\n{"lang": "en", "name": null}\n', encoding='utf-8'
  )
  reader = coverage.InputReader(text_field='name')
  assert list(reader.read(str(tmp_path / 'a.jsonl'))) == [('en', 'cat')]
  assert reader.skipped_lines() == [f'skipped 1 row: empty_text (the first: {tmp_path}/a.jsonl:2)']


def test_inputs_without_a_text_are_one_line(tmp_path, spm_model_path):  # noqa: F811
  (tmp_path / 'empty.txt').write_text('')
  with pytest.raises(UserError, match='^no text read from .*empty.txt$'):
    coverage.main(['--vocab', spm_model_path, '--lang', 'en', str(tmp_path / 'empty.txt')])
