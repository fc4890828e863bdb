"""Image shards end to end: webdataset tars and img2dataset TFRecords made here (real JPEGs, a real
tar), `mlit ingest` with Beam's DirectRunner, a few training steps on the ingested shards and
pre-computed embeddings from them; exact counts per skip reason with planted bad images; shards
per process disjoint and covering.
"""

import json
import os
import re
import tarfile

import numpy as np
import pytest
import seqio
import shard_files
import task_files
from spm_fixture import spm_model_path  # noqa: F401

import gin
from mlit.commands import ingest, precompute
from mlit.ingest import shards as shard_io
from mlit.training import train
from tasks import cc12m, data_stats, image_store, shard_image_store, shard_tasks, yfcc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 14  # CC12M rows; 0-6 in the tar, 7-12 in the TFRecord, 13 has no image anywhere
VIT = dict(width=16, depth=1, mlp_dim=32, num_heads=2, patch_size=(8, 8))
# Planted: 2 unreadable bytes, 4 json+txt but no image, 9 json size != image size, 13 no sample.
EXPECTED_SKIPS = {
  'unreadable_image': 1,
  'missing_image': 2,
  'mismatched_image': 1,
  'wrong_column_count': 1,
}
EXPECTED_KEPT = N - 4


def _url(i):
  return f'http://img.example/{i}.jpg'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  d = str(tmp_path_factory.mktemp('shards'))
  samples = [
    shard_files.sample(f'{i:09d}', _url(i), f'a red boat {i}', (15 * i, 90, 200 - 10 * i))
    for i in range(N - 1)
  ]
  samples[2]['image'] = b'\xff\xd8 not really a jpeg'
  samples[4]['image'] = None
  samples[9]['json']['width'] = 41
  samples.append(shard_files.sample('000000099', 'http://img.example/stray.jpg', 'no row'))
  shard_files.write_webdataset_tar(os.path.join(d, 'cc-00000.tar'), samples[:7])
  shard_files.write_img2dataset_tfrecord(os.path.join(d, 'cc-00001.tfrecord'), samples[7:])
  rows = [f'{_url(i)}\ta red boat number {i}' for i in range(N)]
  task_files.write_lines(os.path.join(d, 'cc12m.tsv'), rows[:5] + ['one column only'] + rows[5:])
  return {'dir': d, 'images': f'{d}/cc-00000.tar,{d}/cc-00001.tfrecord', 'tsv': f'{d}/cc12m.tsv'}


def _ingest_args(data, out, num_shards=3):
  return [
    *('--images', data['images'], '--metadata', data['tsv'], '--format', 'cc12m'),
    *('--shard_key', 'url', '--language', 'en', '--output', out),
    *('--num_shards', str(num_shards)),
  ]


@pytest.fixture(scope='module')
def ingested(data):
  out = os.path.join(data['dir'], 'ingested')
  assert ingest.main(_ingest_args(data, out)) == 0
  return out


