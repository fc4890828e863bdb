"""Retrieval recall@k and zero-shot classifier/metrics against hand-checked values and NumPy."""

import numpy as np
import pytest

from eval_multilingual import prompts as prompts_lib
from eval_multilingual import retrieval, zeroshot
from eval_multilingual.unit_norm import l2_normalize


def _unit(v):
  v = np.asarray(v, np.float32)
  return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_recall_hand_checked_multi_caption():
  # 3 images on the axes; 4 texts, texts 0,1 belong to image 0, text 2 to 1, text 3 to 2.
  images = _unit(np.eye(3))
  texts = _unit(
    [
      [1, 0, 0],  # t0 -> i0 rank 0
      [0, 1, 0.5],  # t1 -> i0: i1, i2 score higher -> rank 2
      [0, 1, 0.1],  # t2 -> i1 rank 0
      [1, 0, 0.9],
    ]
  )  # t3 -> i2: i0 higher -> rank 1
  t2i = [0, 0, 1, 2]
  np.testing.assert_array_equal(retrieval.text_to_image_ranks(texts, images, t2i), [0, 2, 0, 1])
  # image 0: best caption t0 (1.0) top -> 0; image 1: t2 (0.995) < t1 (0.894)? no:
  # i1 scores t1=0.894, t2=0.995 -> t2 first -> 0; image 2: t3=0.669, t1=0.447,
  # t2=0.0995, t0=0 -> rank 0.
  np.testing.assert_array_equal(retrieval.image_to_text_ranks(texts, images, t2i), [0, 0, 0])
  m = retrieval.retrieval_metrics(texts, images, t2i, ks=(1, 2, 5))
  assert m['image_retrieval_recall@1'] == pytest.approx(0.5)
  assert m['image_retrieval_recall@2'] == pytest.approx(0.75)
  assert m['image_retrieval_recall@5'] == pytest.approx(1.0)
  assert m['text_retrieval_recall@1'] == pytest.approx(1.0)


def test_image_to_text_any_caption_counts():
  # Image 0 has captions t0 (bad) and t2 (good); the good one is ranked first.
  images = _unit([[1, 0], [0, 1]])
  texts = _unit([[0.1, 1], [0, 1], [1, 0.05]])
  t2i = [0, 1, 0]
  np.testing.assert_array_equal(retrieval.image_to_text_ranks(texts, images, t2i), [0, 0])
  # Text->image: t0 is closer to image 1 -> rank 1.
  np.testing.assert_array_equal(retrieval.text_to_image_ranks(texts, images, t2i), [1, 0, 0])


def test_ties_count_against_the_model():
  images = _unit([[1, 0], [1, 0]])
  texts = _unit([[1, 0], [1, 0]])
  np.testing.assert_array_equal(retrieval.text_to_image_ranks(texts, images, [0, 1]), [1, 1])


def test_blockwise_equals_dense():
  rng = np.random.default_rng(0)
  n_img, d = 300, 16
  t2i = np.concatenate([np.arange(n_img), rng.integers(0, n_img, 400)])
  images = _unit(rng.normal(size=(n_img, d)))
  texts = _unit(images[t2i] + 0.2 * rng.normal(size=(len(t2i), d)))
  sims = texts @ images.T
  # Dense reference with argsort top-k (no ties in random floats).
  order = np.argsort(-sims, axis=1)
  dense_t2i = {
    k: np.mean([(order[i, :k] == t2i[i]).any() for i in range(len(t2i))]) for k in (1, 5, 10)
  }
  order_i = np.argsort(-sims.T, axis=1)
  dense_i2t = {
    k: np.mean([(t2i[order_i[j, :k]] == j).any() for j in range(n_img)]) for k in (1, 5, 10)
  }
  for block in (7, 64, 10000):
    m = retrieval.retrieval_metrics(texts, images, t2i, block=block)
    for k in (1, 5, 10):
      assert m[f'image_retrieval_recall@{k}'] == pytest.approx(dense_t2i[k], abs=1e-12)
      assert m[f'text_retrieval_recall@{k}'] == pytest.approx(dense_i2t[k], abs=1e-12)
  assert 0.05 < dense_t2i[1] < 0.95  # not a degenerate case


def test_retrieval_rejects_bad_links():
  with pytest.raises(ValueError, match='no caption'):
    retrieval.retrieval_metrics(np.ones((2, 2)), np.eye(2), [0, 0])
  with pytest.raises(ValueError, match='out of range'):
    retrieval.retrieval_metrics(np.ones((2, 2)), np.eye(2), [0, 2])


class _HashEncoder:
  """A deterministic text encoder (a real function of the text) for weight averaging."""

  def __init__(self, dim=8):
    self.dim, self.calls = dim, 0

  def __call__(self, texts):
    self.calls += 1
    out = []
    for t in texts:
      rng = np.random.default_rng(abs(hash(t)) % (2**32))
      out.append(rng.normal(size=self.dim) * (1 + len(t)))  # unnormalised on purpose
    return np.array(out, np.float32)


