"""WIT / XM3600 / COCO readers on files written here in the real formats, image stores, TFDS."""

import csv
import gzip
import json
import os

import numpy as np
import pytest
from PIL import Image

from eval_multilingual.datasets import coco, image_classification, image_store, wit, xm3600


def _wit_row(lang, url, ref='', alt='', page='Page'):
  row = dict.fromkeys(wit.COLUMNS, '')
  row.update(
    language=lang,
    page_url=f'https://{lang}.wikipedia.org/wiki/{page}',
    image_url=url,
    page_title=page,
    caption_reference_description=ref,
    caption_alt_text_description=alt,
    mime_type='image/jpeg',
    original_height='480',
    original_width='640',
    is_main_image='true',
    attribution_passes_lang_id='false',
    page_changed_recently='true',
  )
  return [row[c] for c in wit.COLUMNS]


def write_wit(path, rows, extra_lines=''):
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'wt', encoding='utf-8', newline='') as f:
    w = csv.writer(f, delimiter='\t', lineterminator='\n')
    w.writerow(wit.COLUMNS)
    for r in rows:
      w.writerow(r)
    f.write(extra_lines)


U = 'https://upload.wikimedia.org/wikipedia/commons/a/ab/'


def test_wit_reader_multiline_dedup_cap(tmp_path):
  rows = [
    _wit_row('de', U + 'Hund.jpg', 'Ein "großer"\nHund\tim  Park'),  # quoted, multi-line
    _wit_row('de', U + 'Hund.jpg', 'derselbe Hund'),  # duplicate url
    _wit_row('de', U + 'Katze.jpg', '', alt='Katze (alt text)'),  # no reference text
    _wit_row('de', U + 'Baum.jpg', 'Ein Baum'),
    _wit_row('fr', U + 'Chien.jpg', 'Un chien'),
    _wit_row('en', U + 'Dog.jpg', 'A dog'),
    _wit_row('en', U + 'Cat.jpg', 'A cat'),
    _wit_row('en', U + 'Bird.jpg', 'A bird'),  # over cap of 2
    _wit_row('fr', '', "pas d'image"),
  ]
  path = tmp_path / 'wit_v1.test.all-00000-of-00002.tsv.gz'
  write_wit(path, rows, extra_lines='de\tonly three\tcolumns\n')
  write_wit(
    tmp_path / 'wit_v1.test.all-00001-of-00002.tsv.gz', [_wit_row('iw', U + 'Kelev.jpg', 'כלב')]
  )
  pairs, counts = wit.read_wit(str(tmp_path / 'wit_v1.test.all-*.tsv.gz'), max_pairs=2)
  assert sorted(pairs) == ['de', 'en', 'fr', 'iw']
  assert pairs['de'].texts == ['Ein "großer" Hund im Park', 'Ein Baum']
  assert pairs['de'].image_keys == [U + 'Hund.jpg', U + 'Baum.jpg']
  assert pairs['de'].skipped == {'duplicate_image_url': 1, 'no_text': 1}
  assert pairs['en'].texts == ['A dog', 'A cat'] and pairs['en'].skipped == {'over_cap': 1}
  assert pairs['fr'].skipped == {'no_image_url': 1}
  assert pairs['iw'].texts == ['כלב']
  assert counts == {'wrong_column_count': 1}
  # Configurable text: fall back to the alt text; only chosen languages.
  pairs, _ = wit.read_wit(
    str(path),
    languages=['de'],
    max_pairs=None,
    text_fields=('caption_reference_description', 'caption_alt_text_description'),
  )
  assert list(pairs) == ['de'] and pairs['de'].texts[1] == 'Katze (alt text)'


def test_wit_bad_header_and_field(tmp_path):
  path = tmp_path / 'bad.tsv'
  path.write_text('language\timage_url\nde\thttp://x\n', encoding='utf-8')
  with pytest.raises(wit.WitFormatError, match=r'bad\.tsv: line 1: header'):
    wit.read_wit(str(path))
  with pytest.raises(ValueError, match='not a WIT column'):
    wit.read_wit(str(path), text_fields=('caption',))
  with pytest.raises(FileNotFoundError, match='no WIT file matches'):
    wit.read_wit(str(tmp_path / 'missing-*.tsv'))


def test_xm3600_reader(tmp_path):
  lines = [
    {
      'image/key': '0001',
      'de': {'caption': ['Ein Hund.', 'Hund im Gras.'], 'caption/tokenized': ['ein hund .']},
      'en': {'caption': ['A dog.']},
    },
    {'image/key': '0002', 'de': {'caption': ['Eine Katze.']}, 'en': {'caption': []}},
  ]
  path = tmp_path / 'captions.jsonl'
  path.write_text(
    '\n'.join(json.dumps(l, ensure_ascii=False) for l in lines) + '\n{broken\n', encoding='utf-8'
  )
  pairs, counts = xm3600.read_xm3600(str(path), languages=['de', 'en'])
  assert pairs['de'].texts == ['Ein Hund.', 'Hund im Gras.', 'Eine Katze.']
  assert pairs['de'].text_to_image == [0, 0, 1]
  assert pairs['en'].image_keys == ['0001'] and pairs['en'].skipped == {'no_caption': 1}
  assert counts == {'invalid_json': 1}
  assert len(xm3600.LANGUAGES) == 36


