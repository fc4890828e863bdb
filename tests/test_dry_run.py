"""The dry run's memory check and units (mlit/training/dry_run.py); the run itself:
tests/test_train_run.py."""

import numpy as np
import pytest

from mlit.training import dry_run
from tasks.user_error import UserError


def test_sizes_read_in_binary_units():
  assert dry_run.size_text(512) == '512 B'
  assert dry_run.size_text(1536) == '1.5 KiB'
  assert dry_run.size_text(3 << 20) == '3 MiB'
  assert dry_run.size_text(int(2.74 * (1 << 30))) == '2.74 GiB'
  assert dry_run.size_text(1 << 40) == '1 TiB'


def test_a_plan_over_the_device_memory_stops_with_one_line():
  line = dry_run.check_fits(3 << 30, 16 << 30, 'TPU v4')
  assert line == 'TPU v4 has 16 GiB per device; the plan uses 19% of it'
  with pytest.raises(
    UserError, match=r'needs 17 GiB per device, TPU v4 has 16 GiB: lower BATCH_SIZE'
  ):
    dry_run.check_fits(17 << 30, 16 << 30, 'TPU v4')
  assert 'reports no memory limit: the plan is 3 GiB' in dry_run.check_fits(3 << 30, None, 'cpu')


def test_host_cpu_devices_are_measured_against_the_host_memory():
  # Host CPU devices report no limit and share the host's memory: the line says whether the plan
  # fits it, without refusing (8 CPU devices may stand in for a pod's).
  assert dry_run.check_fits(3 << 30, None, 'cpu', 1, 24 << 30) == (
    'cpu reports no memory limit: the plan is 3 GiB per device, 12% of its 24 GiB of memory'
  )
  line = dry_run.check_fits(int(19.6 * (1 << 30)), None, 'cpu', 8, 24 << 30)
  assert line.startswith(
    'cpu reports no memory limit: the plan is 19.6 GiB per device, 157 GiB for the 8 devices of '
    'this host, more than its 24 GiB of memory: the run would run out of memory here'
  ), line
  assert dry_run.host_memory() > 0


def test_a_length_bucketed_first_batch_says_the_length_planned_for():
  first = {'text': np.zeros((4, 8), np.int32), 'image_embedding': np.zeros((4, 3), np.float32)}
  shapes = {'text': (24,), 'image_embedding': (3,)}
  assert dry_run.batch_line('emoji_cldr.all', first, shapes, 8) == (
    'first batch of emoji_cldr.all on process 0: image_embedding [4, 3] float32, text [4, 8] '
    'int32; the step is planned for the global batch at the full length: text [8, 24]'
  )
  first['text'] = np.zeros((4, 24), np.int32)
  assert dry_run.batch_line('t', first, shapes, 8).endswith('text [4, 24] int32')


def test_out_of_memory_in_the_step_is_one_line():
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from mlit.training import train  # pylint: disable=g-import-not-at-top

  # A real failed allocation, as XLA reports it (a JaxRuntimeError, a long traceback): 512 TiB,
  # more than a 64-bit CPU can address, so it fails at once whatever the memory overcommit.
  with pytest.raises(UserError) as e:
    with train._out_of_memory_line(16384):
      jax.jit(lambda x: jnp.zeros((1 << 49,), jnp.uint8) + x)(jnp.uint8(1)).block_until_ready()
  assert str(e.value) == (
    'the train step ran out of memory on cpu (512 TiB in one buffer) at BATCH_SIZE=16384: lower '
    'BATCH_SIZE, raise train.train.num_partitions, or use more devices (the same command with '
    '--dry_run prints what one device holds)'
  )