def test_ingest_counts_every_reason_and_resumes(data, ingested, capsys):
  manifest = shard_io.read_json(os.path.join(ingested, 'manifest.json'))
  assert manifest['examples'] == EXPECTED_KEPT
  assert manifest['skipped_rows'] == EXPECTED_SKIPS
  assert manifest['images_without_metadata'] == 1
  assert manifest['languages'] == {'en': EXPECTED_KEPT}
  assert sum(s['examples'] for s in manifest['shards'].values()) == EXPECTED_KEPT
  assert all(s['examples'] > 0 for s in manifest['shards'].values())
  # Every id sits in the shard its hash names, once, with the row's text and the image's bytes.
  ids = []
  for name in manifest['shards']:
    index = int(name.split('-')[1])
    for ex in _records(os.path.join(ingested, name)):
      assert shard_io.shard_of(ex['example_id'], 3) == index
      ids.append(ex['example_id'])
      assert ex['text'].startswith('a red boat number') and ex['image'][:2] == b'\xff\xd8'
  kept = {image_store.url_id(_url(i)) for i in range(N)} - {
    image_store.url_id(_url(i)) for i in (2, 4, 9, 13)
  }
  assert sorted(ids) == sorted(kept)
  # Resume: a shard without its sidecar is rewritten (same bytes), the others are skipped.
  name = shard_io.shard_name(1, 3)
  with open(os.path.join(ingested, name), 'rb') as f:
    before = f.read()
  os.remove(shard_io.sidecar_path(ingested, 1, 3))
  capsys.readouterr()
  assert ingest.main(_ingest_args(data, ingested)) == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary['last_run']['shards_written'] == 1
  assert summary['last_run']['shards_already_complete'] == 2
  assert summary['skipped_rows'] == EXPECTED_SKIPS and summary['examples'] == EXPECTED_KEPT
  with open(os.path.join(ingested, name), 'rb') as f:
    assert f.read() == before
  # Without metadata the samples' own captions are the texts (img2dataset output as it comes).
  bare = os.path.join(data['dir'], 'bare')
  assert ingest.main(['--images', data['images'], '--output', bare, '--num_shards', '2']) == 0
  manifest = shard_io.read_json(os.path.join(bare, 'manifest.json'))
  assert manifest['examples'] == N - 3 and manifest['images_without_metadata'] == 0
  assert manifest['skipped_rows'] == {
    'unreadable_image': 1,
    'missing_image': 1,
    'mismatched_image': 1,
  }
  # Another shard count into the same directory is refused with one line, exit 2.
  with pytest.raises(SystemExit) as e:
    ingest.main(_ingest_args(data, ingested, num_shards=4))
  assert e.value.code == 2