def test_coco_reader(tmp_path):
  data = {
    'images': [
      {'id': 9, 'file_name': 'b.jpg'},
      {'id': 3, 'file_name': 'a.jpg'},
      {'id': 5, 'file_name': 'nocap.jpg'},
    ],
    'annotations': [
      {'image_id': 9, 'caption': 'A  cat.'},
      {'image_id': 3, 'caption': 'A dog.'},
      {'image_id': 3, 'caption': 'Dog on grass.'},
      {'image_id': 9},
    ],
  }
  path = tmp_path / 'captions_val2017.json'
  path.write_text(json.dumps(data))
  pairs, counts = coco.read_coco(str(path))
  assert pairs['en'].image_keys == ['a.jpg', 'b.jpg']
  assert pairs['en'].texts == ['A dog.', 'Dog on grass.', 'A cat.']
  assert pairs['en'].text_to_image == [0, 0, 1] and counts['bad_annotation'] == 1
  pairs, _ = coco.read_coco(str(path), max_images=1)
  assert pairs['en'].image_keys == ['a.jpg']


def test_local_image_store_lookup_and_scaling(tmp_path):
  root = tmp_path / 'images'
  (root / 'sub').mkdir(parents=True)
  url = U + 'Hund%20gro%C3%9F.jpg'
  Image.new('RGB', (20, 10), (255, 0, 0)).save(root / f'{image_store.url_sha256(url)}.png')
  Image.new('RGB', (8, 8), (0, 255, 255)).save(root / 'sub' / 'Baum.jpg')
  Image.new('L', (8, 8), 0).save(root / '0001.jpg')
  Image.new('RGB', (8, 8), (0, 0, 255)).save(root / 'Hund groß.jpg')
  store = image_store.LocalImageStore(str(root), image_size=4)
  x = store.load([url, U + 'Baum.jpg', '0001'])
  assert x.shape == (3, 4, 4, 3) and x.dtype == np.float32
  np.testing.assert_allclose(x[0, ..., 0], 1.0, atol=1e-6)  # sha256 name wins
  np.testing.assert_allclose(x[0, ..., 2], -1.0, atol=1e-6)
  np.testing.assert_allclose(x[1, 0, 0], [-1, 1, 1], atol=1e-6)
  np.testing.assert_allclose(x[2], -1.0, atol=1e-6)  # grey -> RGB
  assert not store.has(U + 'Fehlt.jpg')
  with pytest.raises(KeyError, match='no image for'):
    store.load([U + 'Fehlt.jpg'])


def test_local_image_store_prefers_the_image_over_its_webdataset_sidecars(tmp_path):
  # An extracted webdataset/img2dataset shard: '<key>.jpg' beside '<key>.txt' and '<key>.json'.
  # The sidecars are written before the image for half the keys and after it for the rest, so
  # whatever order the file system lists a directory in, some stem sees a sidecar first.
  keys = [f'{i:09d}' for i in range(20)]
  for i, key in enumerate(keys):
    sidecars = [(tmp_path / f'{key}.txt', 'a red circle'), (tmp_path / f'{key}.json', '{}')]
    if i % 2:
      for path, text in sidecars:
        path.write_text(text)
    Image.new('RGB', (8, 8), (255, 0, 0)).save(tmp_path / f'{key}.jpg')
    if not i % 2:
      for path, text in sidecars:
        path.write_text(text)
  store = image_store.LocalImageStore(str(tmp_path), image_size=4)
  assert [os.path.basename(store.path(k)) for k in keys] == [f'{k}.jpg' for k in keys]
  unreadable = {}
  x = store.load(keys, unreadable)
  assert unreadable == {}
  np.testing.assert_allclose(x[..., 0], 1.0, atol=0.02)  # red, as JPEG stores it


def test_embedding_store(tmp_path):
  path = tmp_path / 'emb.npz'
  np.savez(path, keys=np.array(['u1', 'u2']), embeddings=np.eye(2, 3))
  store = image_store.open_store(embeddings=str(path))
  np.testing.assert_array_equal(store.load(['u2']), [[0, 1, 0]])
  assert store.kind == 'embedding' and not store.has('u3')
  np.savez(tmp_path / 'bad.npz', keys=np.array(['u1']))
  with pytest.raises(KeyError, match="needs arrays 'keys' and 'embeddings'"):
    image_store.EmbeddingStore(str(tmp_path / 'bad.npz'))


