"""metrics.jsonl and TensorBoard after a resume: every step once."""

import json
import subprocess
import sys

import tensorflow as tf

from mlit.training import progress_log


def _tensorboard_steps(model_dir, tag='loss'):
  """The steps TensorBoard shows for `tag`: a SessionLog START at step s hides
  the earlier events at steps >= s (TensorBoard's purge rule)."""
  steps = []
  for path in sorted((model_dir / 'train').glob('events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      if event.HasField('session_log') and event.session_log.status == event.session_log.START:
        steps = [s for s in steps if s < event.step]
      for value in event.summary.value:
        if value.tag == tag:
          steps.append(event.step)
  return steps


def _log_steps(model_dir, start, stop):
  log = progress_log.ProgressLog(str(model_dir), total_steps=8, batch_size=2, start_step=start)
  for step in range(start + 2, stop + 1, 2):
    log.write(step, {'loss': 1.0 / step})
  log.close()


def test_resume_drops_records_after_the_restored_step(tmp_path):
  _log_steps(tmp_path, 0, 6)  # killed after step 6, last checkpoint at step 4
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 7, "lo')  # a line torn by the kill
  _log_steps(tmp_path, 4, 8)
  lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  assert [json.loads(l)['step'] for l in lines] == [2, 4, 6, 8]
  assert _tensorboard_steps(tmp_path) == [2, 4, 6, 8]


def test_tensorboard_writer_loads_without_pytorch_and_leaves_it_importable(tmp_path):
  # tensorboardX imports torch when installed (the test extra installs it): about 2 s of each
  # run's start, for torch tensors mlit never logs. A fresh interpreter, so torch is not loaded.
  code = f"""
import sys
from mlit.training import progress_log
log = progress_log.ProgressLog({str(tmp_path)!r}, total_steps=2, batch_size=2, start_step=0)
log.write(2, {{'loss': 0.5}})
log.close()
assert 'torch' not in sys.modules, 'tensorboardX loaded torch'
import torch  # still importable afterwards
print(torch.__name__)
"""
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split() == ['torch']
  assert _tensorboard_steps(tmp_path) == [2]


def test_progress_line_counts_the_rows_with_a_duplicate_left_out(tmp_path, capsys):
  log = progress_log.ProgressLog(str(tmp_path), total_steps=4, batch_size=8, start_step=0)
  log.write(2, {'loss': 1.0, 'text/duplicate_rows': 3.0})
  log.write(4, {'loss': 1.0, 'title/duplicate_rows': 2.0, 'tags/duplicate_rows': 5.0})
  log.close()
  lines = capsys.readouterr().err.splitlines()
  assert 'loss 1.0000 duplicate rows 3 pairs/s' in lines[0]
  assert 'duplicate rows tags 5 title 2 pairs/s' in lines[1]


def test_the_first_line_after_a_start_or_resume_gives_no_eta(tmp_path, capsys):
  """Its interval carries the set-up and compilation (README's step 10/60 once said ETA 2:21 of
  a 17 s run); the next lines' intervals are steps only."""
  for start in (0, 4):  # a start, then a resume
    log = progress_log.ProgressLog(str(tmp_path), total_steps=8, batch_size=2, start_step=start)
    log.write(start + 2, {'loss': 1.0})
    log.write(start + 4, {'loss': 1.0})
    log.close()
  lines = capsys.readouterr().err.splitlines()
  assert [l.rsplit('ETA ', 1)[1] == '?' for l in lines] == [True, False, True, False]
  records = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').open()]
  assert [r['step'] for r in records] == [2, 4, 6, 8]
  assert [r['eta_sec'] is None for r in records] == [True, False, True, False]