def _records(path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
    feats = tf.train.Example.FromString(raw).features.feature
    ex = {k: v.bytes_list.value[0] for k, v in feats.items() if v.bytes_list.value}
    yield {k: (v if k == 'image' else v.decode()) for k, v in ex.items()}


def _source_ids(task_name, shard_info=None):
  source = seqio.get_mixture_or_task(task_name).source
  ds = source.get_dataset('train', shuffle=False, shard_info=shard_info)
  return [ex['example_id'].decode() for ex in ds.as_numpy_iterator()]


def test_tasks_read_shards_as_they_come_and_join_metadata(data, spm_model_path):  # noqa: F811
  gin.bind_parameter('tasks.vocabularies.vocabulary.path', spm_model_path)
  # img2dataset output as it comes: the captions in the shards, ids by url.
  data_stats.reset()
  shard_tasks.register_image_shards(data['images'], name='raw_shards', shard_key='url')
  ids = _source_ids('raw_shards')
  assert len(ids) == N - 3  # 13 samples with a row, the stray one, 3 bad
  assert data_stats.snapshot()['skipped_rows'] == {
    'unreadable_image': 1,
    'missing_image': 1,
    'mismatched_image': 1,
  }
  # data_stats.json's corpus names the source as its kept rows do (it said 'rows').
  assert set(data_stats.snapshot()['corpus']) == {'image_shards'}
  # CC12M rows joined with the shards' images (image_shards= instead of image_dir=).
  data_stats.reset()
  cc12m.register_cc12m(data['tsv'], image_shards=data['images'])
  ids = _source_ids('cc12m')
  assert len(ids) == EXPECTED_KEPT
  assert data_stats.snapshot()['skipped_rows'] == EXPECTED_SKIPS
  # YFCC rows joined by photo id = the tar's sample key (img2dataset run with the ids as keys).
  d = data['dir']
  tar = shard_files.write_webdataset_tar(
    f'{d}/yfcc-00000.tar', [shard_files.sample(str(10 + i), _url(i), '', (9, 9, 9)) for i in (0, 1)]
  )
  rows = [task_files.yfcc_row(10 + i, f'Boat {i}', 'At sea', ['boat'], line=i) for i in range(3)]
  task_files.write_lines(f'{d}/yfcc.tsv', rows)
  data_stats.reset()
  yfcc.register_yfcc(f'{d}/yfcc.tsv', image_shards=tar, detect_languages=False)
  assert sorted(_source_ids('yfcc100m_full')) == ['10', '11']
  assert data_stats.snapshot()['skipped_rows'] == {'missing_image': 1}


def test_shards_per_process_are_disjoint_and_cover(ingested, spm_model_path):  # noqa: F811
  gin.bind_parameter('tasks.vocabularies.vocabulary.path', spm_model_path)
  shard_tasks.register_image_shards(f'{ingested}/shards-*.tfrecord', name='ingested')
  every = _source_ids('ingested')
  per_process = [_source_ids('ingested', seqio.ShardInfo(i, 3)) for i in range(3)]
  assert sorted(sum(per_process, [])) == sorted(every) and len(every) == EXPECTED_KEPT
  assert all(per_process) and len(set(sum(per_process, []))) == len(every)
  for count in (1, 2, 3, 5):
    parts = [precompute.shards_of_process(7, i, count) for i in range(count)]
    assert sorted(sum(parts, [])) == list(range(7))


_GIN = """
from __gin__ import dynamic_registration
import tasks.registration
import tasks.shard_tasks
import tasks.vocabularies
import tasks.image_preprocessors
from mlit.training import train

include 'local_tiny.gin'
include 'setups/uu.gin'
tasks.vocabularies.vocabulary.path = '{spm}'
tasks.shard_tasks.register_image_shards.pattern = '{pattern}'
tasks.shard_tasks.register_image_shards.name = 'ingested_cc12m'
tasks.registration.register_tasks.registrations = [@tasks.shard_tasks.register_image_shards]
tasks.registration.registered_task.name = 'ingested_cc12m'
MIXTURE_OR_TASK_NAME = @tasks.registration.registered_task()
TASK_FEATURE_LENGTHS = {{'text': 8}}
IMAGE_TOWER = {vit}
tasks.image_preprocessors.decode_image.size = 16
TRAIN_STEPS = 2
WARMUP_STEPS = 1
BATCH_SIZE = 4
train.train.log_period = 1
"""


def _train_in_process(gin_path, model_dir):
  """`mlit train --gin_file=gin_path` in this process; gin left clear for the next test."""
  args = [f'--gin_search_paths={ROOT}/gin', f'--gin_file={gin_path}']
  try:
    assert train.main([*args, f'--gin.MODEL_DIR="{model_dir}"']) == 0
  finally:
    gin.clear_config()
    gin.config._set_config_is_locked(False)  # pylint: disable=protected-access
  return model_dir


@pytest.mark.slow
def test_train_and_precompute_on_ingested_shards(ingested, spm_model_path, tmp_path):  # noqa: F811
  pattern = f'{ingested}/shards-*.tfrecord'
  gin_path = tmp_path / 'ingested.gin'
  gin_path.write_text(_GIN.format(spm=spm_model_path, pattern=pattern, vit=VIT))
  model_dir = _train_in_process(gin_path, tmp_path / 'run')
  with open(model_dir / 'metrics.jsonl') as f:
    records = [json.loads(line) for line in f]
  assert records[-1]['step'] == 2 and all(np.isfinite(r['loss']) for r in records)

  gin.bind_parameter('tasks.vocabularies.vocabulary.path', spm_model_path)
  shard_tasks.register_image_shards(pattern, name='ingested_cc12m')
  out = str(tmp_path / 'emb')
  manifest = precompute.precompute('ingested_cc12m', out, VIT, image_size=16, batch_size=3)
  assert manifest['complete'] and len(manifest['done']) == 3
  assert sum(d['examples'] for d in manifest['done'].values()) == EXPECTED_KEPT
  assert manifest['last_run']['images'] == EXPECTED_KEPT
  assert manifest['last_run']['images_per_s'] > 0
  ids = [ex['example_id'] for s in sorted(manifest['done']) for ex in _records(f'{out}/{s}')]
  assert len(set(ids)) == EXPECTED_KEPT


def test_ingest_that_keeps_nothing_fails_in_one_line(data, tmp_path, capsys):
  """Every row skipped (here: joined on the wrong key) is exit 2 and one line with the reasons,
  not exit 0 with an empty output."""
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  argv = _ingest_args(data, str(tmp_path / 'out'), num_shards=1)
  argv[argv.index('url')] = 'key'
  assert cli.main(['ingest', *argv]) == 2
  *before, err = capsys.readouterr().err.strip().splitlines()
  assert err.startswith('mlit ingest: error: ingest wrote no example to ')
  assert all(l.startswith('mlit ingest: warning: skipping row (') for l in before), before


def test_a_shard_key_no_sample_has_is_named(data, tmp_path, capsys, caplog):
  """--shard_key naming a json field the samples lack: every sample without an id. The one line
  says so (it said only that every row was skipped), and the per-sample warning stops at 5."""
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  argv = _ingest_args(data, str(tmp_path / 'out'), num_shards=1)
  argv[argv.index('url')] = 'urll'
  assert cli.main(['ingest', *argv]) == 2
  err = capsys.readouterr().err.strip()
  assert re.search(r"none of the [\d,]+ image samples has a 'urll' \(--shard_key\)$", err), err
  warned = [r for r in caplog.records if 'image sample without a' in r.getMessage()]
  assert 0 < len(warned) <= 5


def test_damaged_shards_and_bad_sidecars_are_counted_not_fatal(tmp_path):
  """A tar cut short keeps the samples before the cut; a file that is not a TFRecord, a json that
  is not an object or whose size is not numbers, and a caption that is not UTF-8 are counted per
  reason, naming the shard: none of them stops the reader (each was a traceback before)."""
  good = [shard_files.sample(f'g{i}', _url(i), f'a red boat {i}') for i in range(3)]
  _write_cut_tar(str(tmp_path / 'cut.tar'), good)
  with open(tmp_path / 'not_a_record.tfrecord', 'wb') as f:
    f.write(b'http://img.example/0.jpg\ta caption\n' * 20)
  odd = [shard_files.sample(f'o{i}', _url(10 + i), f'odd {i}') for i in range(4)]
  odd[0]['json'] = [1, 2]  # valid JSON, not an object
  odd[1]['json']['width'] = 'wide'
  odd[2]['txt'] = 'NOT_UTF_8'  # made not UTF-8 below, at the same length
  odd[2]['json'].pop('caption')
  path = str(tmp_path / 'odd.tar')
  shard_files.write_webdataset_tar(path, odd)
  with open(path, 'rb') as f:
    raw = f.read().replace(b'NOT_UTF_8', b'\xffNOT_UTF8')
  with open(path, 'wb') as f:
    f.write(raw)
  data_stats.reset()
  kept = {}
  for name in ('cut.tar', 'not_a_record.tfrecord', 'odd.tar'):
    rows = shard_tasks.read_shard_examples(str(tmp_path / name), ('text',))
    kept[name] = [r['example_id'] for r in rows]
  assert kept == {'cut.tar': ['g0'], 'not_a_record.tfrecord': [], 'odd.tar': ['o0', 'o3']}
  assert data_stats.snapshot()['skipped_rows'] == {
    'damaged_shard': 2,
    'bad_field': 1,
    'invalid_utf8': 1,
  }
  # Metadata joined with the cut tar by key: the rows of its lost samples lack an image.
  store = shard_image_store.ShardImageStore(str(tmp_path / 'cut.tar'))
  assert store.read('g0')[:2] == b'\xff\xd8'
  with pytest.raises(image_store.ImageError, match='no image for id g1'):
    store.read('g1')


def test_ingest_counts_damaged_shards_and_names_what_it_skips(tmp_path, capsys, caplog):
  """`mlit ingest` over a tar cut short and a non-TFRecord file: the good samples are ingested,
  the damage is counted per reason in the printed summary and the manifest, and each skipped
  sample is logged with its shard and key."""
  samples = [shard_files.sample(f'{i:09d}', _url(i), f'a red boat {i}') for i in range(4)]
  samples[3]['image'] = b'\xff\xd8 not really a jpeg'
  samples.append(shard_files.sample(f'{0:09d}', _url(0), 'the same key again'))
  shard_files.write_webdataset_tar(str(tmp_path / 'a-00000.tar'), samples)
  cut = [shard_files.sample(f'c{i}', _url(10 + i), f'a cut boat {i}') for i in range(3)]
  _write_cut_tar(str(tmp_path / 'a-00001.tar'), cut)
  with open(tmp_path / 'a-00002.tfrecord', 'wb') as f:
    f.write(b'not a record\n' * 10)
  out = str(tmp_path / 'out')
  caplog.set_level('WARNING')
  assert ingest.main(['--images', f'{tmp_path}/a-*', '--output', out, '--num_shards', '1']) == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary['examples'] == 3 + 1  # the whole tar's good three, the cut one's first
  assert summary['skipped_rows'] == {'damaged_shard': 2, 'unreadable_image': 1}
  assert summary['duplicate_images'] == 1  # every sample read is in the printed line
  assert sum(1 for _ in _records(os.path.join(out, shard_io.shard_name(0, 1)))) == 4
  assert f'{tmp_path}/a-00000.tar:000000003.jpg: cannot decode image' in caplog.text
  assert f'{tmp_path}/a-00002.tfrecord: not a TFRecord' in caplog.text


def _write_cut_tar(path, samples):
  """A webdataset tar of `samples` cut inside the second sample's image, as a download that
  stopped there leaves it."""
  shard_files.write_webdataset_tar(path, samples)
  with tarfile.open(path) as tar:
    second_image = [m for m in tar.getmembers() if m.name.startswith(samples[1]['key'])][0]
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[: second_image.offset_data + 10])


