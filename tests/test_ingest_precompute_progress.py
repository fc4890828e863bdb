"""What the pod-scale data jobs say as they run: `mlit ingest`'s progress (done of total, rate,
ETA, also resumed) and `mlit precompute`'s batch. Real webdataset tars, Beam's DirectRunner in this
process (the line interval set to 0, so that a job of a second prints the lines a job of hours
prints every PROGRESS_EVERY_S), a real ViT on host devices.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest
import shard_files
import task_files
from spm_fixture import spm_model_path  # noqa: F401

from mlit.commands import cli, precompute
from mlit.ingest import pipeline
from tasks import synthetic  # noqa: F401  (registers mlit_synthetic_embeddings)
from tasks.user_error import UserError

REPO = pathlib.Path(__file__).resolve().parents[1]

_LINE = re.compile(r'mlit ingest: (\d+) of (\d+) (image files read|shards written), [\d.]+ \w+/s')


def _write_data(d):
  url = lambda t, i: f'http://img.example/{t}_{i}.jpg'
  for t in range(2):
    samples = [shard_files.sample(f'{t}{i:04d}', url(t, i), f'boat {i}') for i in range(3)]
    shard_files.write_webdataset_tar(os.path.join(d, f'{t:05d}.tar'), samples)
  rows = [f'{url(t, i)}\ta red boat {i}' for t in range(2) for i in range(3)]
  task_files.write_lines(os.path.join(d, 'cc.tsv'), rows)


def _progress(capsys):
  return sorted(
    (m.group(3), int(m.group(1)), int(m.group(2)))
    for m in map(_LINE.match, capsys.readouterr().err.splitlines())
    if m
  )


def test_ingest_prints_progress_and_counts_complete_shards_when_resumed(
  tmp_path, capsys, monkeypatch
):
  _write_data(str(tmp_path))
  out = tmp_path / 'out'
  argv = ['ingest', '--images', f'{tmp_path}/*.tar', '--metadata', str(tmp_path / 'cc.tsv')]
  argv += ['--format', 'cc12m', '--shard_key', 'url', '--output', str(out), '--num_shards', '3']
  monkeypatch.setattr(pipeline, 'PROGRESS_EVERY_S', 0.0)
  assert cli.main(argv) == 0
  files, shards = 'image files read', 'shards written'
  read_both = [(files, 1, 2), (files, 2, 2)]
  assert _progress(capsys) == read_both + [(shards, 1, 3), (shards, 2, 3), (shards, 3, 3)]
  for path in out.glob('shards-00001-of-00003.tfrecord*'):  # a shard cut off by a crash
    path.unlink()
  assert cli.main(argv) == 0
  assert _progress(capsys) == read_both + [(shards, 3, 3)]  # 2 of 3 were complete


_VIT = {'width': 16, 'depth': 1, 'mlp_dim': 32, 'num_heads': 2, 'patch_size': (8, 8)}


def test_precompute_refuses_an_empty_batch_before_any_work(tmp_path):
  """Was TensorFlow's 'Batch size must be greater than zero' traceback, with the output made."""
  with pytest.raises(UserError, match=r'^precompute.batch_size must be a positive integer, got 0'):
    precompute.precompute('image_shards', str(tmp_path / 'emb'), _VIT, batch_size=0)
  assert not (tmp_path / 'emb').exists()


def test_precompute_says_when_it_rounds_the_batch_up_to_the_devices(tmp_path, spm_model_path):  # noqa: F811
  """The batch splits evenly over the local devices: 3 on 2 devices runs as 4, said in a line;
  a tower without weights is said too."""
  samples = [shard_files.sample(f'{i}', f'http://x/{i}.jpg', f'boat {i}') for i in range(3)]
  tar = shard_files.write_webdataset_tar(str(tmp_path / 'a.tar'), samples)
  script = (
    'import gin\n'
    'from mlit.commands import precompute\n'
    'from tasks import shard_tasks\n'
    f'gin.bind_parameter("tasks.vocabularies.vocabulary.path", {spm_model_path!r})\n'
    f'shard_tasks.register_image_shards({tar!r})\n'
    f'precompute.precompute("image_shards", {str(tmp_path / "emb")!r}, {_VIT!r}, image_size=16, '
    'batch_size=3)\n'
  )
  env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='2')
  env['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'
  proc = subprocess.run(
    [sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith('mlit precompute: ')]
  assert lines[:2] == [  # no checkpoint_path: a random tower, said
    'mlit precompute: warning: precompute.checkpoint_path (IMAGE_CHECKPOINT_PATH) is None: '
    'embedding with a randomly initialised tower (seed 0), not pre-trained weights',
    'mlit precompute: precompute.batch_size 3 rounded up to 4, a multiple of the 2 local devices',
  ], proc.stderr[-2000:]
  assert lines[2].startswith('mlit precompute: 1 of 1 shards, ')


def test_precompute_names_the_task_macro_and_the_close_task(tmp_path):
  """Was 'precompute.task_name ... (No Task or Mixture found ...)': not the macro a user sets."""
  with pytest.raises(UserError) as e:
    precompute.precompute('mlit_synthetic_embedding', str(tmp_path / 'emb'), _VIT, image_size=16)
  assert str(e.value).startswith(
    "PRECOMPUTE_TASK (precompute.task_name) 'mlit_synthetic_embedding' is not a registered seqio "
    "task (did you mean 'mlit_synthetic_embeddings'?); import the module"
  )
