"""User mistakes met walking the README's Training and pod-scale ingest sections: each one line
(exit 2) naming the key, flag or directory, found before any work."""

import os
import pathlib
import subprocess
import sys

import pytest

from mlit.commands import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def _train(tmp_path, *flags) -> int:
  argv = ['train', '--gin_file=local_tiny.gin', f'--gin.MODEL_DIR="{tmp_path / "run"}"', *flags]
  return cli.main(argv)


def test_a_misspelt_task_name_is_one_line_naming_the_close_one(tmp_path):
  """In a fresh process (as a user runs it) the task registry's modules are first imported once
  gin is locked: that was gin's RuntimeError traceback, not the line naming MIXTURE_OR_TASK_NAME."""
  proc = subprocess.run(
    [sys.executable, '-m', 'mlit.commands.cli', 'train', '--gin_file=local_tiny.gin']
    + [f'--gin.MODEL_DIR="{tmp_path / "run"}"', '--dry_run']
    + ['--gin.MIXTURE_OR_TASK_NAME="mlit_synthetic_embedding"'],
    cwd=tmp_path,
    env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='2'),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == (
    "mlit train: error: MIXTURE_OR_TASK_NAME 'mlit_synthetic_embedding' is not a registered seqio "
    "task or mixture (did you mean 'mlit_synthetic_embeddings'?); import the module that "
    'registers it in a gin file (or --module_import), or bind '
    'tasks.registration.register_tasks.registrations'
  )
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize(
  'key, value',
  [
    ('train.train.log_period', '0'),  # was a ZeroDivisionError traceback after the first step
    ('train.train.log_period', '-1'),  # was a line at every step
    ('train.train.checkpoint_period', '0'),  # was a ValueError traceback
    ('train.train.keep_checkpoints', '0'),  # Orbax kept no checkpoint: nothing to resume
  ],
)
def test_periods_and_kept_checkpoints_must_be_positive(key, value, tmp_path, capsys):
  assert _train(tmp_path, f'--gin.{key}={value}') == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f'mlit train: error: {key} must be a positive integer, got {value}']
  assert not (tmp_path / 'run').exists()


def test_a_model_dir_that_is_a_file_is_named_by_the_dry_run_too(tmp_path, capsys):
  (tmp_path / 'run').write_text('')  # was "Not a directory: .../run/checkpoints" after set-up
  assert _train(tmp_path, '--dry_run') == 2
  assert capsys.readouterr().err.strip() == (
    f"mlit train: error: MODEL_DIR '{tmp_path / 'run'}' is a file, not a directory"
  )


def test_a_model_dir_that_is_not_this_configs_run_is_one_line(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)
  steps = ['--gin.TRAIN_STEPS=2', '--gin.WARMUP_STEPS=1']
  run = ['train', '--gin_file=local_tiny.gin', '--gin.MODEL_DIR="run"', *steps]
  assert cli.main(run) == 0
  capsys.readouterr()
  # Finished: the same command with another batch trains nothing and keeps the run's config.gin
  # (it was replaced by one saying BATCH_SIZE = 16, a batch the run never trained with).
  config = (tmp_path / 'run' / 'config.gin').read_text()
  assert cli.main([*run, '--gin.BATCH_SIZE=16']) == 0
  assert capsys.readouterr().err.splitlines()[-1] == (
    'the run has finished: step 2 of 2; nothing to train (a larger TRAIN_STEPS continues it)'
  )
  assert (tmp_path / 'run' / 'config.gin').read_text() == config
  # Another model into it: was orbax's "tree structures do not match", naming no setting.
  layers = '--gin.text_tower.T5Config.num_encoder_layers=1'
  assert cli.main([*run, layers, '--dry_run']) == 2
  [line] = capsys.readouterr().err.strip().splitlines()
  assert line.startswith(
    'mlit train: error: MODEL_DIR run: no checkpoint restores into this config, which differs '
    "from the run's config.gin (- text_tower.T5Config.num_encoder_layers = 2; "
    "+ text_tower.T5Config.num_encoder_layers = 1): another config's run? Give this run a new "
    'MODEL_DIR, or resume that one with its own config ('
  ), line
  # Its config.gin from another folder: the relative MODEL_DIR was a new run there, from step 0.
  (tmp_path / 'elsewhere').mkdir()
  monkeypatch.chdir(tmp_path / 'elsewhere')
  assert cli.main(['train', '--gin_file=../run/config.gin', '--dry_run']) == 2
  assert capsys.readouterr().err.strip() == (
    "mlit train: error: MODEL_DIR 'run', relative in ../run/config.gin, is not that run's "
    f'directory from this folder ({tmp_path / "elsewhere" / "run"}, not {tmp_path / "run"}): '
    'run from the folder the run started in, or give '
    f'--gin.MODEL_DIR=\\"{tmp_path / "run"}\\" to resume it'
  )
  assert not (tmp_path / 'elsewhere' / 'run').exists()


