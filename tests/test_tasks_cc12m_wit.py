"""CC12M and WIT tasks on made-up files in their real formats."""

import pytest
import seqio
import task_files
from spm_fixture import spm_model_path  # noqa: F401

from tasks import cc12m, data_stats, image_store, wit
from tasks.user_error import UserError


def _examples(name, length=32):
  ds = seqio.get_mixture_or_task(name).get_dataset(
    {'text': length}, split='train', shuffle=False, seed=0
  )
  return list(ds.as_numpy_iterator())


def test_cc12m_with_images_and_bad_rows(tmp_path, vocab, caplog):
  urls = [f'http://img.example.com/{i}.jpg' for i in range(5)]
  lines = [f'{u}\ta <i>dog</i> on the beach {i}' for i, u in enumerate(urls)]
  lines += ['http://x/only-url', 'http://x/a\tcap\textra', 'http://x/empty\t  <br> ']
  task_files.write_lines(str(tmp_path / 'cc12m.tsv'), lines[:3])
  task_files.write_lines(str(tmp_path / 'cc12m-1.tsv.gz'), lines[3:], [b'http://x/bad\tcaf\xe9'])
  for u in urls[:4]:
    task_files.write_image(str(tmp_path / 'img' / f'{image_store.url_id(u)}.jpg'))
  cc12m.register_cc12m(str(tmp_path / 'cc12m*'), image_dir=str(tmp_path / 'img'))
  exs = _examples('cc12m')
  assert sorted(vocab.decode(e['text'].tolist()) for e in exs) == [
    f'a dog on the beach {i}' for i in range(4)
  ]
  assert all(e['image'].shape == (224, 224, 3) for e in exs)
  assert data_stats.snapshot()['skipped_rows'] == {
    'wrong_column_count': 2,
    'all_signals_empty': 1,
    'invalid_utf8': 1,
    'missing_image': 1,
  }
  missing = [r.getMessage() for r in caplog.records if 'missing_image' in r.getMessage()]
  assert len(missing) == 1 and missing[0].endswith(
    f'no image file {tmp_path}/img/{image_store.url_id(urls[4])}.jpg (the image of {urls[4]}: '
    'files are named by the sha1 of the URL)'
  )


def test_wit_quoting_booleans_kinds_and_languages(tmp_path, vocab):
  rows = [
    task_files.wit_row(
      'en',
      'u0',
      reference='A "quoted"\tcat\non two lines',
      attribution='English: a cat',
      passes='false',
      is_main='false',
    ),
    task_files.wit_row('de', 'u1', reference='Ein Hund', alt_text='Hund im Park'),
    task_files.wit_row('fr', 'u2', reference='', attribution='Un chat'),
    task_files.wit_row('de', 'u3', reference='Zwei Hunde', is_main='maybe'),
    ['en', 'too', 'few'],
    # Flags WIT left empty: the row is kept ('' for is_main_image), and an attribution whose
    # language check is not given is not used. They were bad_field: the row was lost.
    task_files.wit_row('en', 'u4', reference='A cat', attribution='Cat', is_main='', passes=''),
  ]
  rows[-1]['page_changed_recently'] = ''
  task_files.write_wit(
    str(tmp_path / 'wit_v1.train.all-00000-of-00001.tsv.gz'),
    rows,
    extra_raw=b'en\t\xff' + b'\tx' * 15 + b'\n',
  )
  names = wit.register_wit(
    str(tmp_path / 'wit_v1.train.*.tsv.gz'),
    kinds=('reference', 'attribution', 'alt_text'),
    languages=('de', 'zh-TW'),
  )
  assert 'wit_reference.de' in names and 'wit_reference.zh_TW' in names
  ref = _examples('wit_reference')
  assert [vocab.decode(e['text'].tolist()) for e in ref] == [
    'A "quoted" cat on two lines',
    'Ein Hund',
    'A cat',
  ]
  # 'false' parsed as False (bool('false') would be True); an empty flag is not given.
  assert [e['is_main_image'] for e in ref] == [b'false', b'true', b'']
  stats = data_stats.snapshot()['skipped_rows']
  assert stats['bad_field'] == 1 and stats['wrong_column_count'] == 1
  assert stats['invalid_utf8'] == 1
  # The en attributions: one fails its language check, one has none given; de has no
  # attribution; fr passes. Each counted under its reason, not as an empty text.
  data_stats.reset()
  assert [e['language'] for e in _examples('wit_attribution')] == [b'fr']
  stats = data_stats.snapshot()['skipped_rows']
  assert stats['failed_language_id'] == 2 and stats['all_signals_empty'] == 1, stats
  assert [vocab.decode(e['text'].tolist()) for e in _examples('wit_alt_text')] == ['Hund im Park']
  assert [e['language'] for e in _examples('wit_reference.de')] == [b'de']


def test_wit_bad_header_names_file(tmp_path):
  path = str(tmp_path / 'wit.tsv')
  with open(path, 'w') as f:
    f.write('language\tpage_url\nen\tx\n')
  with pytest.raises(ValueError, match='wit.tsv:1: WIT header'):
    list(wit.read_wit(path, 'reference'))
  # Registering a pattern that matches it stops there, before any training work, in one line.
  with pytest.raises(UserError, match='wit.tsv:1: WIT header must be the 17 columns'):
    wit.register_wit(str(tmp_path / '*.tsv'))


def test_wit_parse_bool():
  assert wit.parse_bool('false') is False and wit.parse_bool('TRUE') is True
  assert wit.parse_bool(' ') is None
  with pytest.raises(ValueError, match="expected 'true', 'false' or empty, got 'yes'"):
    wit.parse_bool('yes')


def test_wit_blank_lines_are_no_rows_and_skips_name_the_row_start(tmp_path, caplog):
  """Blank lines (a file ending in '\n\n', say) are not rows, as in the other readers: they were
  counted as wrong_column_count. A skipped row is named by the line it starts on, not the last
  line of its multi-line quoted fields."""
  rows = [task_files.wit_row('de', f'http://w/{i}.jpg', reference=f'Bild {i}') for i in range(3)]
  rows[1]['is_main_image'] = 'yes'
  path = str(tmp_path / 'wit.tsv')
  task_files.write_wit(path, rows, extra_raw=b'\n\n')  # each row spans two lines
  data_stats.reset()
  kept = [r['text'] for r in data_stats.first_pass('wit', path, wit.read_wit(path, 'reference'))]
  assert kept == ['Bild 0', 'Bild 2']
  assert data_stats.snapshot()['corpus']['wit']['skipped'] == {'bad_field': 1}
  assert f'{path}:4: expected' in caplog.text  # header 1, row 0 on lines 2-3, row 1 from line 4