def test_classifier_weights_match_numpy_reference(tmp_path):
  ps = prompts_lib.make_prompt_set(
    'toy',
    'de',
    [['Hund', 'Hunde'], 'Katze', ['Vogel']],
    ['ein Foto von {}.', '{} im Bild', 'Zeichnung: {}'],
    num_classes=3,
  )
  enc = _HashEncoder()
  w = zeroshot.classifier_weights(enc, ps)
  ref = []
  for aliases in ps.classes:
    per_alias = []
    for a in aliases:
      e = enc([t.format(a) for t in ps.templates])
      e /= np.linalg.norm(e, axis=1, keepdims=True)
      per_alias.append(e.mean(0))
    c = np.mean(per_alias, 0)
    ref.append(c / np.linalg.norm(c))
  np.testing.assert_allclose(w, np.array(ref), atol=1e-6)
  # Cache: the second call reads the file and does not encode again.
  enc2 = _HashEncoder()
  w1, cached1 = zeroshot.cached_classifier_weights(enc2, ps, str(tmp_path), 'model-a')
  w2, cached2 = zeroshot.cached_classifier_weights(enc2, ps, str(tmp_path), 'model-a')
  assert (cached1, cached2, enc2.calls) == (False, True, 1)
  np.testing.assert_array_equal(w1, w2)
  _, cached3 = zeroshot.cached_classifier_weights(enc2, ps, str(tmp_path), 'model-b')
  assert not cached3


def test_classification_metrics_hand_checked():
  # 3 classes; weights = axes. Images: labels [0, 0, 1, 2, 2].
  weights = np.eye(3, dtype=np.float32)
  img = _unit([[1, 0.5, 0], [0.2, 1, 0], [0, 1, 0.1], [0, 0.3, 1], [1, 0, 0.9]])
  labels = np.array([0, 0, 1, 2, 2])
  rank, wrong = zeroshot.label_ranks(img, weights, labels)
  np.testing.assert_array_equal(rank, [0, 1, 0, 0, 1])
  np.testing.assert_array_equal(wrong, [1, 1, 2, 1, 0])
  m = zeroshot.classification_metrics(rank, labels)
  assert m['acc1'] == pytest.approx(3 / 5)
  assert m['acc5'] == pytest.approx(1.0)
  assert m['mean_per_class_recall'] == pytest.approx((0.5 + 1 + 0.5) / 3)
  ml = zeroshot.multilabel_metrics(
    zeroshot.multilabel_ranks(img, weights, [[0], [0, 1], [1], [2], [1]])
  )
  assert ml['acc1'] == pytest.approx(4 / 5)


def test_zeroshot_ties_count_against_the_model():
  # Classes 0 and 1 have identical weights (e.g. names truncated to the same token ids): an
  # image of either ties with the other and is wrong at top-1, whatever the class order.
  weights = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
  img = _unit([[1, 0.1, 0], [1, 0.1, 0], [0, 1, 0]])
  for order in ([0, 1, 2], [1, 0, 2]):
    labels = np.array(order)
    rank, _ = zeroshot.label_ranks(img, weights, labels)
    np.testing.assert_array_equal(rank[:2], [1, 1])
  metrics, meta = zeroshot.evaluate(
    img, np.array([0, 1, 2]), weights, [0, 1, 2], class_groups=np.array([0, 0, 1])
  )
  assert metrics['acc1'] == pytest.approx(1 / 3)
  assert meta['collisions_merged']['acc1'] == pytest.approx(1.0)
  assert meta['per_class']['0'] == {'n_images': 1, 'acc1': 0.0, 'confused_with': 1}
  # Multi-label: a tie between two of the image's own labels is not against it; with a wrong
  # class it is.
  ml = zeroshot.multilabel_ranks(img[:1], weights, [[0, 1]])
  np.testing.assert_array_equal(ml, [0])
  ml = zeroshot.multilabel_ranks(img[:1], weights, [[0]])
  np.testing.assert_array_equal(ml, [1])


def test_retrieval_ties_count_against_in_both_directions():
  # Texts 0 and 1 are identical (same token ids), each the caption of its own image.
  images = _unit([[1, 0], [1, 0.5]])
  texts = _unit([[1, 0.2], [1, 0.2]])
  np.testing.assert_array_equal(retrieval.image_to_text_ranks(texts, images, [0, 1]), [1, 1])
  # Text->image: image ties by construction.
  images = _unit([[1, 0], [1, 0]])
  np.testing.assert_array_equal(retrieval.text_to_image_ranks(texts, images, [0, 1]), [1, 1])


