"""End-to-end trainer runs: local_tiny, NaN stop, 8-device meshes and two
processes, all compared with one uninterrupted reference run (SIGKILL + resume:
test_resume_torture.py, three kills on this run, bit-identical to the reference).

Each run is a few tiny steps; subprocesses are used where the process itself
is the thing under test (kill, device count, jax.distributed).
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import lit_test_tasks
import local_processes
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mlit.training import train

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 12

# Shared by every run compared with the reference: two data shards, so one
# process and two processes see the same global batches.
_TEST_GIN = (
  """
from __gin__ import dynamic_registration
import lit_test_tasks
import local_processes
from mlit.training import train

include 'local_tiny.gin'
MIXTURE_OR_TASK_NAME = 'lit_test_slow'
TASK_FEATURE_LENGTHS = {'text': 8}
BATCH_SIZE = 16
TRAIN_STEPS = %d
train.train.num_data_shards = 2
train.train.checkpoint_period = 4
train.train.log_period = 2
"""
  % STEPS
)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp('train_run')
  data = root / 'data'
  lit_test_tasks.write_data(str(data))
  os.environ['MLIT_TEST_TASK_DIR'] = str(data)
  lit_test_tasks.register(str(data))
  gin_file = root / 'test_run.gin'
  gin_file.write_text(_TEST_GIN)
  return root, data, gin_file


def _env(data, devices=None):
  env = dict(
    os.environ,
    PYTHONPATH=f'{REPO}{os.pathsep}{REPO / "tests"}',
    MLIT_TEST_TASK_DIR=str(data),
    TF_CPP_MIN_LOG_LEVEL='2',
  )
  env.pop('XLA_FLAGS', None)
  if devices:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return env


def _args(gin_file, model_dir, *extra):
  return [f'--gin_file={gin_file}', f'--gin.MODEL_DIR="{model_dir}"', *extra]


def _final(model_dir, step=STEPS):
  path = pathlib.Path(model_dir) / 'checkpoints' / str(step) / 'state'
  # As NumPy: the checkpoint may come from a mesh this process does not have.
  ckptr = ocp.PyTreeCheckpointer()
  tree = ckptr.metadata(str(path)).item_metadata.tree
  args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  state = ckptr.restore(str(path), restore_args=args)
  return {
    jax.tree_util.keystr(p): np.asarray(v)
    for p, v in jax.tree_util.tree_flatten_with_path(state)[0]
  }


def _max_diff(a, b):
  assert a.keys() == b.keys()
  return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) if a[k].size else 0.0 for k in a)


@pytest.fixture(scope='module')
def reference(setup):
  root, _, gin_file = setup
  model_dir = root / 'reference'
  assert train.main(_args(gin_file, model_dir)) == 0
  return _final(model_dir)


def _mlit(tmp_path, *argv, cwd=REPO) -> subprocess.CompletedProcess:
  """`mlit ARGV` in a fresh process, as a user runs it."""
  return subprocess.run(
    [sys.executable, '-m', 'mlit.commands.cli', *argv],
    cwd=cwd,
    env=_env(tmp_path),
    capture_output=True,
    text=True,
    timeout=600,
  )


@pytest.mark.slow
def test_local_tiny_out_of_the_box(tmp_path):
  # A name long enough that gin's config.gin wraps the binding of its absolute path ('\').
  name = 'tiny_run_whose_absolute_path_gin_wraps_over_two_lines'
  model_dir = tmp_path / name
  proc = _mlit(
    tmp_path,
    'train',
    '--gin_file=gin/local_tiny.gin',
    f'--gin.MODEL_DIR="{name}"',  # relative, as README's commands give it
    '--gin.TRAIN_STEPS=40',
    cwd=tmp_path,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'step 40/40 loss' in proc.stderr and 'pairs/s' in proc.stderr
  assert 'ETA' in proc.stderr
  # Nothing but mlit's own lines: no TensorFlow load-time INFO lines or CUDA probe errors.
  assert 'I0000' not in proc.stderr and 'cuInit' not in proc.stderr, proc.stderr[-3000:]
  config = (model_dir / 'config.gin').read_text()
  assert "MIXTURE_OR_TASK_NAME = 'mlit_synthetic_embeddings'" in config
  assert sorted(int(p.name) for p in (model_dir / 'checkpoints').iterdir() if p.name.isdigit()) == [
    20,
    40,
  ]
  records = [json.loads(l) for l in (model_dir / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == [10, 20, 30, 40]
  assert records[-1]['loss'] < 0.7 * records[0]['loss'], records
  # Evaluating this run of token ids: one line saying so, not a read of mT5's gs:// vocabulary.
  argv = ['eval', f'--gin_file={model_dir / "config.gin"}', '--gin_file=eval/captions.gin']
  argv += [f'--gin.RUN_DIR="{tmp_path / "eval"}"', '--gin.CAPTIONS="c.jsonl"']
  argv += ['--gin.CAPTION_IMAGES="."', '--gin.CAPTIONS_NAME="x"']
  proc = _mlit(tmp_path, *argv)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
    f'mlit eval: error: {model_dir}: the run was tuned on token ids (task '
    "'mlit_synthetic_embeddings' has no SentencePiece vocabulary), so it cannot encode text"
  ), proc.stderr[-3000:]
  assert list((model_dir / 'train').glob('events.out.tfevents.*'))
  # Resumed from another folder through the run's own config.gin: the setting changed is the one
  # change said (MODEL_DIR as spelled from there was listed as one), and no binding of config.gin
  # is warned about as never read (VOCABULARY's, which a run of token ids does not read, were).
  resume = ['train', f'--gin_file={model_dir}/config.gin', f'--gin.MODEL_DIR="{model_dir}"']
  proc = _mlit(tmp_path, *resume, '--gin.TRAIN_STEPS=41', '--dry_run')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'never read' not in proc.stderr, proc.stderr[-3000:]
  assert proc.stderr.count("differs from the run's config.gin") == 1, proc.stderr[-3000:]
  said = 'config.gin (the run would resume at step 40 with this one and replace it): '
  assert said + '- TRAIN_STEPS = 40; + TRAIN_STEPS = 41\n' in proc.stderr, proc.stderr[-3000:]


def test_dry_run_sets_up_compiles_and_writes_nothing(setup, reference, capsys):
  root, _, gin_file = setup
  fresh = root / 'dry_fresh'
  assert train.main(_args(gin_file, fresh, '--dry_run')) == 0
  err = capsys.readouterr().err
  lines = [l.split('dry run: ', 1)[1] for l in err.splitlines() if 'dry run: ' in l]
  assert len(lines) == 6, err
  assert lines[0] == (
    'mesh: 1 cpu device in 1 process, data 1 x model 1; global batch 16, 16 per data shard'
  )
  assert lines[1].startswith('first batch of lit_test_slow on process 0: ')
  assert 'text [16, 8] int32' in lines[1]
  assert lines[2].startswith('parameters ') and 'text tower' in lines[2] and 'trained' in lines[2]
  assert lines[3].startswith('train step compiled in ') and ' at most' in lines[3]
  assert 'cpu reports no memory limit' in lines[4]
  assert lines[5].startswith('the run would start at step 0 of 12 (no checkpoint in ')
  assert not fresh.exists()  # not even MODEL_DIR
  # On a finished run: it restores the newest checkpoint and touches nothing.
  done = root / 'reference'
  before = {p: p.stat().st_mtime_ns for p in done.rglob('*')}
  assert train.main(_args(gin_file, done, '--dry_run', '--gin.TRAIN_STEPS=20')) == 0
  err = capsys.readouterr().err
  assert f'the run would resume from step 12 of 20 ({done / "checkpoints"})' in err, err
  # What the run would warn about before replacing config.gin, said by the dry run too.
  changed = [l for l in err.splitlines() if "the config differs from the run's config.gin" in l]
  assert len(changed) == 1 and 'TRAIN_STEPS' in changed[0], err
  assert {p: p.stat().st_mtime_ns for p in done.rglob('*')} == before
  # A changed model setting: every intact checkpoint refuses the shapes; said once, with why.
  args = _args(gin_file, done, '--dry_run', '--gin.text_tower.T5Config.mlp_dim=24')
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  assert cli.main(['train', *args]) == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert "no checkpoint restores: the model's shapes differ from the checkpoints'" in err, err
  assert err.count('Requested shape') == 1 and 'config.gin' in err
  assert {p: p.stat().st_mtime_ns for p in done.rglob('*')} == before


@pytest.mark.slow
def test_nan_stops_and_keeps_last_good_checkpoint(setup, capsys):
  root, _, gin_file = setup
  model_dir = root / 'nan'
  # Examples 100+ are NaN: with 16 per step and no shuffling, step 7 is hit.
  rc = train.main(
    _args(
      gin_file,
      model_dir,
      "--gin.MIXTURE_OR_TASK_NAME='lit_test_nan_after_100'",
      '--gin.train.shuffle=False',
      '--gin.train.num_data_shards=1',
      '--gin.train.checkpoint_period=2',
    )
  )
  err = capsys.readouterr().err
  assert rc == 3
  assert 'loss is nan at step 7' in err
  assert 'last good checkpoint is step 6' in err
  assert 'In call to configurable' not in err and len(err.strip().splitlines()) >= 1
  assert [l for l in err.splitlines() if 'loss is nan' in l][0].startswith('mlit train: error: ')
  steps = sorted(int(p.name) for p in (model_dir / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps[-1] == 6
  params = _final(model_dir, 6)
  assert all(np.isfinite(v).all() for v in params.values())


@pytest.mark.slow
def test_eight_device_meshes_match_one_device(setup, reference):
  root, data, gin_file = setup
  script = (
    'import sys, jax\n'
    'from mlit.training import train\n'
    'assert jax.device_count() == 8\n'
    'for parts in (1, 2):\n'
    f"  rc = train.main(['--gin_file={gin_file}',\n"
    f'                   \'--gin.MODEL_DIR="{root}/mesh%d"\' % parts,\n'
    "                   '--gin.train.num_partitions=%d' % parts])\n"
    '  assert rc == 0\n'
    # the dry run on the finished 4x2 run: the same step, planned per device
    f"rc = train.main(['--gin_file={gin_file}', '--dry_run', '--gin.MODEL_DIR=\"{root}/mesh2\"',\n"
    "                 '--gin.train.num_partitions=2'])\n"
    'assert rc == 0\n'
  )
  proc = subprocess.run(
    [sys.executable, '-c', script],
    cwd=REPO,
    env=_env(data, devices=8),
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'dry run: mesh: 8 cpu devices in 1 process, data 4 x model 2' in proc.stderr
  # the text tower's kernels split over 'model': a device is given part of the train state
  (held,) = re.findall(r'per device: arguments ([\d.]+ \w+)', proc.stderr)
  assert _bytes(held) < 0.9 * sum(v.nbytes for v in reference.values()), held
  for parts in (1, 2):  # meshes 8x1 and 4x2 ('data', 'model')
    diff = _max_diff(_final(root / f'mesh{parts}'), reference)
    print(f'mesh {8 // parts}x{parts} vs one device: max abs diff {diff:g}')
    assert diff < 1e-5


def _bytes(text):
  number, unit = text.split()
  return float(number) * {'B': 1, 'KiB': 1 << 10, 'MiB': 1 << 20, 'GiB': 1 << 30}[unit]


def _two_processes(gin_file, model_dir, data):
  return local_processes.start_training(_args(gin_file, model_dir), _env(data))


def _two_processes_logging(gin_file, model_dir, data):
  """Two processes of one run, returned once the run has logged its first step."""
  procs = _two_processes(gin_file, model_dir, data)
  metrics = model_dir / 'metrics.jsonl'
  deadline = time.time() + 300
  while not (metrics.exists() and metrics.read_text()) and time.time() < deadline:
    assert all(p.poll() is None for p in procs), [p.communicate()[1][-3000:] for p in procs]
    time.sleep(0.01)
  return procs


@pytest.mark.slow
def test_two_processes_match_one_process_across_a_preemption(setup, reference):
  """SIGTERM (a preemption notice) to process 1 only: JAX's preemption service makes both save
  the same step and stop; the same command resumes, and the end matches one process."""
  root, data, gin_file = setup
  model_dir = root / 'two_proc'
  procs = _two_processes_logging(gin_file, model_dir, data)
  procs[1].send_signal(signal.SIGTERM)
  errs = [p.communicate(timeout=600)[1] for p in procs]
  stopped = []
  for p, err in zip(procs, errs):
    assert p.returncode == 143, err[-3000:]
    assert 'Reached preemption sync point' not in err  # orbax's, per process and thread
    line = err.strip().splitlines()[-1]
    match = re.fullmatch(
      r'mlit train: stopped by SIGTERM \(a preemption notice\) after step (\d+), saved as '
      r'checkpoint \1 in .*: the same command resumes from it',
      line,
    )
    assert match, line
    stopped.append(int(match[1]))
  assert stopped[0] == stopped[1] < STEPS and (model_dir / 'checkpoints' / str(stopped[0])).is_dir()
  procs = _two_processes(gin_file, model_dir, data)
  errs = [p.communicate(timeout=600)[1] for p in procs]
  for p, err in zip(procs, errs):
    assert p.returncode == 0, err[-3000:]
  assert f'resumed from step {stopped[0]}' in errs[0]  # process 0 logs for the run
  # Examples per language of every process's part of each batch, the steps before the resume
  # included: process 0 wrote its own half since the resume.
  one = json.loads((root / 'reference' / 'language_stats.json').read_text())
  assert sum(v['n_train_examples'] for v in one.values()) == STEPS * 16
  assert json.loads((model_dir / 'language_stats.json').read_text()) == one
  diff = _max_diff(_final(model_dir), reference)
  print(f'two processes (stopped at step {stopped[0]}, resumed) vs one: max abs diff {diff:g}')
  assert diff < 1e-5


@pytest.mark.slow
def _kill_process_1(procs, timeout: int) -> str:
  """kill -9 of process 1; process 0's stderr once it has stopped (within `timeout` s)."""
  procs[1].kill()
  try:
    err = procs[0].communicate(timeout=timeout)[1]
  except subprocess.TimeoutExpired:
    procs[0].kill()
    pytest.fail(
      f'process 0 still running {timeout} s after process 1 was killed: '
      + procs[0].communicate()[1][-3000:]
    )
  procs[1].communicate()
  return err


