"""Resume torture: SIGKILL a tiny run at seeded random moments (one inside a checkpoint write),
damage the newest checkpoint, resume each time; the end equals an uninterrupted run bit for bit.

Reuses test_train_run's tiny run (lit_test_slow: ~20 ms per example, so kills land between
steps) and its helpers; each killed run is a subprocess.
"""

import json
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_checkpointing import _truncate_largest_file
from test_train_run import REPO, _args, _env, _final, reference, setup  # noqa: F401

from mlit.training import train

STEPS = 12  # test_train_run's run: checkpoints every 4 steps, a metrics record every 2


def _start(gin_file, model_dir, data):
  return subprocess.Popen(
    [sys.executable, '-m', 'mlit.training.train', *_args(gin_file, model_dir)],
    cwd=REPO,
    env=_env(data),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )


def _logged_steps(model_dir):
  path = model_dir / 'metrics.jsonl'
  if not path.exists():
    return []
  steps = []
  for line in path.read_text().splitlines():
    try:
      steps.append(json.loads(line)['step'])
    except ValueError:
      pass  # the line being written
  return steps


def _kill_when(proc, ready, what):
  deadline = time.time() + 300
  while not ready() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == -signal.SIGKILL, f'kill {what}: the run ended by itself\n{err[-3000:]}'


def _after(rng, condition, most=0.5):
  """True from a seeded random delay (up to `most` s, about one step) after `condition`."""
  delay, since = rng.uniform(0, most), []

  def ready():
    if not since and condition():
      since.append(time.time())
    return bool(since) and time.time() - since[0] >= delay

  return ready


def _writing_checkpoint(ckpt_dir):
  return ckpt_dir.exists() and any('tmp' in p.name for p in ckpt_dir.iterdir())


def _done_steps(ckpt_dir):
  return sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_kills_and_a_damaged_checkpoint_end_bit_identical(setup, reference, capfd):  # noqa: F811
  root, data, gin_file = setup
  model_dir = root / 'torture'
  ckpts = model_dir / 'checkpoints'
  rng = random.Random(20)
  # 1: a random moment after the first logged step (around the first checkpoint).
  _kill_when(_start(gin_file, model_dir, data), _after(rng, lambda: _logged_steps(model_dir)), '1')
  # 2: while a checkpoint is being written (orbax's temporary directory exists).
  proc = _start(gin_file, model_dir, data)
  _kill_when(proc, lambda: _writing_checkpoint(ckpts), '2')
  # 3: a random moment after the second complete checkpoint.
  proc = _start(gin_file, model_dir, data)
  _kill_when(proc, _after(rng, lambda: len(_done_steps(ckpts)) >= 2), '3')
  done = _done_steps(ckpts)
  assert len(done) >= 2, done  # (the last may be step 12: damaged, it is redone as well)
  # The newest checkpoint is damaged: the run goes back to the one before, and says so.
  _truncate_largest_file(ckpts / str(done[-1]))
  capfd.readouterr()
  assert train.main(_args(gin_file, model_dir)) == 0
  err = capfd.readouterr().err
  assert f'{ckpts}/{done[-1]}: checkpoint unreadable' in err
  assert f'resumed from step {done[-2]}' in err
  final = _final(model_dir)
  assert final.keys() == reference.keys()
  for key in final:
    np.testing.assert_array_equal(final[key], reference[key], err_msg=key)
  assert _logged_steps(model_dir) == list(range(2, STEPS + 1, 2))  # each step once
  stats = json.loads((model_dir / 'data_stats.json').read_text())
  assert stats['consumed'] == {'steps': STEPS, 'examples': STEPS * 16, 'batch_size': 16}
  # The examples per language of every batch trained on, the steps before each resume included
  # (checkpoints keep the counts): they counted from the last resume only.
  uninterrupted = json.loads((root / 'reference' / 'language_stats.json').read_text())
  assert sum(v['n_train_examples'] for v in uninterrupted.values()) == STEPS * 16
  assert json.loads((model_dir / 'language_stats.json').read_text()) == uninterrupted


