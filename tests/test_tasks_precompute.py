"""mlit.commands.precompute: embedding shards + manifest, resume by shard, no mixing of towers."""

import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio
import task_files
from spm_fixture import spm_model_path  # noqa: F401

import gin
from mlit.checkpoints import big_vision_npz as vit_checkpoint
from mlit.commands import precompute
from mlit.models import image_tower
from tasks import precomputed, yfcc

VIT = dict(width=16, depth=1, mlp_dim=32, num_heads=2, patch_size=(8, 8))


@pytest.fixture
def yfcc_task(tmp_path, spm_model_path):  # noqa: F811
  gin.clear_config()
  gin.bind_parameter('tasks.vocabularies.vocabulary.path', spm_model_path)
  for shard in range(2):
    rows = [
      task_files.yfcc_row(shard * 10 + i, f'Red boat {i}', 'On the lake', ['boat'])
      for i in range(3)
    ]
    task_files.write_lines(str(tmp_path / f'm-{shard}.tsv'), rows)
    for i in range(3):
      task_files.write_image(
        str(tmp_path / 'img' / f'{shard * 10 + i}.jpg'), (60 * i, 40 * shard, 90)
      )
  yfcc.register_yfcc(
    str(tmp_path / 'm-*.tsv'), image_dir=str(tmp_path / 'img'), detect_languages=False
  )
  yield 'yfcc100m_full'
  gin.clear_config()


def _progress_lines(capsys):
  err = capsys.readouterr().err.splitlines()
  assert 'randomly initialised tower (seed 0)' in '\n'.join(err)  # VIT has no checkpoint here
  return [l for l in err if l.startswith('mlit precompute: ') and ': warning: ' not in l]


def test_precompute_resume_and_tower_check(tmp_path, yfcc_task, capsys):
  out = str(tmp_path / 'emb')
  m = precompute.precompute(yfcc_task, out, VIT, image_size=16, batch_size=2)
  assert m['complete'] and m['num_shards'] == 2 and m['embedding_dim'] == 16
  assert sum(d['examples'] for d in m['done'].values()) == 6
  lines = _progress_lines(capsys)
  assert [l.split(', ')[0] for l in lines] == [
    'mlit precompute: 1 of 2 shards',
    'mlit precompute: 2 of 2 shards',
  ]
  assert lines[0].endswith('(shard 00000: 3 images)') and 'images/s, ETA ' in lines[0]
  assert 'ETA 0:00 (shard 00001: 3 images)' in lines[1]
  # Crash simulation: the second shard was never finished.
  second = 'embeddings-00001-of-00002.tfrecord'
  del m['done'][second]
  m['complete'] = False
  os.remove(os.path.join(out, second))
  with open(os.path.join(out, 'manifest.json'), 'w') as f:
    json.dump(m, f)
  # kill -9 mid-shard leaves its temporary file (atomic_path's clean-up never runs): removed.
  with open(os.path.join(out, f'{second}.tmp-99999'), 'wb') as f:
    f.write(b'half a shard')
  first = os.path.join(out, 'embeddings-00000-of-00002.tfrecord')
  mtime = os.path.getmtime(first)
  m2 = precompute.precompute(yfcc_task, out, VIT, image_size=16, batch_size=2)
  assert m2['complete'] and os.path.getmtime(first) == mtime  # not redone
  # The resumed run counts the first shard as done; only the second is embedded.
  err = capsys.readouterr().err
  [line] = [l for l in err.splitlines() if ' of 2 shards' in l]
  assert line.startswith('mlit precompute: 2 of 2 shards, ')
  assert line.endswith('(shard 00001: 3 images)')
  assert os.path.exists(os.path.join(out, second))
  assert f'removed {second}.tmp-99999, left unfinished by an interrupted run' in err
  assert sorted(os.listdir(out)) == ['embeddings-00000-of-00002.tfrecord', second, 'manifest.json']
  # Nothing left: said, and the last run's measured speed is kept.
  last_run = m2['last_run']
  m3 = precompute.precompute(yfcc_task, out, VIT, image_size=16, batch_size=2)
  assert m3['last_run'] == last_run and last_run['images_per_s']
  assert 'every shard of yfcc100m_full was already embedded' in capsys.readouterr().err
  # A source file that changed since (a row appended): its shard is embedded again, not reused.
  task_files.write_lines(
    str(tmp_path / 'm-1.tsv'),
    [task_files.yfcc_row(10 + i, f'Red boat {i}', 'On the lake', ['boat']) for i in range(2)]
    + ['19\tnot a Webscope row'],  # malformed: counted, not embedded
  )
  m4 = precompute.precompute(yfcc_task, out, VIT, image_size=16, batch_size=2)
  assert m4['done'][second]['examples'] == 2 and os.path.getmtime(first) == mtime
  assert m4['done'][second]['skipped_rows'] == {'wrong_column_count': 1}  # counted, per shard
  assert 'changed since it was embedded' in capsys.readouterr().err

  precomputed.register_precomputed([out], name='emb_task')
  exs = list(
    seqio.get_mixture_or_task('emb_task')
    .get_dataset({'title': 16, 'description': 16, 'tags': 16}, split='train', shuffle=False, seed=0)
    .as_numpy_iterator()
  )
  assert sorted(e['example_id'] for e in exs) == sorted(str(i).encode() for i in (0, 1, 2, 10, 11))
  assert exs[0]['image_embedding'].shape == (16,) and exs[0]['title'][-1] == 1
  embs = np.stack([e['image_embedding'] for e in exs])
  assert np.abs(embs - embs[0]).max() > 1e-4  # different images, different embeddings

  # The same task by another tower: refused in the same dir, and when mixing dirs.
  other = dict(VIT, depth=2)
  with pytest.raises(ValueError, match=r'\(vit.depth 1 then, 2 now\)'):
    precompute.precompute(yfcc_task, out, other, image_size=16)
  out_b = str(tmp_path / 'emb_b')
  precompute.precompute(yfcc_task, out_b, other, image_size=16)
  with pytest.raises(ValueError, match='different image towers'):
    precomputed.register_precomputed([out, out_b], name='mixed')