def test_a_killed_process_stops_the_other_with_one_line(setup):
  """kill -9 of process 1: process 0's next collective fails; it said so in a 50-line traceback,
  then waited out jax.distributed's heartbeat timeout (100 s) and aborted with a C++ trace, and
  named as its last checkpoint a save the kill had cut short. Now one line, at once, naming the
  last complete checkpoint."""
  root, data, gin_file = setup
  model_dir = root / 'two_proc_killed'
  procs = _two_processes_logging(gin_file, model_dir, data)
  err = _kill_process_1(procs, timeout=60)
  assert procs[0].returncode == train.LOST, err[-3000:]
  line = err.strip().splitlines()[-1]
  match = re.fullmatch(
    r"mlit train: error: process 0 lost the run's other processes after step (\d+) \(.*\): one of "
    r'them stopped \(its own output says why\); (.*)',
    line,
  )
  assert match and int(match[1]) < STEPS, line
  kept = re.fullmatch(
    r'the last checkpoint is step (\d+) in (.*): the same command on every process resumes from it',
    match[2],
  )
  if kept:  # a checkpoint before the kill (none when it came before step 4)
    assert kept[2] == str(model_dir / 'checkpoints'), line
    assert (model_dir / 'checkpoints' / kept[1] / 'state').is_dir(), line
  else:
    assert match[2].startswith('no checkpoint was written'), line
  # The same commands resuming from it: two processes as in the preemption test above, past a
  # save a kill cut short as in tests/test_resume_torture.py (each a minute of the suite's time).