def _start_interruptible(gin_file, model_dir, data, temp_dir):
  """The run as from a terminal: SIGINT at its default (a worker process may ignore it, and a
  child inherits an ignored signal); Python turns it into KeyboardInterrupt. TMPDIR is temp_dir."""
  wrapper = (
    'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); '
    'os.execv(sys.executable, [sys.executable, "-m", "mlit.training.train", *sys.argv[1:]])'
  )
  return subprocess.Popen(
    [sys.executable, '-c', wrapper, *_args(gin_file, model_dir)],
    cwd=REPO,
    env={**_env(data), 'TMPDIR': str(temp_dir)},
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )


def _signal_when(proc, ready, sig):
  deadline = time.time() + 300
  while not ready() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.005)
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + sig, f'{sig.name}: exit {proc.returncode}\n{err[-3000:]}'
  assert 'Traceback' not in err and 'ERROR' not in err, err[-3000:]
  return err.strip().splitlines()[-1]


@pytest.mark.slow
def test_sigterm_and_ctrl_c_say_where_it_resumes_and_leave_no_half_write(
  setup,  # noqa: F811
  reference,  # noqa: F811
):
  root, data, gin_file = setup
  model_dir = root / 'ctrl_c'
  ckpts = model_dir / 'checkpoints'
  rng = random.Random(3)
  # The runs' temporary folder: TensorFlow's autograph writes the functions it converts there and
  # removes them at a normal exit only; a Ctrl-C'd command ends without teardown and left them.
  temp_dir = root / 'ctrl_c_tmp'
  temp_dir.mkdir()

  def a_new_logged_step():
    first = len(_logged_steps(model_dir))
    return lambda: len(_logged_steps(model_dir)) > first

  # SIGTERM (a preemption notice) early in the run: the step reached is saved, off the period.
  proc = _start_interruptible(gin_file, model_dir, data, temp_dir)
  last = _signal_when(proc, lambda: _logged_steps(model_dir), signal.SIGTERM)
  match = re.fullmatch(
    r'mlit train: stopped by SIGTERM \(a preemption notice\) after step (\d+), saved as '
    rf'checkpoint \1 in {re.escape(str(ckpts))}: the same command resumes from it',
    last,
  )
  assert match, last
  assert int(match[1]) == _done_steps(ckpts)[-1] < STEPS and not _writing_checkpoint(ckpts)
  assert not list(temp_dir.iterdir())

  # Ctrl-C while a checkpoint is written, then at a random moment: the write is finished, and
  # the line names the newest checkpoint on disk.
  def writing_a_step():  # during this run's steps (a Ctrl-C in its set-up gets the general line)
    stepped = a_new_logged_step()
    return lambda: stepped() and _writing_checkpoint(ckpts)

  for moment in (writing_a_step, lambda: _after(rng, a_new_logged_step())):
    ready = moment()  # from this run's start
    proc = _start_interruptible(gin_file, model_dir, data, temp_dir)
    last = _signal_when(proc, ready, signal.SIGINT)
    print(f'{moment.__name__}: {last}')
    match = re.fullmatch(
      r'mlit train: interrupted \(Ctrl-C\) after step (\d+); the last checkpoint is step (\d+) '
      rf'in {re.escape(str(ckpts))}: the same command resumes from it( \(steps \d+-\d+ run '
      r'again\))?',
      last,
    )
    assert match, last
    assert not _writing_checkpoint(ckpts), sorted(p.name for p in ckpts.iterdir())
    assert not list(temp_dir.iterdir()), sorted(p.name for p in temp_dir.rglob('*'))
    assert int(match[2]) == _done_steps(ckpts)[-1] <= int(match[1])
  assert train.main(_args(gin_file, model_dir)) == 0
  final = _final(model_dir)
  for key in final:
    np.testing.assert_array_equal(final[key], reference[key], err_msg=key)
