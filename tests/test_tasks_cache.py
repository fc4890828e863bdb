"""seqio caching of an mlit task with Apache Beam's DirectRunner, then reading it back."""

import os

import pytest
import seqio
import task_files
from spm_fixture import spm_model_path  # noqa: F401

import gin
from mlit.commands import cache_tasks
from tasks import (
  data_stats,
  vocabularies,  # noqa: F401  (gin configurable)
)
from tasks.user_error import UserError

pytest.importorskip('apache_beam')


@pytest.mark.slow
def test_cache_yfcc_with_beam_and_read_back(tmp_path, spm_model_path, capsys):  # noqa: F811
  rows = [
    task_files.yfcc_row(700 + i, f'Tall tree {i}', 'A forest path', ['tree', 'forest'], line=i)
    for i in range(6)
  ]
  rows.insert(2, task_files.yfcc_row(799, '', '', []))  # skipped before the cache
  task_files.write_lines(str(tmp_path / 'a.tsv.gz'), rows[:4])
  task_files.write_lines(str(tmp_path / 'b.tsv.bz2'), rows[4:])
  gin_path = tmp_path / 'tasks.gin'
  gin_path.write_text(
    'import tasks.registration\nimport tasks.yfcc\nimport tasks.vocabularies\n'
    f"tasks.vocabularies.vocabulary.path = '{spm_model_path}'\n"
    f"tasks.yfcc.register_yfcc.tsv_pattern = '{tmp_path}/*.tsv*'\n"
    'tasks.yfcc.register_yfcc.detect_languages = False\n'
    'tasks.registration.register_tasks.registrations = [@tasks.yfcc.register_yfcc]\n'
  )
  cache_dir = str(tmp_path / 'cache')
  gin.clear_config()
  data_stats.reset()
  try:
    assert (
      cache_tasks.main(
        [f'--gin_file={gin_path}', f'--output_cache_dir={cache_dir}', '--tasks=yfcc100m_full']
      )
      == 0
    )
    argv = [f'--gin_file={gin_path}', f'--output_cache_dir={cache_dir}', '--tasks=yfcc100m_full']
    assert capsys.readouterr().out.strip().splitlines() == [
      f'yfcc100m_full: cached in {cache_dir}: train 6 examples',
      # The empty row below, counted in this process (DirectRunner), not only logged.
      'while caching: rows kept 6, skipped 1 (all_signals_empty 1); 2 files read, each counted '
      'once',
    ]
    gin.clear_config()
    assert cache_tasks.main(argv) == 0  # again: kept, and said
    assert 'yfcc100m_full: already cached in' in capsys.readouterr().out
    gin.clear_config()
    with pytest.raises(UserError, match="--tasks 'yfcc100m_fulll' matches no registered task"):
      cache_tasks.main([*argv[:2], '--tasks=yfcc100m_fulll'])
    task = seqio.get_mixture_or_task('yfcc100m_full')
    assert task.cache_dir == os.path.join(cache_dir, 'yfcc100m_full')
    lengths = {'title': 16, 'description': 16, 'tags': 16}
    cached = list(
      task.get_dataset(
        lengths, split='train', use_cached=True, shuffle=False, seed=1
      ).as_numpy_iterator()
    )
    live = list(
      task.get_dataset(
        lengths, split='train', use_cached=False, shuffle=False, seed=1
      ).as_numpy_iterator()
    )
  finally:
    gin.clear_config()
  assert sorted(e['example_id'] for e in cached) == [str(700 + i).encode() for i in range(6)]
  by_id = {e['example_id']: e for e in live}
  for e in cached:  # deterministic fields match the uncached pipeline
    assert e['title'].tolist() == by_id[e['example_id']]['title'].tolist()
    assert e['description'].tolist() == by_id[e['example_id']]['description'].tolist()
  info = task.get_cached_stats('train')
  assert info['examples'] == 6
  # The trainer's check of USE_CACHED_TASKS / TASK_CACHE_DIRS, before any work.
  from mlit.training import input_pipeline  # pylint: disable=g-import-not-at-top

  input_pipeline.use_task_cache('yfcc100m_full', True, [cache_dir])
  with pytest.raises(UserError, match='needs TASK_CACHE_DIRS'):
    input_pipeline.use_task_cache('yfcc100m_full', True, [])
  import tasks.synthetic  # noqa: F401  pylint: disable=g-import-not-at-top  (registers, uncached)

  with pytest.raises(UserError, match=r'mlit_synthetic_images not cached in TASK_CACHE_DIRS'):
    input_pipeline.use_task_cache('mlit_synthetic_images', True, [cache_dir])

  # The task's settings change (images now): the text-only cache is refused, not kept or read.
  for i in range(6):
    task_files.write_image(str(tmp_path / 'img' / f'{700 + i}.jpg'))
  with open(gin_path, 'a') as f:
    f.write(f"tasks.yfcc.register_yfcc.image_dir = '{tmp_path}/img'\n")
  stale = f'its cache in {cache_dir}/yfcc100m_full was made with other settings: it lacks image'
  gin.clear_config()
  try:
    with pytest.raises(UserError, match=f'yfcc100m_full: {stale}; give --overwrite'):
      cache_tasks.main(argv)
    with pytest.raises(UserError, match=f'task yfcc100m_full: {stale}; cache it again'):
      input_pipeline.use_task_cache('yfcc100m_full', True, [cache_dir])
  finally:
    gin.clear_config()


