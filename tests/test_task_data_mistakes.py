"""Data files cut short, and language codes typed into the task registrations: the rows before a
.gz's damage are kept and the damage counted once (never a crash inside the input pipeline), and a
language code that cannot match the data is one line, not a task left empty."""

import collections
import gzip
import hashlib
import json
import logging

import pytest
import seqio
import task_files
from spm_fixture import spm_model_path  # noqa: F401

from eval_multilingual.datasets import wit as wit_eval
from eval_multilingual.datasets import xm3600
from tasks import cc12m, data_stats, wit, yfcc
from tasks.user_error import UserError

N_ROWS = 300


def _noise(i: int) -> str:
  """Text gzip cannot shrink, so that cutting the file in half cuts rows off."""
  return hashlib.sha256(str(i).encode()).hexdigest()


def _cut_in_half(path) -> None:
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])


def _wit_rows(lang='de'):
  return [
    task_files.wit_row(lang, f'https://x/{i}.jpg', reference=_noise(i)) for i in range(N_ROWS)
  ]


def test_a_cut_gz_in_a_wit_task_keeps_its_rows_and_counts_the_damage(tmp_path, vocab):
  path = tmp_path / 'wit_v1.train.all-00000.tsv.gz'
  task_files.write_wit(str(path), _wit_rows())
  _cut_in_half(path)
  wit.register_wit(str(path))
  texts = [
    vocab.decode(e['text'].tolist())
    for e in seqio.get_mixture_or_task('wit_reference')
    .get_dataset({'text': 80}, split='train', shuffle=False)
    .as_numpy_iterator()
  ]
  assert 0 < len(texts) < N_ROWS and texts == [_noise(i) for i in range(len(texts))]
  corpus = data_stats.snapshot()['corpus']['wit']
  assert corpus['skipped'] == {'damaged_file': 1} and corpus['kept'] == len(texts)


def test_a_cut_gz_of_lines_keeps_its_lines_and_counts_the_damage(tmp_path, caplog):
  path = tmp_path / 'captions.jsonl.gz'
  with gzip.open(path, 'wt', encoding='utf-8') as f:
    for i in range(N_ROWS):
      f.write(json.dumps({'image/key': f'k{i}', 'de': {'caption': [_noise(i)]}}) + '\n')
  _cut_in_half(path)
  with caplog.at_level(logging.WARNING):
    pairs, counts = xm3600.read_xm3600(str(path))
  n = len(pairs['de'].texts)
  assert 0 < n < N_ROWS and pairs['de'].texts == [_noise(i) for i in range(n)]
  assert counts == {'damaged_file': 1}
  assert f'damaged_file (first: {path}:{n + 1} (EOFError' in caplog.text


def test_a_cut_wit_test_file_is_evaluated_up_to_the_damage(tmp_path):
  path = tmp_path / 'wit_v1.test.all-00000.tsv.gz'
  task_files.write_wit(str(path), _wit_rows())
  _cut_in_half(path)
  pairs, counts = wit_eval.read_wit(str(path))
  assert 0 < len(pairs['de'].texts) < N_ROWS and counts == {'damaged_file': 1}
  not_gzip = tmp_path / 'wit_v1.test.all-00001.tsv.gz'
  not_gzip.write_text('language\tpage_url\n', encoding='utf-8')
  with pytest.raises(UserError, match=f'^{not_gzip}: line 1: unreadable \\(BadGzipFile'):
    wit_eval.read_wit(str(not_gzip))


def _yfcc(tmp_path, languages):
  path = tmp_path / 'yfcc100m_dataset-0'
  task_files.write_lines(str(path), [task_files.yfcc_row(0, title='ein Apfel')])
  counts = tmp_path / 'language_stats.json'
  counts.write_text(json.dumps({l: {'n_train_examples': 5} for l in ('de', 'en', 'fr')}))
  yfcc.register_yfcc(str(path), languages=languages, language_counts_path=str(counts))