_PRECOMPUTED_GIN = """
from __gin__ import dynamic_registration
import tasks.registration
import tasks.precomputed
import tasks.vocabularies
from mlit.training import train

include 'local_tiny.gin'
tasks.vocabularies.vocabulary.path = '{spm}'
tasks.precomputed.register_precomputed.embedding_dirs = ['{emb}']
tasks.precomputed.register_precomputed.name = 'shapes_precomputed'
tasks.precomputed.register_precomputed.mode = 'text'
tasks.registration.register_tasks.registrations = [@tasks.precomputed.register_precomputed]
tasks.registration.registered_task.name = 'shapes_precomputed'
MIXTURE_OR_TASK_NAME = @tasks.registration.registered_task()
TASK_FEATURE_LENGTHS = {{'text': 8}}
TRAIN_STEPS = 2
WARMUP_STEPS = 1
BATCH_SIZE = 4
"""


@pytest.mark.slow
def test_a_run_on_precomputed_embeddings_records_the_tower_that_made_them(
  data,
  spm_model_path,  # noqa: F811
  tmp_path,
):
  """webdataset tar -> `mlit precompute` with a locked tower checkpoint -> `mlit train` on the
  embeddings, no train.train.inference_image bound: the run runs that tower on pixels, and an
  image's embedding through it is the one through its pre-computed embedding."""
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  import mlit  # pylint: disable=g-import-not-at-top
  from mlit.models import image_tower  # pylint: disable=g-import-not-at-top

  params = image_tower.ViT(**VIT).init(jax.random.PRNGKey(1), jnp.zeros((1, 16, 16, 3)))
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params['params']), sep='/')
  tower = str(tmp_path / 'tower.npz')
  np.savez(tower, **{k: np.asarray(v) for k, v in flat.items()})
  gin.bind_parameter('tasks.vocabularies.vocabulary.path', spm_model_path)
  shard_tasks.register_image_shards(os.path.join(data['dir'], 'cc-00000.tar'), name='shapes')
  emb = str(tmp_path / 'emb')
  precompute.precompute('shapes', emb, VIT, tower, image_size=16, batch_size=4)
  gin.clear_config()
  gin_path = tmp_path / 'train.gin'
  gin_path.write_text(_PRECOMPUTED_GIN.format(spm=spm_model_path, emb=emb))
  model_dir = _train_in_process(gin_path, tmp_path / 'run')
  image = json.loads((model_dir / 'mlit_model.json').read_text())['image']
  assert image['route'] == 'locked' and image['kind'] == 'vit' and image['size'] == 16
  assert image['checkpoint']['path'] == tower
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  raw = next(iter(tf.data.TFRecordDataset(f'{emb}/embeddings-00000-of-00001.tfrecord')))
  feats = tf.train.Example.FromString(raw.numpy()).features.feature
  key = feats['example_id'].bytes_list.value[0].decode()
  embedding = np.asarray(feats['image_embedding'].float_list.value, np.float32)
  with tarfile.open(os.path.join(data['dir'], 'cc-00000.tar')) as tar:
    (tmp_path / 'one.jpg').write_bytes(tar.extractfile(f'{key}.jpg').read())
  model = mlit.load(str(model_dir))
  np.testing.assert_allclose(
    model.encode_image([str(tmp_path / 'one.jpg')]),
    model.encode_image_embedding(embedding[None]),
    atol=1e-2,  # JPEG decoding and resizing differ a little between TensorFlow and Pillow
  )