@pytest.mark.parametrize(
  'flag, message',
  [
    (  # was names look like ['img_head/bias', 'img_head/kernel', 't']: no text tower name
      '--gin.train.train.freeze=["^txt/encodr/"]',
      "freeze rule '^txt/encodr/' matches no parameter (did you mean 'txt/encoder/'?)",
    ),
    (  # was tasks/length_buckets.py's ValueError traceback
      '--gin.train.train.length_buckets=(4, 16)',
      'train.train.length_buckets (4, 16) exceed the text feature length 8 '
      "(TASK_FEATURE_LENGTHS={'text': 8})",
    ),
    (  # was the list of every macro, the close one among them
      '--gin.LEARNING_RAT=0.1',
      "unknown macro 'LEARNING_RAT' in binding 'LEARNING_RAT = 0.1' (did you mean "
      'LEARNING_RATE?): the gin files define ',
    ),
  ],
)
def test_a_misspelt_setting_names_the_close_one(flag, message, tmp_path, capsys):
  assert _train(tmp_path, flag, '--dry_run') == 2
  [line] = capsys.readouterr().err.strip().splitlines()
  assert line.startswith(f'mlit train: error: {message}'), line


_VIT = "--gin.train.train.inference_image={'kind': 'vit', 'config': {}, 'size': 32}"


@pytest.mark.parametrize(
  'flags, message',
  [
    (  # was silently nothing: no run to continue the optimizer of
      ['--gin.train.train.init_from_run_optimizer=True', '--dry_run'],
      'train.train.init_from_run_optimizer = True continues the optimizer of the run that '
      'CONTINUE_FROM names, but CONTINUE_FROM is None',
    ),
    (  # was silently nothing: pre-computed embeddings load no image checkpoint
      ['--gin.train.train.image_dont_load=["^x"]', '--dry_run'],
      "train.train.image_dont_load = ['^x'] but this run loads no image checkpoint",
    ),
    (  # the dry run passed; the run stopped after set-up
      ["--gin.train.train.inference_image={'kind': 'vit'}", '--dry_run'],
      "train.inference_image lacks ['config', 'size']",
    ),
    (  # was [Errno 2] after set-up, naming no key, MODEL_DIR left with config.gin
      [_VIT, '--gin.IMAGE_CHECKPOINT_PATH="tower.npz"'],
      "IMAGE_CHECKPOINT_PATH 'tower.npz': no such file (train.train.inference_image records it",
    ),
  ],
)
def test_settings_the_run_would_not_read_stop_it_before_any_work(
  flags, message, tmp_path, capsys, monkeypatch
):
  monkeypatch.chdir(tmp_path)
  assert _train(tmp_path, *flags) == 2
  [line] = capsys.readouterr().err.strip().splitlines()
  assert line.startswith(f'mlit train: error: {message}'), line
  assert not (tmp_path / 'run').exists()


def test_an_image_checkpoint_a_run_on_embeddings_never_loads_is_a_warning(tmp_path, capsys):
  assert _train(tmp_path, '--gin.IMAGE_CHECKPOINT_PATH="tower.npz"', '--dry_run') == 0
  warnings = [l for l in capsys.readouterr().err.splitlines() if l.startswith('warning: ')]
  assert warnings == [
    "warning: IMAGE_CHECKPOINT_PATH = 'tower.npz' is not loaded: the task gives pre-computed "
    'embeddings (IMAGE_TOWER = None); it is recorded in mlit_model.json only with '
    'train.train.inference_image, the tower that made them'
  ]


def _ingest(tmp_path, *flags):
  argv = ['ingest', '--output', str(tmp_path / 'out'), '--num_shards', '2', *flags]
  return cli.main(argv)


def test_an_unquoted_images_pattern_expanded_by_the_shell_is_named(tmp_path, capsys):
  shards = [tmp_path / f'{i:05d}.tar' for i in range(2)]
  for shard in shards:
    shard.write_bytes(b'')
  assert _ingest(tmp_path, '--images', *map(str, shards)) == 2
  assert capsys.readouterr().err.strip() == (
    f'mlit ingest: error: unrecognized arguments: {shards[1]}: files, so the shell expanded an '
    f"unquoted --images pattern; quote it for mlit to expand, e.g. --images '{tmp_path}/*.tar' "
    '(mlit ingest --help lists the options)'
  )


def test_a_misspelt_beam_runner_is_one_line_before_any_output(tmp_path, capsys):
  (tmp_path / 'a.tar').write_bytes(b'')
  assert _ingest(tmp_path, '--images', str(tmp_path / 'a.tar'), '--', '--runner=DirectRuner') == 2
  [line] = capsys.readouterr().err.strip().splitlines()
  assert line.startswith(
    'mlit ingest: error: the Beam options after -- (--runner=DirectRuner): Unexpected pipeline '
    'runner: DirectRuner.'
  ), line
  assert not (tmp_path / 'out').exists()