def test_npz_classification_source(tmp_path):
  path = tmp_path / 'cls.npz'
  np.savez(
    path, embeddings=np.ones((5, 4)), labels=np.arange(5), multi_labels=np.array([[0, -1]] * 5)
  )
  src = image_classification.EmbeddingImages(str(path))
  batches = list(src.batches(2))
  assert [len(b[1]) for b in batches] == [2, 2, 1] and batches[0][2] == [[0], [0]]


def test_tfds_missing_split_or_feature_is_a_user_error(monkeypatch):
  # A prepared dataset without the split (or feature) asked for: one line naming the setting,
  # not a KeyError traceback. A stand-in for tensorflow_datasets keeps the test cheap.
  import sys
  import types

  from tasks.user_error import UserError

  info = types.SimpleNamespace(splits={'train': None}, features={'image': None, 'label': None})
  builder = types.SimpleNamespace(is_prepared=lambda: True, info=info, data_dir='/d/imagenet2012')
  fake = types.SimpleNamespace(builder=lambda name, data_dir=None: builder)
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', fake)
  with pytest.raises(
    UserError, match=r"has splits \['train'\], not 'validation' \(TfdsImages.split\)"
  ):
    image_classification.TfdsImages('imagenet2012', 'validation', data_dir='/d')
  with pytest.raises(UserError, match="no feature 'real_label'"):
    image_classification.TfdsImages('imagenet2012', 'train', multilabel_key='real_label')


def test_tfds_undecodable_images_are_left_out_and_counted(monkeypatch, caplog):
  # A prepared split holding files that do not decode (a cut JPEG, junk bytes): the others are
  # scored, the failures counted and the first named; it crashed the evaluation in TensorFlow.
  import io
  import sys
  import types

  tf = pytest.importorskip('tensorflow')
  jpegs = []
  for grey in (20, 220):
    buf = io.BytesIO()
    Image.new('RGB', (10, 12), (grey,) * 3).save(buf, 'JPEG')
    jpegs.append(buf.getvalue())
  rows = {
    'image': [jpegs[0], jpegs[1][:40], b'not an image', jpegs[1]],
    'label': np.array([0, 1, 2, 1], np.int64),
    'file_name': ['a.JPEG', 'cut.JPEG', 'junk.JPEG', 'd.JPEG'],
  }
  split = types.SimpleNamespace(num_examples=4)
  info = types.SimpleNamespace(splits={'validation': split}, features=dict.fromkeys(rows))
  builder = types.SimpleNamespace(
    is_prepared=lambda: True,
    info=info,
    as_dataset=lambda **kw: tf.data.Dataset.from_tensor_slices(rows),
  )
  fake = types.SimpleNamespace(
    builder=lambda name, data_dir=None: builder,
    decode=types.SimpleNamespace(SkipDecoding=lambda: None),
  )
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', fake)
  src = image_classification.TfdsImages('imagenet2012', 'validation', image_size=4)
  with caplog.at_level('WARNING'):
    got = list(src.batches(8))
  assert sorted(got[0][1].tolist()) == [0, 1] and src.n_unreadable == 2
  assert '2 of 4 images cannot be decoded, left out (first: cut.JPEG, junk.JPEG)' in caplog.text


@pytest.mark.slow
def test_tfds_classification_source(tmp_path):
  tf = pytest.importorskip('tensorflow')
  import tensorflow_datasets as tfds

  labels = np.array([0, 1, 2, 1, 0])
  imgs = np.broadcast_to(
    (labels * 100 + 20).astype(np.uint8)[:, None, None, None], (5, 12, 10, 3)
  ).copy()  # grey level identifies the label
  ds = tf.data.Dataset.from_tensor_slices({'image': imgs, 'label': labels})
  tfds.dataset_builders.TfDataBuilder(
    name='mlit_tiny_cls',
    version='1.0.0',
    split_datasets={'test': ds},
    features=tfds.features.FeaturesDict(
      {
        'image': tfds.features.Image(shape=(12, 10, 3)),
        'label': tfds.features.ClassLabel(num_classes=3),
      }
    ),
    data_dir=str(tmp_path),
  ).download_and_prepare()
  src = image_classification.TfdsImages(
    'mlit_tiny_cls', 'test', data_dir=str(tmp_path), image_size=6
  )
  got = list(src.batches(4))
  assert [b[0].shape for b in got] == [(4, 6, 6, 3), (1, 6, 6, 3)]
  got_labels = np.concatenate([b[1] for b in got])  # TFDS shuffles when writing
  assert sorted(got_labels) == [0, 0, 1, 1, 2]
  got_images = np.concatenate([b[0] for b in got])
  np.testing.assert_allclose(
    got_images,
    np.broadcast_to(((got_labels * 100 + 20) / 127.5 - 1)[:, None, None, None], got_images.shape),
    atol=1e-5,
  )
  with pytest.raises(FileNotFoundError, match='never downloads'):
    image_classification.TfdsImages('cifar100', 'test', data_dir=str(tmp_path / 'empty'))
