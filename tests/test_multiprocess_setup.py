"""Mistakes in starting a multi-process run (`mlit train --coordinator_address=...
--process_count=N --process_index=I` on localhost): each is one line and exit 2, no traceback,
no hang. Processes are subprocesses with timeouts: jax.distributed is set up once per process.
"""

import os
import pathlib
import socket
import subprocess
import sys
import time

import local_processes
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ['--gin_file=local_tiny.gin', '--gin.TRAIN_STEPS=4', '--gin.WARMUP_STEPS=1']


def _env():
  env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('XLA_FLAGS', None)
  return env


def _train(*args, code=''):
  """A `mlit train` process; `code` runs in it first (e.g. a shorter connect timeout)."""
  script = f'import sys\nfrom mlit.commands import cli\n{code}\nsys.exit(cli.main(sys.argv[1:]))'
  return subprocess.Popen(
    [sys.executable, '-c', script, 'train', *args],
    cwd=REPO,
    env=_env(),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )


def _finish(procs, timeout):
  """(return codes, stderr texts); a process still running after `timeout` s fails the test."""
  deadline = time.time() + timeout
  try:
    errs = [p.communicate(timeout=max(deadline - time.time(), 1))[1] for p in procs]
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    errs = [p.communicate()[1] for p in procs]
    pytest.fail(f'still running after {timeout} s (a hang): ' + ' | '.join(e[-1500:] for e in errs))
  return [p.returncode for p in procs], errs


def _last_line(err):
  return err.strip().splitlines()[-1] if err.strip() else ''


@pytest.mark.parametrize(
  'flags, line',
  [
    (
      ['--process_count=2', '--process_index=2'],
      '--process_index=2: must be 0 to 1 (--process_count=2; 0 is the coordinator)',
    ),
    (['--process_count=0', '--process_index=0'], '--process_count=0: must be at least 1'),
  ],
)
def test_process_index_out_of_range_is_one_line(tmp_path, capsys, flags, line):
  """jax.distributed's ValueError was a traceback."""
  from mlit.commands import cli  # pylint: disable=import-outside-toplevel

  model_dir = tmp_path / 'run'
  args = [*TINY, f'--gin.MODEL_DIR="{model_dir}"', '--coordinator_address=localhost:1', *flags]
  assert cli.main(['train', *args]) == 2
  assert capsys.readouterr().err.strip() == f'mlit train: error: {line}'
  assert not model_dir.exists()


def test_coordinator_port_in_use_is_one_line(tmp_path, capsys):
  """jax.distributed crashed (a segmentation fault) when process 0's port was taken. The port is
  checked before jax.distributed starts, so this runs in the test's process."""
  from mlit.commands import cli  # pylint: disable=import-outside-toplevel

  with socket.socket() as taken:
    taken.bind(('localhost', 0))
    taken.listen()
    port = taken.getsockname()[1]
    args = [
      *TINY,
      f'--gin.MODEL_DIR="{tmp_path / "run"}"',
      f'--coordinator_address=localhost:{port}',
      '--process_count=2',
      '--process_index=0',
    ]
    assert cli.main(['train', *args]) == 2
  assert capsys.readouterr().err.strip() == (
    f'mlit train: error: --coordinator_address=localhost:{port}: port {port} is in use on this '
    'machine (another run, or another program): process 0 serves the coordinator there; give '
    'every process another port'
  )
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_processes_with_different_configs_stop_with_one_line(tmp_path):
  """Two processes with a different TRAIN_STEPS (and a wrong --process_count on one) waited for
  each other's collectives for ever; both now stop before any step, naming the difference."""
  port = local_processes.free_port()
  common = [f'--gin.MODEL_DIR="{tmp_path / "run"}"', f'--coordinator_address=localhost:{port}']
  procs = [
    _train(*TINY, *common, '--process_count=2', '--process_index=0'),
    _train(*TINY, *common, '--gin.TRAIN_STEPS=6', '--process_count=3', '--process_index=1'),
  ]
  codes, errs = _finish(procs, 180)
  for code, err in zip(codes, errs):
    assert code == 2, err[-3000:]
    assert _last_line(err) == (
      "mlit train: error: the processes' commands differ: process 1's config differs from "
      "process 0's (- --process_count = 2; + --process_count = 3; - TRAIN_STEPS = 4; "
      '+ TRAIN_STEPS = 6); every process of a run runs the same command (flags and gin files)'
    ), err[-3000:]
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_a_process_alone_stops_at_the_connect_timeout_with_one_line(tmp_path):
  """Process 1 of 2 without its process 0 (which stopped on a mistake of its own, say) waited 300 s
  and aborted with a C++ trace; mlit's clock (here 3 s) ends the wait with one line, exit 2."""
  port = local_processes.free_port()
  proc = _train(
    *TINY,
    f'--gin.MODEL_DIR="{tmp_path / "run"}"',
    f'--coordinator_address=localhost:{port}',
    '--process_count=2',
    '--process_index=1',
    code='from mlit.training import train\ntrain.CONNECT_TIMEOUT_S = 3',
  )
  (code,), (err,) = _finish([proc], 120)
  assert code == 2, err[-3000:]
  assert _last_line(err) == (
    f"mlit train: error: --coordinator_address=localhost:{port}: the run's processes did not all "
    'connect within 3 s (is every process started, with the same --coordinator_address and '
    '--process_count? A process that stopped on an error of its own never connects: see its '
    'output); nothing was trained'
  ), err[-3000:]
  assert 'Check failure stack trace' not in err