def test_unfinished_embeddings_refused(tmp_path):
  d = tmp_path / 'e'
  d.mkdir()
  (d / 'manifest.json').write_text(
    json.dumps({'tower': {}, 'complete': False, 'embedding_dim': 4, 'string_features': []})
  )
  with pytest.raises(ValueError, match='not finished'):
    precomputed.embedding_source([str(d)])


def test_single_text_embeddings_in_the_default_yfcc_mode_are_one_line(tmp_path, spm_model_path):  # noqa: F811
  """Embeddings of image shards carry one 'text': the default mode ('joint', YFCC's three
  signals) names the mode to set, where it failed inside tf.data with KeyError 'tags'."""
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  d = tmp_path / 'e'
  d.mkdir()
  manifest = {'tower': {}, 'complete': True, 'embedding_dim': 4}
  manifest['string_features'] = ['example_id', 'language', 'text']
  (d / 'manifest.json').write_text(json.dumps(manifest))
  gin.clear_config()
  gin.bind_parameter('tasks.vocabularies.vocabulary.path', spm_model_path)
  try:
    with pytest.raises(UserError, match=r"register_precomputed.mode = 'text'"):
      precomputed.register_precomputed([str(d)], name='one_text')
    assert precomputed.register_precomputed([str(d)], name='one_text', mode='text') == ['one_text']
    assert set(seqio.get_mixture_or_task('one_text').output_features) == {'text', 'image_embedding'}
  finally:
    gin.clear_config()


def test_precompute_refuses_a_checkpoint_missing_an_array(tmp_path, yfcc_task):
  """A .npz without one of the tower's arrays must not embed with that layer at random init."""
  model = image_tower.ViT(**VIT)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))['params']
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep='/')
  del flat['Transformer/encoder_norm/scale']
  path = tmp_path / 'partial.npz'
  np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})
  with pytest.raises(vit_checkpoint.CheckpointError, match='encoder_norm/scale'):
    precompute.precompute(yfcc_task, str(tmp_path / 'emb'), VIT, str(path), image_size=16)