def test_rows_read_elsewhere_are_not_reported_as_none():
  """A runner whose workers read the rows leaves this process's counters empty: the line says
  so instead of 'kept 0, skipped 0'."""
  data_stats.reset()
  line = cache_tasks._rows_read('--runner=DataflowRunner')
  assert line.startswith('while caching: rows kept and skipped are not counted in this process')
  assert "'--runner=DataflowRunner'" in line


def test_tasks_and_runner_mistakes_are_one_line_before_the_pipeline(tmp_path, capsys):
  """A --tasks that is no regex and a runner Beam does not know ended in tracebacks; a task
  seqio cannot cache (the synthetic ones) was skipped by seqio with an INFO line, and mlit said
  only that no cache came out."""
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  cache_dir = tmp_path / 'cache'
  argv = ['cache-tasks', '--gin_file=local_tiny.gin', f'--gin.MODEL_DIR="{tmp_path / "run"}"']
  argv.append(f'--output_cache_dir={cache_dir}')
  cases = {
    "--tasks '(': not a regular expression (missing ), unterminated subpattern": ['--tasks=('],
    '--pipeline_options (--runner=NoSuchRunner): Unexpected pipeline runner: NoSuchRunner': [
      '--tasks=mlit_synthetic_embeddings',
      '--pipeline_options=--runner=NoSuchRunner',
    ],
    '--tasks: mlit_synthetic_embeddings cannot be cached (no seqio.CacheDatasetPlaceholder': [
      '--tasks=mlit_synthetic_embeddings'
    ],
  }
  try:
    for message, flags in cases.items():
      gin.clear_config()
      assert cli.main([*argv, *flags]) == 2, message
      err = capsys.readouterr().err.strip()
      assert '\n' not in err and err.startswith(f'mlit cache-tasks: error: {message}'), err
  finally:
    gin.clear_config()
  assert not cache_dir.exists()


def test_rows_of_a_source_several_tasks_read_are_counted_once(tmp_path, spm_model_path, capsys):  # noqa: F811
  """WIT's per-language tasks each read all the rows: caching three tasks of 6 rows (one
  skipped) said 'rows kept 15, skipped 3', three times the corpus."""
  rows = [
    task_files.wit_row(l, f'http://w/{l}{i}.jpg', reference=f'{l} {i}')
    for l in ('de', 'ja')
    for i in range(3)
  ]
  rows[1]['caption_reference_description'] = ''  # no text of the kind: skipped
  task_files.write_wit(str(tmp_path / 'wit.tsv'), rows)
  gin_path = tmp_path / 'tasks.gin'
  gin_path.write_text(
    'import tasks.registration\nimport tasks.wit\nimport tasks.vocabularies\n'
    f"tasks.vocabularies.vocabulary.path = '{spm_model_path}'\n"
    f"tasks.wit.register_wit.tsv_pattern = '{tmp_path}/wit.tsv'\n"
    "tasks.wit.register_wit.languages = ['de', 'ja']\n"
    'tasks.registration.register_tasks.registrations = [@tasks.wit.register_wit]\n'
  )
  cache_dir = str(tmp_path / 'cache')
  gin.clear_config()
  data_stats.reset()
  argv = [f'--gin_file={gin_path}', f'--output_cache_dir={cache_dir}']
  try:
    assert cache_tasks.main([*argv, '--tasks=wit_reference,wit_reference.de,wit_reference.ja']) == 0
  finally:
    gin.clear_config()
  out = capsys.readouterr().out.strip().splitlines()
  assert out[-1].startswith('while caching: rows kept 5, skipped 1 (')
  assert out[-1].endswith('; 1 file read, each counted once')
