"""README.md's command blocks that run on local data, run as printed (tiny sizes via gin)."""

import os
import time

import pytest
import readme_blocks


def test_every_command_block_is_marked():
  unmarked = [b.line for b in readme_blocks.blocks() if b.commands and b.mark is None]
  assert not unmarked, f'README.md blocks without <!-- test: --> or <!-- untested: -->: {unmarked}'
  assert readme_blocks.group_blocks('local') and readme_blocks.group_blocks('demo')


@pytest.mark.slow
def test_local_blocks_run_as_printed(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  # The data the backtranslation block names.
  (tmp_path / 'captions.tsv').write_text(
    'c1\tA red apple on a wooden table\nc2\tTwo dogs play in the snow\n', encoding='utf-8'
  )
  for block, extra in readme_blocks.group_blocks('local'):
    for command in block.commands:
      start = time.time()
      assert readme_blocks.run(command, extra) == 0, (block.line, command)
      print(f'README line {block.line}: {time.time() - start:.1f}s {command[:60]}')
  assert os.path.isdir('runs/lit_tiny/checkpoints') and os.path.isdir('runs/mt5_small_lu')
  assert os.path.exists('bt/summary.json')


def test_public_benchmark_gin_files_name_the_data_they_need(capsys):
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  needs = {
    'eval/wit.gin': 'WIT_FILES, WIT_IMAGES',
    'eval/xm3600.gin': 'XM3600_CAPTIONS, XM3600_IMAGES',
    'eval/imagenet.gin': 'TFDS_DATA_DIR',
    'eval_multilingual.gin': 'TFDS_DATA_DIR, WIT_FILES, WIT_IMAGES, XM3600_CAPTIONS, XM3600_IMAGES',
  }
  for gin_file, macros in needs.items():
    argv = ['eval', '--gin_file=local_tiny.gin', f'--gin_file={gin_file}']
    assert cli.main([*argv, '--gin.MODEL_DIR="m"', '--gin.RUN_DIR="r"']) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
      f'mlit eval: error: required gin macro(s) not set: {macros} (they are %gin.REQUIRED; '
      f'pass e.g. {" ".join(f"--gin.{m}=..." for m in macros.split(", "))})'
    )