def test_yfcc_languages_the_counts_lack_are_named(tmp_path, vocab):
  with pytest.raises(UserError) as e:
    _yfcc(tmp_path, ['de', 'fra'])
  assert str(e.value).splitlines()[0] == (
    f"register_yfcc.languages: {tmp_path}/language_stats.json has no count for 'fra' (did you "
    "mean 'fr'?); available: de, en, fr"
  )
  with pytest.raises(
    UserError, match="register_yfcc.languages: 'french': 'french' is not an ISO 639"
  ):
    _yfcc(tmp_path, ['french'])
  _yfcc(tmp_path, ['de', 'FR'])  # in the data's spelling: fr
  rates = seqio.get_mixture_or_task('yfcc100m_full.languages').get_rate
  assert rates(seqio.get_mixture_or_task('yfcc100m_full.fr')) > 0


def test_wit_languages_are_read_in_the_datas_spelling(tmp_path, vocab):
  path = tmp_path / 'wit_v1.train.all-00000.tsv'
  task_files.write_wit(str(path), _wit_rows('zh-TW')[:3] + _wit_rows('de')[:2])
  names = wit.register_wit(str(path), languages=['zh_tw'])
  assert names == ['wit_reference', 'wit_reference.zh_TW']
  ds = seqio.get_mixture_or_task('wit_reference.zh_TW').get_dataset(
    {'text': 80}, split='train', shuffle=False
  )
  assert collections.Counter(e['language'] for e in ds.as_numpy_iterator()) == {b'zh-TW': 3}
  with pytest.raises(UserError, match="register_wit.languages: 'chinese'"):
    wit.register_wit(str(path), languages=['chinese'])
  # A country code that is no language's left its task empty, and a mixture with it stopped
  # after a few examples of the others.
  with pytest.raises(UserError) as e:
    wit.register_wit(str(path), languages=['de', 'jp'])
  assert str(e.value).splitlines()[0] == (
    "register_wit.languages: 'jp': 'jp' is a country code, no language's (did you mean 'ja'?)"
  )


def test_an_emoji_build_not_here_says_where_it_was_looked_for(tmp_path, monkeypatch):
  from tasks.emoji_cldr import data as emoji_data

  monkeypatch.chdir(tmp_path)  # a run's config.gin read from another folder
  with pytest.raises(FileNotFoundError, match=f'relative to the working directory {tmp_path};'):
    emoji_data.load('runs/demo/data')
  (tmp_path / 'empty').mkdir()  # there, but never built
  with pytest.raises(FileNotFoundError, match='build the dataset first'):
    emoji_data.load('empty')


def test_a_registration_that_can_read_nothing_is_one_line(tmp_path, vocab):
  """Both registered, and the task read nothing: no file at all (an error only when seqio first
  read it), or every row skipped as missing_image."""
  nothing = str(tmp_path / 'nothing-*')
  for register in (wit.register_wit, yfcc.register_yfcc, cc12m.register_cc12m):
    with pytest.raises(FileNotFoundError, match=r"tsv_pattern '.*nothing-\*' matches no file"):
      register(nothing)
  path = tmp_path / 'wit_v1.train.all-00000.tsv'
  task_files.write_wit(str(path), _wit_rows()[:2])
  with pytest.raises(FileNotFoundError, match="image_dir '.*images': no such directory"):
    wit.register_wit(str(path), image_dir=str(tmp_path / 'images'))


def test_a_wit_test_row_with_a_bad_byte_is_counted_not_altered(tmp_path):
  """It was read with U+FFFD in its text and scored."""
  path = tmp_path / 'wit_v1.test.all-00000.tsv'
  task_files.write_wit(
    str(path), _wit_rows()[:3], extra_raw=b'de\tx\thttps://x/9.jpg\tX' + b'\t\xff' * 13 + b'\n'
  )
  pairs, counts = wit_eval.read_wit(str(path))
  assert pairs['de'].texts == [_noise(i) for i in range(3)] and counts == {'invalid_utf8': 1}


def test_cache_tasks_given_a_mixture_names_its_tasks(tmp_path, vocab):
  """`mlit cache-tasks --tasks=yfcc100m_full.languages` said only that no task matches."""
  from mlit.commands import cache_tasks as cache_command

  _yfcc(tmp_path, ['de', 'fr'])
  with pytest.raises(UserError) as e:
    cache_command._matching_tasks(['yfcc100m_full.languages'])
  assert 'yfcc100m_full.languages is a mixture, cached as its tasks: give those ' in str(e.value)
  assert '(--tasks=yfcc100m_full.de,yfcc100m_full.fr)' in str(e.value)