@pytest.mark.slow
def test_a_process_killed_during_a_checkpoint_save_stops_the_other_without_a_traceback(
  setup, tmp_path
):
  """The kill landing in a checkpoint save (Orbax syncs the processes there): process 0 printed
  a Python traceback ('Gloo AllGather failed ... Connection reset by peer', or the save's barrier
  failing), then waited on the save that could never finish until JAX aborted. Now no traceback
  and no wait on the save: the one line of a lost process, exit 1; where the save's barrier is
  the coordination service's, its failure and JAX's own abort of the process (a heartbeat
  timeout, 100 s) come at the same moment, and either may end it first. A save every step of a
  fast task, so the kill lands in one."""
  root, data, gin_file = setup
  model_dir = tmp_path / 'killed_in_save'
  extra = ["--gin.MIXTURE_OR_TASK_NAME='lit_test_embeddings'", '--gin.TRAIN_STEPS=100000']
  extra += ['--gin.train.train.checkpoint_period=1', '--gin.train.train.keep_checkpoints=2']
  procs = local_processes.start_training(_args(gin_file, model_dir, *extra), _env(data))
  deadline = time.time() + 300
  while not (model_dir / 'checkpoints' / '3').is_dir() and time.time() < deadline:
    assert all(p.poll() is None for p in procs), [p.communicate()[1][-3000:] for p in procs]
    time.sleep(0.01)
  err = _kill_process_1(procs, timeout=160)
  assert 'Traceback' not in err, err[-3000:]
  if procs[0].returncode == train.LOST:
    assert re.fullmatch(
      r"mlit train: error: process 0 lost the run's other processes after step \d+ \(.*\): one "
      r'of them stopped \(its own output says why\); the last checkpoint is step \d+ in .*',
      err.strip().splitlines()[-1],
    ), err[-3000:]
  else:  # JAX's abort at the heartbeat timeout came first
    assert procs[0].returncode in (-signal.SIGABRT, 134), err[-3000:]
    assert 'Terminating process because the JAX distributed service detected fatal errors' in err


def test_process_flags_without_a_coordinator_are_an_error(tmp_path, capsys):
  """--process_count/--process_index say '(with --coordinator_address)'; without it they were
  dropped without a word and the job trained as one process."""
  from mlit.commands import cli  # pylint: disable=import-outside-toplevel

  model_dir = tmp_path / 'run'
  argv = ['train', '--gin_file=local_tiny.gin', f'--gin.MODEL_DIR="{model_dir}"']
  flags = ['--gin.TRAIN_STEPS=2', '--gin.WARMUP_STEPS=1', '--dry_run', '--process_count=2']
  assert cli.main([*argv, *flags]) == 2
  err = capsys.readouterr().err.strip()
  assert err == (
    'mlit train: error: --process_count: only with --coordinator_address (give it too; '
    '--multiprocess alone finds the topology itself)'
  )
  assert not model_dir.exists()
