"""Length-bucketed batches (tasks/length_buckets.py) through the trainer's input pipeline.

The trainer on bucketed batches runs in tests/test_demo_pipeline.py (the demo's gin uses them).
"""

import lit_test_tasks
import numpy as np
import pytest
import tensorflow as tf

from mlit.training import input_pipeline
from tasks import feature_converter, length_buckets

BOUNDS = (4, 8, 12)


def _examples(n=400, seed=0):
  """Texts of 1..11 tokens + EOS, each tagged by its index in the embedding."""
  rng = np.random.default_rng(seed)
  texts = [list(rng.integers(2, 50, int(rng.integers(1, 12)))) + [1] for _ in range(n)]
  ragged = tf.ragged.constant(texts, dtype=tf.int32)
  ids = np.arange(n, dtype=np.float32)[:, None]
  ds = tf.data.Dataset.from_tensor_slices({'text': ragged, 'image_embedding': ids})
  ds = ds.map(lambda ex: {'text': ex['text'], 'image_embedding': ex['image_embedding']})
  return texts, ds.shuffle(n, seed=seed).repeat()


def _bucketed(ds, seed=0):
  buckets = length_buckets.estimate(ds, 'text', BOUNDS, seed, sample=1000)
  conv = feature_converter.LiTFeatureConverter()
  return buckets, conv.batched(ds, {'text': BOUNDS[-1]}, 16, True, buckets)


def test_each_batch_is_padded_to_its_bucket_and_keeps_every_token():
  texts, ds = _examples()
  buckets, batched = _bucketed(ds)
  # Shares estimated from the data: about a third of 1..11 (+EOS) tokens fall in each bucket.
  assert all(0.2 < s < 0.5 for s in buckets.shares), buckets.shares
  widths = []
  for batch in batched.take(40).as_numpy_iterator():
    width = batch['text'].shape[1]
    widths.append(width)
    lower = BOUNDS[BOUNDS.index(width) - 1] if width != BOUNDS[0] else 0
    for row, idx in zip(batch['text'], batch['image_embedding'][:, 0]):
      want = texts[int(idx)]
      assert lower < len(want) <= width
      np.testing.assert_array_equal(row, want + [0] * (width - len(want)))
  assert set(widths) == set(BOUNDS)


def test_buckets_are_deterministic_and_their_sequence_depends_only_on_the_seed():
  # Fresh pipelines, as each run builds (one tf.data object reshuffles per iteration).
  first = [b['text'] for b in _bucketed(_examples()[1])[1].take(12).as_numpy_iterator()]
  again = [b['text'] for b in _bucketed(_examples()[1])[1].take(12).as_numpy_iterator()]
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  # Another data stream (another shard) with the same seed pads step s to the same width.
  _, other = _examples(seed=1)
  buckets = length_buckets.estimate(_examples()[1], 'text', BOUNDS, 0, sample=1000)
  conv = feature_converter.LiTFeatureConverter()
  other_batches = conv.batched(other, {'text': 12}, 16, True, buckets).take(12)
  assert [b.shape[1] for b in first] == [
    b['text'].shape[1] for b in other_batches.as_numpy_iterator()
  ]


def test_bad_bounds_name_the_problem():
  with pytest.raises(ValueError, match='increasing'):
    length_buckets.check_bounds((8, 4), 12)
  with pytest.raises(ValueError, match='exceed'):
    length_buckets.check_bounds((16,), 12)
  assert length_buckets.check_bounds((4, 8), 12) == (4, 8, 12)


@pytest.fixture(scope='module')
def task_dir(tmp_path_factory):
  data = tmp_path_factory.mktemp('buckets_data')
  lit_test_tasks.write_data(str(data))
  lit_test_tasks.register(str(data))
  return data


def test_make_input_two_shards_agree_and_resume_skips_exactly(task_dir):
  def widths_and_rows(start):
    batches, info = input_pipeline.make_input(
      'lit_test_embeddings',
      {'text': 12},
      16,
      num_data_shards=2,
      start_step=start,
      length_buckets=(4, 8),
    )
    out = [next(batches) for _ in range(8 - start)]
    batches.close()
    return info, out

  info, full = widths_and_rows(0)
  assert info.shapes['text'] == (12,)  # the longest bound: what the model is built for
  assert {b['text'].shape[1] for b in full} <= {4, 8, 12}
  for b in full:
    # Both shards' halves are padded alike, and no text is longer than its batch's bound.
    lengths = (b['text'] != 0).sum(axis=1)
    assert lengths.max() <= b['text'].shape[1]
  _, resumed = widths_and_rows(5)
  for a, b in zip(full[5:], resumed):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
