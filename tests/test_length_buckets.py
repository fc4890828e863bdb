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


def _convert(batch, width):
  return {
    'text': feature_converter.sticky_eos_batch(batch['text'], width),
    'image_embedding': batch['image_embedding'],
  }


def _bucketed(ds, seed=0, window=4):
  return length_buckets.batches(ds, 'text', BOUNDS, 16, _convert, seed, window=window)


def test_each_batch_is_padded_to_its_bucket_and_keeps_every_token():
  texts, ds = _examples(n=256)
  seen, widths = [], []
  # 256 examples = 4 windows of 4 batches of 16: one pass over the data.
  for batch in _bucketed(ds).take(16).as_numpy_iterator():
    width = batch['text'].shape[1]
    widths.append(width)
    longest = 0
    for row, idx in zip(batch['text'], batch['image_embedding'][:, 0]):
      want = texts[int(idx)]
      longest = max(longest, len(want))
      np.testing.assert_array_equal(row, want + [0] * (width - len(want)))
      seen.append(int(idx))
    assert width == min(b for b in BOUNDS if b >= longest)  # the smallest bound that fits
  assert sorted(seen) == list(range(256))  # every example once per pass
  assert {4, 12} <= set(widths) and widths.count(4) > 1


def test_batches_are_deterministic():
  # Fresh pipelines, as each run builds (one tf.data object reshuffles per iteration).
  first = [b['text'] for b in _bucketed(_examples()[1]).take(12).as_numpy_iterator()]
  again = [b['text'] for b in _bucketed(_examples()[1]).take(12).as_numpy_iterator()]
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)


def test_the_default_converter_path_uses_sorted_windows():
  conv = feature_converter.LiTFeatureConverter()
  ds = conv.batched(_examples()[1], {'text': 12}, 16, True, BOUNDS, 0)
  widths = [b['text'].shape[1] for b in ds.take(64).as_numpy_iterator()]
  assert set(widths) == set(BOUNDS)
  with pytest.raises(ValueError, match='one text feature'):
    conv.batched(_examples()[1], {'text': 12}, 16, False, BOUNDS, 0)


def test_windows_of_large_examples_are_shortened_to_fit_memory(monkeypatch, caplog):
  """32 batches of 1,024 live 160-px images are 10 GB held at once: a continued demo run on
  images died in tf.data ('OOM when allocating tensor with shape[32768,160,160,3]'). The window
  now holds at most WINDOW_BYTES, still sorted and padded per batch, every example once."""
  spec = {
    'text': tf.TensorSpec([None], tf.int32),
    'image_embedding': tf.TensorSpec([1280], tf.float32),
    'language': tf.TensorSpec([], tf.string),
  }
  assert length_buckets.window_for(spec, 1024, 24) == 32 and not caplog.records  # the demo's
  spec['image'] = tf.TensorSpec([160, 160, 3], tf.float32)
  assert length_buckets.window_for(spec, 1024, 24) == 3
  assert caplog.records[-1].getMessage() == (
    'length buckets sort windows of 3 batches, not 32: 32 batches of these examples (319.9 MB '
    'each) would hold 10.2 GB in memory'
  )
  assert length_buckets.window_for(spec, 8192, 24) == 1
  # A window of 2 batches of 16 (16 x 8 + 4 bytes an example here): the same examples, once.
  monkeypatch.setattr(length_buckets, 'WINDOW_BYTES', 2 * 16 * (12 * 4 + 4))
  texts, ds = _examples(n=256)
  seen = []
  for batch in _bucketed(ds).take(16).as_numpy_iterator():
    longest = max(len(texts[int(i)]) for i in batch['image_embedding'][:, 0])
    assert batch['text'].shape[1] == min(b for b in BOUNDS if b >= longest)
    seen += [int(i) for i in batch['image_embedding'][:, 0]]
  assert sorted(seen) == list(range(256))


def test_the_host_running_out_of_memory_in_tf_data_is_one_line():
  def batches():
    yield {'text': np.ones((2, 4), np.int32)}
    raise tf.errors.ResourceExhaustedError(
      None,
      None,
      'Error in user-defined function passed to FlatMapDataset:45 transformation: '
      'OOM when allocating tensor with shape[32768,160,160,3] and type float on /job:localhost',
    )

  out = input_pipeline._count_and_strip(batches())
  assert next(out)['text'].shape == (2, 4)
  with pytest.raises(input_pipeline.UserError) as e:
    next(out)
  assert str(e.value) == (
    'the input pipeline ran out of host memory (OOM when allocating tensor with '
    'shape[32768,160,160,3] and type float): lower BATCH_SIZE, or the image size '
    '(tasks.image_preprocessors.decode_image.size)'
  )


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
    out = [next(batches) for _ in range(12 - start)]
    batches.close()
    return info, out

  info, full = widths_and_rows(0)
  assert info.shapes['text'] == (12,)  # the longest bound: what the model is built for
  widths = {b['text'].shape[1] for b in full}
  assert widths <= {4, 8, 12} and len(widths) > 1, widths
  for b in full:
    # Both shards' halves are padded alike, and no text is longer than its batch's bound.
    lengths = (b['text'] != 0).sum(axis=1)
    assert lengths.max() <= b['text'].shape[1]
  _, resumed = widths_and_rows(5)
  for a, b in zip(full[5:], resumed):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