def test_metrics_recomputed_with_plain_numpy_match_exactly():
  # Quantised embeddings make many exact ties; the reported numbers must equal a direct
  # NumPy computation with the documented rule (correct class ranked below every tie).
  rng = np.random.default_rng(3)
  n_cls, n_img, d = 12, 60, 4
  weights = rng.integers(-1, 2, size=(n_cls, d)).astype(np.float32)
  weights[5] = weights[4]
  weights[weights.sum(1) == 0, 0] = 1.0
  img = rng.integers(-1, 2, size=(n_img, d)).astype(np.float32)
  img[(img == 0).all(1), 0] = 1.0
  labels = rng.integers(0, n_cls, n_img)
  metrics, _ = zeroshot.evaluate(img, labels, weights, list(range(n_cls)))
  logits = _unit(img) @ _unit(weights).T
  own = logits[np.arange(n_img), labels]
  rank = (logits >= own[:, None]).sum(1) - 1
  assert metrics['acc1'] == float(np.mean(rank < 1))
  assert metrics['acc5'] == float(np.mean(rank < 5))
  ties = (logits == own[:, None]).sum(1) > 1
  assert ties.any()  # the case under test occurs
  # Retrieval on the same quantised vectors.
  t2i = np.arange(n_cls)
  m = retrieval.retrieval_metrics(weights, img[:n_cls], t2i, ks=(1, 5))
  sims = _unit(weights) @ _unit(img[:n_cls]).T
  r_t2i = (sims >= sims[t2i, t2i][:, None]).sum(1) - 1
  r_i2t = (sims.T >= sims[t2i, t2i][:, None]).sum(1) - 1
  assert m['image_retrieval_recall@1'] == float(np.mean(r_t2i < 1))
  assert m['image_retrieval_recall@5'] == float(np.mean(r_t2i < 5))
  assert m['text_retrieval_recall@1'] == float(np.mean(r_i2t < 1))
  assert m['text_retrieval_recall@5'] == float(np.mean(r_i2t < 5))


def test_subset_classes_skip_images_outside():
  weights = np.eye(2, dtype=np.float32)  # prompt set covers dataset labels 5 and 2
  img = _unit([[1, 0], [0, 1], [1, 0.2], [0.3, 1]])
  labels = np.array([5, 2, 7, 5])
  metrics, meta = zeroshot.evaluate(img, labels, weights, [5, 2])
  meta.pop('per_class')
  assert meta == {'n_examples': 3, 'n_classes': 2, 'n_images_skipped': 1}
  assert metrics['acc1'] == pytest.approx(2 / 3)


def test_a_text_of_several_images_ties_and_merged_counts_it_for_each():
  # 'red' captions images 0 and 1 (one embedding: the same string), 'blue' image 2.
  images = _unit([[1, 0.1], [1, -0.1], [0, 1]])
  texts = _unit([[1, 0], [1, 0], [0.1, 1]])
  strings = ['red', 'red', 'blue']
  t2i = [0, 1, 2]
  # As scored: image 0's 'red' ties with image 1's, against it; likewise for image 1.
  np.testing.assert_array_equal(retrieval.image_to_text_ranks(texts, images, t2i), [1, 1, 0])
  # Merged: either copy is either red image's caption.
  ids = retrieval.text_ids(strings)
  np.testing.assert_array_equal(ids, [0, 0, 1])
  np.testing.assert_array_equal(
    retrieval.image_to_text_ranks(texts, images, t2i, 1, ids), [0, 0, 0]
  )
  assert retrieval.shared_texts(strings, t2i) == 2
  m = retrieval.shared_texts_merged(texts, images, t2i, strings, ks=(1,))
  assert m == {'image_retrieval_recall@1': 1.0, 'text_retrieval_recall@1': 1.0}
  # The same string under one image twice is not shared.
  assert retrieval.shared_texts(['red', 'red', 'blue'], [0, 0, 1]) == 0
  assert retrieval.shared_texts_meta(texts, images, [0, 0, 1], ['red', 'red', 'blue']) == {
    'n_texts_shared': 0
  }


def test_shared_texts_merged_equals_numpy_at_any_block_size():
  rng = np.random.default_rng(5)
  for _ in range(100):
    n_img = int(rng.integers(1, 25))
    n_text = int(rng.integers(n_img, 60))
    t2i = np.concatenate([np.arange(n_img), rng.integers(0, n_img, n_text - n_img)])
    strings = [f's{x}' for x in rng.integers(0, max(1, n_text // 3), n_text)]
    distinct = sorted(set(strings))
    by_string = dict(zip(distinct, rng.normal(size=(len(distinct), 3)).astype(np.float32)))
    texts = np.stack([by_string[x] for x in strings])
    images = rng.normal(size=(n_img, 3)).astype(np.float32)
    block = int(rng.integers(1, 8))
    m = retrieval.shared_texts_merged(texts, images, t2i, strings, ks=(1, 3), block=block)
    # Scores per distinct string (copies score alike), then the rank rule with "correct" =
    # the (string, image) pairs the data has.
    s = l2_normalize(np.stack([by_string[x] for x in distinct])) @ l2_normalize(images).T
    col = [distinct.index(x) for x in strings]
    pair = np.zeros((len(distinct), n_img), bool)
    pair[col, t2i] = True
    t_rank = [(s[c][~pair[c]] >= s[c][pair[c]].max()).sum() for c in col]
    sc, pc = s[col], pair[col]  # [texts, images]
    i_rank = [(sc[:, i][~pc[:, i]] >= sc[:, i][pc[:, i]].max()).sum() for i in range(n_img)]
    for k in (1, 3):
      assert m[f'image_retrieval_recall@{k}'] == float(np.mean(np.array(t_rank) < k))
      assert m[f'text_retrieval_recall@{k}'] == float(np.mean(np.array(i_rank) < k))
