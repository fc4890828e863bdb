"""LiTFeatureConverter: padding, sticky EOS, several text signals, images."""

import numpy as np
import pytest
import tensorflow as tf

from tasks.feature_converter import LiTFeatureConverter


def _ds(texts: dict, **dense):
  feats = {k: tf.ragged.constant(v, dtype=tf.int32) for k, v in texts.items()}
  feats.update({k: tf.constant(v) for k, v in dense.items()})
  return tf.data.Dataset.from_tensor_slices(feats)


def test_pad_and_sticky_eos_on_two_signals():
  ds = _ds(
    {'title': [[5, 6, 1], [5, 6, 7, 8, 9, 1], []], 'tags': [[3, 1], [4, 4, 4, 4, 1], [9, 9, 9, 9]]},
    image_embedding=np.ones((3, 4), np.float32),
    bt_fired=np.array([0, 1, 0], np.int32),
  )
  out = list(LiTFeatureConverter()(ds, {'title': 4, 'tags': 4}).as_numpy_iterator())
  assert set(out[0]) == {'title', 'tags', 'image_embedding', 'bt_fired'}
  np.testing.assert_array_equal(out[0]['title'], [5, 6, 1, 0])
  np.testing.assert_array_equal(out[1]['title'], [5, 6, 7, 1])  # cut: EOS kept
  np.testing.assert_array_equal(out[2]['title'], [0, 0, 0, 0])  # empty stays
  np.testing.assert_array_equal(out[1]['tags'], [4, 4, 4, 1])
  np.testing.assert_array_equal(out[2]['tags'], [9, 9, 9, 1])
  np.testing.assert_array_equal(out[0]['image_embedding'], np.ones(4))
  assert [o['bt_fired'] for o in out] == [0, 1, 0]


def test_images_pass_through_with_static_shape():
  ds = _ds(
    {'text': [[2, 1]]}, image=np.zeros((1, 8, 8, 3), np.float32), example_id=np.array([b'a'])
  )
  conv = LiTFeatureConverter()(ds, {'text': 16})
  assert conv.element_spec['image'].shape == (8, 8, 3)
  assert conv.element_spec['text'].shape == (16,)
  assert 'example_id' not in conv.element_spec


def test_pack_is_refused():
  with pytest.raises(ValueError, match='does not pack'):
    LiTFeatureConverter(pack=True)


def test_bad_inputs_are_named():
  ds = _ds({'text': [[2, 1]]}, image_embedding=np.zeros((1, 4), np.float32))
  with pytest.raises(ValueError, match="names 'title'"):
    LiTFeatureConverter()(ds, {'title': 16})
  both = _ds(
    {'text': [[2, 1]]},
    image=np.zeros((1, 2, 2, 3), np.float32),
    image_embedding=np.zeros((1, 4), np.float32),
  )
  with pytest.raises(ValueError, match='image_key'):
    LiTFeatureConverter()(both, {'text': 16})
  ints = _ds({'text': [[2, 1]]}, image_embedding=np.zeros((1, 4), np.int32))
  with pytest.raises(ValueError, match='float32'):
    LiTFeatureConverter()(ints, {'text': 16})


@pytest.mark.parametrize('drop_remainder', [True, False])
def test_batched_equals_per_example_then_batch(drop_remainder):
  rng = np.random.default_rng(0)
  # Empty, short, exactly-full (with and without EOS) and over-long texts.
  titles = [
    [],
    [1],
    [5, 1],
    [5, 6, 7, 1],
    [5, 6, 7, 8],
    [5, 6, 7, 8, 9, 1],
    [2, 3, 4, 5, 6, 7, 8],
  ] + [list(rng.integers(2, 9, rng.integers(0, 9))) for _ in range(25)]
  tags = [list(rng.integers(1, 9, rng.integers(0, 7))) for _ in titles]
  ds = _ds(
    {'title': titles, 'tags': tags},
    image_embedding=rng.normal(size=(len(titles), 3)).astype(np.float32),
    bt_fired=rng.integers(0, 2, len(titles)).astype(np.int32),
    example_id=np.array([str(i).encode() for i in range(len(titles))]),
  )
  lengths = {'title': 4, 'tags': 3}
  want = list(
    LiTFeatureConverter()(ds, lengths).batch(5, drop_remainder=drop_remainder).as_numpy_iterator()
  )
  conv = LiTFeatureConverter().batched(ds, lengths, 5, drop_remainder=drop_remainder)
  got = list(conv.as_numpy_iterator())
  assert len(got) == len(want) == (6 if drop_remainder else 7)
  for g, w in zip(got, want):
    assert set(g) == set(w) == {'title', 'tags', 'image_embedding', 'bt_fired'}
    for k in w:
      np.testing.assert_array_equal(g[k], w[k], err_msg=k)
  assert conv.element_spec['title'].shape.as_list() == [5 if drop_remainder else None, 4]
  all_empty = _ds({'text': [[], []]}, image_embedding=np.zeros((2, 3), np.float32))
  out = next(LiTFeatureConverter().batched(all_empty, {'text': 3}, 2).as_numpy_iterator())
  np.testing.assert_array_equal(out['text'], np.zeros((2, 3)))
