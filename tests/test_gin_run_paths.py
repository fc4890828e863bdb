"""A run's config.gin read from another folder: which relative paths are read where the run trained
(the chain, `make demo`'s run evaluated from another folder, is in test_demo_pipeline.py)."""

import os

import pytest

import gin
from mlit.commands import gin_flags, gin_run_paths


def _run(tmp_path, model_dir="'runs/r/train'", marker=True):
  work = tmp_path / 'work'
  train = work / 'runs' / 'r' / 'train'
  os.makedirs(work / 'runs' / 'r' / 'data')
  os.makedirs(train)
  (train / 'config.gin').write_text(
    f"EMOJI_DATA = 'runs/r/data'\nHERE_TOO = 'shared'\nNOWHERE = 'runs/r/gone'\n"
    f'MODEL_DIR = {model_dir}\n'
  )
  if marker:
    (train / 'mlit_model.json').write_text('{}')
  elsewhere = tmp_path / 'elsewhere'
  os.makedirs(elsewhere / 'shared')
  os.makedirs(work / 'shared')
  return work, str(train / 'config.gin'), elsewhere


def _parse(config, bindings=()):
  gin_flags.parse_gin([config], list(bindings))
  return {n: gin.query_parameter(f'%{n}') for n in ('EMOJI_DATA', 'HERE_TOO', 'NOWHERE')}


@pytest.fixture(autouse=True)
def _clear_gin():
  yield
  gin.clear_config()


def test_only_paths_missing_here_and_found_there_are_read_there(tmp_path, monkeypatch, capsys):
  work, config, elsewhere = _run(tmp_path)
  monkeypatch.chdir(elsewhere)
  got = _parse(config)
  # 'shared' is here too: what is here wins; 'runs/r/gone' is nowhere: left for its reader's error
  assert got == {
    'EMOJI_DATA': f'{work}/runs/r/data',
    'HERE_TOO': 'shared',
    'NOWHERE': 'runs/r/gone',
  }
  err = capsys.readouterr().err
  assert err == (
    f'warning: {config} names EMOJI_DATA relative to the folder the run trained in; they are not '
    f'in this one ({elsewhere}): reading them from {work}\n'
  )
  assert gin.query_parameter('%MODEL_DIR') == 'runs/r/train'  # the commands find the run
  # A flag binding MODEL_DIR (as `mlit train` asks, to resume from here) keeps the folder known
  assert _parse(config, [f'MODEL_DIR = "{work}/runs/r/train"'])['EMOJI_DATA'] == (
    f'{work}/runs/r/data'
  )
  # A flag binding the path itself: what the user typed is what they meant
  assert _parse(config, ["EMOJI_DATA = 'mine'"])['EMOJI_DATA'] == 'mine'
  monkeypatch.chdir(work)  # where it trained: nothing to say
  capsys.readouterr()
  assert _parse(config)['EMOJI_DATA'] == 'runs/r/data' and capsys.readouterr().err == ''


@pytest.mark.parametrize(
  'model_dir, marker',
  [
    ("'runs/r/train'", False),  # a config.gin that is not a run's (no mlit_model.json beside it)
    ("'other/train'", True),  # its folder does not end with its MODEL_DIR: copied, renamed
    ("'/abs/runs/r/train'", True),  # absolute: its paths were not relative to a folder
    ("'../r/train'", True),
  ],
)
def test_no_folder_is_guessed(tmp_path, monkeypatch, model_dir, marker):
  _, config, elsewhere = _run(tmp_path, model_dir, marker)
  monkeypatch.chdir(elsewhere)
  assert gin_run_paths.trained_in(config) is None
  assert _parse(config)['EMOJI_DATA'] == 'runs/r/data'


@gin.configurable
def _path_probe(tsv_pattern=None, split=None):
  return tsv_pattern, split


def test_a_parameters_relative_path_is_read_there_too(tmp_path, monkeypatch, capsys):
  """Not only macros: a run's own gin file binds a task's files as a parameter
  (`tasks.wit.register_wit.tsv_pattern = 'data/wit-*.tsv.gz'`); resumed or evaluated from another
  folder, registration stopped with 'tsv_pattern ... matches no file', before the line that names
  the run's folder. A word that a folder there happens to hold ('train') is not a path."""
  work, config, elsewhere = _run(tmp_path)
  (work / 'data').mkdir()
  (work / 'data' / 'wit-0.tsv.gz').write_text('')
  (work / 'train').mkdir()
  with open(config, 'a', encoding='utf-8') as f:
    f.write(f"{__name__}._path_probe.tsv_pattern = 'data/wit-*.tsv.gz'\n")
    f.write(f"{__name__}._path_probe.split = 'train'\n")
  monkeypatch.chdir(elsewhere)
  got = _parse(config)
  assert got['EMOJI_DATA'] == f'{work}/runs/r/data'
  assert gin.get_configurable(_path_probe)() == (f'{work}/data/wit-*.tsv.gz', 'train')
  assert capsys.readouterr().err == (
    f'warning: {config} names EMOJI_DATA, _path_probe.tsv_pattern relative to the folder the run '
    f'trained in; they are not in this one ({elsewhere}): reading them from {work}\n'
  )
  # A flag binding it: what the user typed is what they meant
  gin_flags.parse_gin([config], [f"{__name__}._path_probe.tsv_pattern = 'mine/*.tsv'"])
  assert gin.get_configurable(_path_probe)()[0] == 'mine/*.tsv'
