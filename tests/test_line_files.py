"""tasks.line_files: the one TSV and JSONL line loop, malformed lines counted by reason."""

import collections
import gzip

from tasks import line_files


def test_tsv_rows_skip_blank_and_undecodable_lines(tmp_path):
  path = tmp_path / 'rows.tsv.gz'
  with gzip.open(path, 'wb') as f:
    f.write(b'a\tb\r\n\n  \nbad \xff byte\tx\nc\n')
  counts = collections.Counter()
  rows = list(line_files.tsv_rows(str(path), line_files.counting(counts)))
  assert rows == [(f'{path}:1', ['a', 'b']), (f'{path}:5', ['c'])]
  assert counts == {'invalid_utf8': 1}


def test_jsonl_objects_count_each_reason(tmp_path):
  path = tmp_path / 'rows.jsonl'
  path.write_bytes(b'{"a": 1}\n{broken\n[1, 2]\n\n"\xff"\n{"b": "\xc3\xa9"}\n')
  skipped = []
  rows = list(line_files.jsonl_objects(str(path), lambda reason, where: skipped.append(where)))
  assert rows == [(f'{path}:1', {'a': 1}), (f'{path}:6', {'b': 'é'})]
  assert skipped == [f'{path}:2', f'{path}:3', f'{path}:5']
  counts = collections.Counter()
  list(line_files.jsonl_objects(str(path), line_files.counting(counts)))
  assert counts == {'invalid_json': 1, 'not_an_object': 1, 'invalid_utf8': 1}