def test_a_task_name_the_gin_registrations_register_is_found_without_registered_task(
  data,
  spm_model_path,  # noqa: F811
):
  """MIXTURE_OR_TASK_NAME as the plain name of a task that the gin file's
  register_tasks.registrations register (as `mlit precompute` reads them) is found by the
  trainer's input; a misspelt one names what they registered."""
  from mlit.training import input_pipeline  # pylint: disable=g-import-not-at-top
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  gin.clear_config()
  tar = os.path.join(data['dir'], 'cc-00000.tar')
  try:
    gin.parse_config(
      [
        'import tasks.registration',
        f"tasks.vocabularies.vocabulary.path = '{spm_model_path}'",
        'tasks.registration.register_tasks.registrations = '
        '[@tasks.shard_tasks.register_image_shards]',
        f"tasks.shard_tasks.register_image_shards.pattern = '{tar}'",
        "tasks.shard_tasks.register_image_shards.name = 'own_captions_plain_name'",
      ]
    )
    if 'own_captions_plain_name' in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove('own_captions_plain_name')
    task = input_pipeline.mixture_or_task('own_captions_plain_name')
    assert task.name == 'own_captions_plain_name' and task.source.list_shards('train') == [tar]
    with pytest.raises(UserError, match="register 'own_captions_plain_name'"):
      input_pipeline.mixture_or_task('own_captions_plain_nmae')
  finally:
    gin.clear_config()


def test_an_unreadable_remote_vocabulary_is_one_line_naming_the_key(data):
  """A task vocabulary on a store that cannot be read (offline, the default mC4 model on gs://)
  stops the trainer's first check with one line naming the bindings that set it."""
  from mlit.models import text_tower, two_tower  # pylint: disable=g-import-not-at-top
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  gin.clear_config()
  try:
    gin.bind_parameter('tasks.vocabularies.vocabulary.path', 'ram://no-such-store/spm.model')
    tar = os.path.join(data['dir'], 'cc-00000.tar')
    shard_tasks.register_image_shards(tar, name='own_captions_remote_vocab')
    model = two_tower.TwoTower(text=text_tower.T5Config(512, 8, 2, 1, 4, 16), out_dim=8)
    with pytest.raises(
      UserError, match=r'ram://no-such-store/spm.model .*sentencepiece_model_file.*vocabulary.path'
    ):
      train._check_vocabulary(model, 'own_captions_remote_vocab', {'text': 8})
  finally:
    gin.clear_config()
