"""`mlit ingest` refusals and failures as a user meets them: a run that keeps nothing leaves
nothing behind, a changed setting is named with its then/now values, and a flag that cannot
apply to the --format is an error. Real webdataset tar (real JPEGs) and Beam's DirectRunner.
"""

import os

import pytest
import shard_files
import task_files

from mlit.commands import cli

N = 4


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  d = str(tmp_path_factory.mktemp('ingest'))
  url = lambda i: f'http://img.example/{i}.jpg'
  samples = [
    shard_files.sample(f'{i:09d}', url(i), f'a boat {i}', (40 * i, 90, 30)) for i in range(N)
  ]
  shard_files.write_webdataset_tar(os.path.join(d, 'cc-00000.tar'), samples)
  task_files.write_lines(os.path.join(d, 'cc.tsv'), [f'{url(i)}\ta red boat {i}' for i in range(N)])
  return {'dir': d, 'images': f'{d}/cc-00000.tar', 'tsv': f'{d}/cc.tsv'}


def _argv(data, out, shard_key='url', num_shards=2):
  return [
    *('ingest', '--images', data['images'], '--metadata', data['tsv'], '--format', 'cc12m'),
    *('--shard_key', shard_key, '--output', out, '--num_shards', str(num_shards)),
  ]


def _error(capsys) -> str:
  """The one error line, after the skipped rows' warning lines (the first few of each reason)."""
  *before, err = capsys.readouterr().err.strip().splitlines()
  assert err.startswith('mlit ingest: error: '), err
  assert all(l.startswith('mlit ingest: warning: ') for l in before), before
  return err


def test_failed_run_leaves_nothing_so_the_fix_runs_in_the_same_output(data, tmp_path, capsys):
  out = str(tmp_path / 'out')
  assert cli.main(_argv(data, out, shard_key='urll')) == 2  # the typo: every row skipped
  assert 'ingest wrote no example' in _error(capsys)
  assert not os.path.exists(out)  # no manifest to refuse the corrected command
  # An output directory that was there before stays, empty.
  given = tmp_path / 'given'
  given.mkdir()
  assert cli.main(_argv(data, str(given), shard_key='urll')) == 2
  assert os.listdir(given) == []
  assert cli.main(_argv(data, out)) == 0
  assert sorted(os.listdir(out))[0] == 'manifest.json'


def test_changed_settings_are_named_with_then_and_now(data, tmp_path, capsys):
  out = str(tmp_path / 'out')
  assert cli.main(_argv(data, out)) == 0
  capsys.readouterr()
  assert cli.main(_argv(data, out, num_shards=3)) == 2
  err = _error(capsys)
  assert '(num_shards 2 then, 3 now)' in err and 'images' not in err, err
  assert cli.main(_argv(data, out, shard_key='key', num_shards=3)) == 2
  err = _error(capsys)
  assert "(shard_key 'url' then, 'key' now; num_shards 2 then, 3 now)" in err, err


def test_another_wit_kind_into_the_same_output_is_refused(data, tmp_path, capsys):
  """--wit_kind picks the texts: shards of two kinds in one output would mix without a word."""
  rows = [
    task_files.wit_row('en', f'http://img.example/{i}.jpg', f'a boat {i}', alt_text=f'boat {i}')
    for i in range(N)
  ]
  task_files.write_wit(str(tmp_path / 'wit.tsv'), rows)
  out = str(tmp_path / 'out')
  argv = _argv(data, out) + ['--wit_kind', 'reference']
  argv[argv.index('cc12m')] = 'wit'
  argv[argv.index(data['tsv'])] = str(tmp_path / 'wit.tsv')
  assert cli.main(argv) == 0
  capsys.readouterr()
  argv[-1] = 'alt_text'
  assert cli.main(argv) == 2
  assert "(wit_kind 'reference' then, 'alt_text' now)" in _error(capsys)


@pytest.mark.parametrize(
  'flags, message',
  [
    (
      ['--format', 'none', '--wit_kind', 'alt_text'],
      '--wit_kind applies to --format wit only, not --format none',
    ),
    (
      ['--metadata', 'm.tsv', '--format', 'cc12m', '--no_detect_languages'],
      '--no_detect_languages applies to --format yfcc only, not --format cc12m',
    ),
    (
      ['--metadata', 'm.tsv', '--format', 'yfcc', '--wit_kind', 'reference'],
      '--wit_kind applies to --format wit only, not --format yfcc',
    ),
  ],
)
def test_a_flag_of_another_format_is_an_error(flags, message, tmp_path, capsys):
  out = tmp_path / 'out'
  argv = ['ingest', '--images', 'x.tar', '--output', str(out), '--num_shards', '1', *flags]
  assert cli.main(argv) == 2
  assert message in _error(capsys)
  assert not out.exists()


def test_an_output_that_cannot_be_read_is_one_line(tmp_path, capsys):
  """A gs:// --output on a machine without network or credentials (the help's example) ended in
  TensorFlow's traceback; an unknown scheme fails the same way, without a network."""
  argv = ['ingest', '--images', 'x.tar', '--output', 'foo://bucket/out', '--num_shards', '1']
  assert cli.main(argv) == 2
  assert "--output foo://bucket/out: cannot be read: File system scheme 'foo' not implemented" in (
    _error(capsys)
  )
