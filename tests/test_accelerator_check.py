"""benchmarks/accelerator_check.sh in its CPU smoke mode: every part runs and bench.json holds the
device, the peak measured in the same run, LiT pairs/s and MFU (pre-computed and live), the
pre-computation images/s and MFU beside the shard reader's images/s, and the pytest subset.
No speed assertions (the machine is shared); the checks are on what must hold anywhere.
"""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_accelerator_check_smoke_on_cpu(tmp_path):
  out = tmp_path / 'check'
  env = dict(os.environ, PYTHON=sys.executable, JAX_PLATFORMS='cpu')
  proc = subprocess.run(
    [os.path.join(ROOT, 'benchmarks', 'accelerator_check.sh'), str(out)],
    capture_output=True,
    text=True,
    env=env,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert 'smoke mode' in proc.stderr
  for line in ('I0000', 'E0000', 'cuInit'):  # TensorFlow loaded quietly, as in the mlit commands
    assert line not in proc.stderr, proc.stderr[-2000:]
  with open(out / 'bench.json') as f:
    r = json.load(f)
  assert r['mode'] == 'smoke' and r['device']['platform'] == 'cpu' and r['device']['kind']
  peak = r['peak']['bfloat16']['gflops']
  assert peak > 0 and r['peak']['float32']['gflops'] > 0
  assert set(r['lit']) == {'local_tiny/precomputed', 'local_tiny/live'}
  for row in r['lit'].values():
    assert row['dtype'] == 'bfloat16' and row['pairs_per_s'] > 0
    assert math.isclose(row['pairs_per_s'], row['batch'] / row['time']['median_s'])
    assert math.isclose(row['mfu'], row['model_gflops_per_s'] / peak)
  live, pre = r['lit']['local_tiny/live'], r['lit']['local_tiny/precomputed']
  assert live['model_flops_per_step'] > pre['model_flops_per_step']  # the ViT runs live
  embed = r['precompute']['embed']
  assert embed['images_per_s'] > 0 and embed['dtype'] == 'bfloat16'
  assert math.isclose(embed['mfu'], embed['model_gflops_per_s'] / peak)
  reads = r['precompute']['read']
  for name in ('webdataset_tar', 'mlit_tfrecord'):
    assert (
      reads[name]['images'] == r['plan']['precompute_images'] and reads[name]['images_per_s'] > 0
    )
  assert r['precompute']['bound'] in ('read', 'embed')
  assert r['pytest']['returncode'] == 0 and '1 passed' in r['pytest']['summary']
  assert isinstance(r['within_budget'], bool) and r['seconds'] > 0