def test_precompute_names_what_differs_and_a_missing_checkpoint(tmp_path, yfcc_task):
  """Another image size into the same output names that one setting (not two whole towers); a
  checkpoint path that does not exist is named itself, not a sidecar file beside it."""
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  out = str(tmp_path / 'emb')
  precompute.precompute(yfcc_task, out, VIT, image_size=16)
  with pytest.raises(UserError) as e:
    precompute.precompute(yfcc_task, out, VIT, image_size=24)
  assert str(e.value).startswith(  # gin adds a line naming the configurable
    f'{out} holds embeddings made with other settings (image_size 16 then, 24 now): use another '
    'output_dir (PRECOMPUTE_DIR)\n'
  )
  nope = str(tmp_path / 'nope.npz')
  with pytest.raises(UserError, match=f'^precompute.checkpoint_path {nope}: no such file\n'):
    precompute.precompute(
      yfcc_task, str(tmp_path / 'e2'), {'variant': 'lite0'}, nope, kind='efficientnet_lite'
    )


def test_precompute_names_a_task_it_cannot_embed(tmp_path, yfcc_task):
  import tasks.synthetic  # noqa: F401  pylint: disable=g-import-not-at-top  (registers)
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  out = str(tmp_path / 'emb')
  with pytest.raises(UserError, match="'no_such_task' is not a registered seqio task"):
    precompute.precompute('no_such_task', out, VIT, image_size=16)
  with pytest.raises(
    UserError,
    match=r"'yfccfull' is not a registered seqio task \(did you mean 'yfcc100m_full'",
  ):
    precompute.precompute('yfccfull', out, VIT, image_size=16)  # ratio 0.76
  with pytest.raises(UserError, match="'mlit_synthetic_embeddings' has no image feature"):
    precompute.precompute('mlit_synthetic_embeddings', out, VIT, image_size=16)


def test_the_precompute_gin_file_through_the_command(tmp_path, yfcc_task, capsys):
  """gin/precompute.gin as the command's help shows it, the tower rebound to a tiny ViT; and a
  task whose images are decoded pixels is one line."""
  import tasks.synthetic  # noqa: F401  pylint: disable=g-import-not-at-top  (registers)
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  out = tmp_path / 'emb'
  argv = [
    '--gin_file=precompute.gin',
    f'--gin.PRECOMPUTE_TASK="{yfcc_task}"',
    f'--gin.PRECOMPUTE_DIR="{out}"',
    "--gin.IMAGE_TOWER_KIND='vit'",
    f'--gin.IMAGE_TOWER={VIT}',
    '--gin.IMAGE_CHECKPOINT_PATH=None',
    '--gin.IMAGE_SIZE=16',
  ]
  assert precompute.main(argv) == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary['complete'] and summary['images'] == 6 and summary['task'] == yfcc_task
  manifest = json.loads((out / 'manifest.json').read_text())
  assert manifest['tower']['vit']['width'] == 16 and manifest['tower']['image_size'] == 16
  gin.clear_config()
  with pytest.raises(UserError, match="'mlit_synthetic_images' gives 'image' as float32"):
    precompute.precompute('mlit_synthetic_images', str(tmp_path / 'px'), VIT, image_size=16)


def test_a_task_that_keeps_no_row_is_an_error_not_an_empty_folder(tmp_path, yfcc_task, capsys):
  """Every image missing: the command exits 2 naming the skip reasons (as mlit ingest does), and
  a run given the folder anyway is one line naming it, not a KeyError."""
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  for f in (tmp_path / 'img').iterdir():
    f.unlink()
  out = tmp_path / 'emb'
  argv = ['--gin_file=precompute.gin', f'--gin.PRECOMPUTE_TASK="{yfcc_task}"']
  argv += [f'--gin.PRECOMPUTE_DIR="{out}"', "--gin.IMAGE_TOWER_KIND='vit'"]
  argv += [f'--gin.IMAGE_TOWER={VIT}', '--gin.IMAGE_CHECKPOINT_PATH=None', '--gin.IMAGE_SIZE=16']
  assert precompute.main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1] == (
    'mlit precompute: error: task yfcc100m_full kept no example in 2 shards (skipped: '
    'missing_image 6): nothing to train on'
  )
  gin.clear_config()
  with pytest.raises(UserError, match=f'{out} holds no embedding'):
    precomputed.embedding_source([str(out)])
