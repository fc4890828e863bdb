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


def test_a_plan_over_the_device_memory_stops_with_one_line():
  line = dry_run.check_fits(3 << 30, 16 << 30, 'TPU v4')
  assert line == 'TPU v4 has 16 GiB per device; the plan uses 19% of it'
  with pytest.raises(
    UserError, match=r'needs 17 GiB per device, TPU v4 has 16 GiB: lower BATCH_SIZE'
  ):
    dry_run.check_fits(17 << 30, 16 << 30, 'TPU v4')
  assert 'reports no memory limit: the plan is 3 GiB' in dry_run.check_fits(3 << 30, None, 'cpu')


def test_a_length_bucketed_first_batch_says_the_length_planned_for():
  first = {'text': np.zeros((4, 8), np.int32), 'image_embedding': np.zeros((4, 3), np.float32)}
  shapes = {'text': (24,), 'image_embedding': (3,)}
  assert dry_run.batch_line('emoji_cldr.all', first, shapes, 8) == (
    'first batch of emoji_cldr.all on process 0: image_embedding [4, 3] float32, text [4, 8] '
    'int32; the step is planned for the global batch at the full length: text [8, 24]'
  )
  first['text'] = np.zeros((4, 24), np.int32)
  assert dry_run.batch_line('t', first, shapes, 8).endswith('text [4, 24] int32')
