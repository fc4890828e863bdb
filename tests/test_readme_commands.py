"""README.md's command blocks that run on local data, run as printed (tiny sizes via gin)."""

import os
import time

import readme_blocks


def test_every_command_block_is_marked():
  unmarked = [b.line for b in readme_blocks.blocks() if b.commands and b.mark is None]
  assert not unmarked, f'README.md blocks without <!-- test: --> or <!-- untested: -->: {unmarked}'
  assert readme_blocks.group_blocks('local') and readme_blocks.group_blocks('demo')


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
