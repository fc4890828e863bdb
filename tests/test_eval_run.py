"""End-to-end: a tiny random TwoTower saved as an mlit checkpoint, evaluated by
`eval_multilingual.run.main` on WIT, XM3600 and zero-shot (TFDS) data written here."""

import csv
import json
import logging
import os
import re

import numpy as np
import pytest
import seqio
from PIL import Image
from spm_fixture import train_tiny_spm
from test_eval_datasets import U, _wit_row, write_wit

from eval_multilingual import encoders, retrieval
from eval_multilingual.datasets import image_store, wit
from tasks.user_error import UserError

IMAGE_SIZE = 16


def test_tokenizer_sticky_eos(tmp_path):
  spm = train_tiny_spm(str(tmp_path))
  tok = encoders.Tokenizer(spm, length=6)
  ids = tok(['dog', 'sunset over the sea beach boat city street night dog cat', ''])
  assert ids.shape == (3, 6) and ids.dtype == np.int32
  n = int((ids[0] != 0).sum())
  assert ids[0, n - 1] == 1 and (ids[0, n:] == 0).all()  # EOS then padding
  assert ids[1, -1] == 1 and (ids[1] != 0).all()  # truncated: last is EOS
  assert list(ids[2]) == [1, 0, 0, 0, 0, 0]
  assert seqio.SentencePieceVocabulary(spm).decode(list(ids[0, : n - 1])) == 'dog'


def _write_data(root):
  rng = np.random.default_rng(0)
  imgdir = root / 'images'
  imgdir.mkdir()
  colours = {}
  for name in ('Hund', 'Katze', 'Baum', 'Meer'):
    colours[name] = rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.uint8)
    Image.fromarray(colours[name]).save(imgdir / f'{image_store.url_sha256(U + name + ".jpg")}.png')
    Image.fromarray(colours[name]).save(imgdir / f'xm_{name}.jpg')
  write_wit(
    root / 'wit_v1.test.all-00000-of-00001.tsv',
    [
      _wit_row('de', U + 'Hund.jpg', 'Ein Hund\nam Meer'),
      _wit_row('de', U + 'Katze.jpg', 'Katze'),
      _wit_row('de', U + 'Baum.jpg', 'Baum'),
      _wit_row('de', U + 'Fehlt.jpg', 'nicht vorhanden'),  # image not in the store
      _wit_row('fr', U + 'Meer.jpg', 'la mer'),
      _wit_row('fr', U + 'Hund.jpg', 'chien'),
    ],
  )
  with open(root / 'captions.jsonl', 'w', encoding='utf-8') as f:
    for name, de, en in (
      ('Hund', ['Hund', 'ein Hund'], ['dog']),
      ('Katze', ['Katze'], ['cat']),
      ('Baum', ['Baum'], ['tree', 'a tree']),
    ):
      f.write(
        json.dumps({'image/key': f'xm_{name}', 'de': {'caption': de}, 'en': {'caption': en}}) + '\n'
      )
  prompts = {
    'name': 'toy3',
    'num_classes': 3,
    'languages': {
      'en': {
        'classes': ['dog', ['cat', 'kitten'], 'tree'],
        'templates': ['a photo of a {}.', '{}'],
      },
      'de': {
        'classes': ['Hund', 'Baum'],
        'templates': ['ein Foto von {}'],
        'class_indices': [0, 2],
      },
    },
  }
  (root / 'prompts.json').write_text(json.dumps(prompts), encoding='utf-8')
  import tensorflow as tf
  import tensorflow_datasets as tfds

  labels = np.array([0, 1, 2, 1, 0, 2])
  imgs = rng.integers(0, 255, (6, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.uint8)
  tfds.dataset_builders.TfDataBuilder(
    name='mlit_eval_tiny',
    version='1.0.0',
    split_datasets={'test': tf.data.Dataset.from_tensor_slices({'image': imgs, 'label': labels})},
    features=tfds.features.FeaturesDict(
      {
        'image': tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
        'label': tfds.features.ClassLabel(num_classes=3),
      }
    ),
    data_dir=str(root / 'tfds'),
  ).download_and_prepare()


def _tiny_model_and_params(seed):
  from mlit.models import text_tower, two_tower

  model = two_tower.TwoTower(
    text=text_tower.T5Config(
      vocab_size=512, emb_dim=16, num_heads=2, num_encoder_layers=1, head_dim=8, mlp_dim=32
    ),
    out_dim=8,
    image=dict(width=16, depth=1, mlp_dim=32, num_heads=2, patch_size=(8, 8)),
    image_head=True,
  )
  return model, encoders.init_params(model, IMAGE_SIZE, seed=seed)


def _save_checkpoint(model_dir):
  import optax

  from mlit.checkpoints import run_state as checkpointing

  model, params = _tiny_model_and_params(seed=3)
  ckpt = checkpointing.Checkpoints(os.path.join(model_dir, 'checkpoints'), async_save=False)
  ckpt.save(
    7,
    {'step': np.int32(7), 'params': params, 'opt_state': optax.adam(1e-3).init(params)},
    force=True,
  )
  ckpt.wait()
  return model, params


GIN = """
from __gin__ import dynamic_registration
from eval_multilingual import run
from eval_multilingual import encoders
from eval_multilingual import evaluations
from eval_multilingual.datasets import image_classification
from mlit.models import text_tower
from mlit.models import two_tower

RUN_DIR = %gin.REQUIRED
DATA = '{data}'

run.evaluate:
  run_dir = %RUN_DIR
  encoder = @encoders.from_mlit_checkpoint()
  evaluations = [@wit/evaluations.RetrievalEvaluation(),
                 @xm3600/evaluations.RetrievalEvaluation(),
                 @evaluations.ZeroShotEvaluation()]

encoders.from_mlit_checkpoint:
  model = @two_tower.TwoTower()
  checkpoint_dir = '{model_dir}'
  vocabulary = '{spm}'
  text_length = 8
  batch_size = 4
two_tower.TwoTower:
  text = @text_tower.T5Config()
  out_dim = 8
  image = {{'width': 16, 'depth': 1, 'mlp_dim': 32, 'num_heads': 2, 'patch_size': (8, 8)}}
  image_head = True
text_tower.T5Config:
  vocab_size = 512
  emb_dim = 16
  num_heads = 2
  num_encoder_layers = 1
  head_dim = 8
  mlp_dim = 32

wit/evaluations.RetrievalEvaluation:
  dataset = 'wit'
  path = '{data}/wit_v1.test.all-*.tsv'
  image_dir = '{data}/images'
  image_size = {size}
  block = 2
xm3600/evaluations.RetrievalEvaluation:
  dataset = 'xm3600'
  path = '{data}/captions.jsonl'
  image_dir = '{data}/images'
  languages = ['de', 'en']
  image_size = {size}
evaluations.ZeroShotEvaluation:
  images = @image_classification.TfdsImages()
  prompts = '{data}/prompts.json'
  dataset = 'tiny3'
  cache_dir = '{data}/cache'
  batch_size = 4
image_classification.TfdsImages:
  name = 'mlit_eval_tiny'
  split = 'test'
  data_dir = '{data}/tfds'
  image_size = {size}
"""


@pytest.mark.slow
def _progress_lines(caplog):
  # '[done/total, ...]' lines (orbax logs other bracketed lines).
  lines = [r.getMessage() for r in caplog.records if re.match(r'\[\d+/\d+', r.getMessage())]
  caplog.clear()
  return lines


def test_end_to_end_eval_run(tmp_path, caplog):
  from eval_multilingual import run

  caplog.set_level(logging.INFO)

  data, model_dir, run_dir = tmp_path / 'data', tmp_path / 'model', tmp_path / 'eval'
  data.mkdir()
  _write_data(data)
  spm = train_tiny_spm(str(tmp_path / 'spm'))
  model, params = _save_checkpoint(str(model_dir))
  gin_path = tmp_path / 'eval.gin'
  gin_path.write_text(GIN.format(data=data, model_dir=model_dir, spm=spm, size=IMAGE_SIZE))
  argv = [f'--gin_file={gin_path}', f"--gin.RUN_DIR='{run_dir}'"]
  assert run.main(argv) == 0
  lines = _progress_lines(caplog)
  assert [l.split(',')[0] for l in lines] == [f'[{i}/6' for i in range(1, 7)]
  assert all(', ETA ' in l for l in lines) and lines[-1].startswith('[6/6, ETA 0:00] ')
  assert lines[0].startswith('[1/6, ETA ?] ')  # the first one's time carries the compilation

  res = json.loads((run_dir / 'results.json').read_text())
  assert set(res) == {'model', 'languages', 'macro', 'meta'}
  assert sorted(res['languages']) == ['de', 'en', 'fr']
  assert set(res['languages']['de']) == {
    'wit/retrieval',
    'xm3600/retrieval',
    'tiny3/zeroshot_classification',
  }
  assert set(res['languages']['fr']) == {'wit/retrieval'}
  wit_de = res['languages']['de']['wit/retrieval']
  assert set(wit_de) == {f'{d}_retrieval_recall@{k}' for d in ('image', 'text') for k in (1, 5, 10)}
  assert all(
    0.0 <= v <= 1.0 for t in res['languages'].values() for m in t.values() for v in m.values()
  )
  meta = res['meta']['de']['wit/retrieval']
  assert meta['image_found_share'] == pytest.approx(0.75) and meta['n_examples'] == 3
  assert res['meta']['de']['tiny3/zeroshot_classification']['n_examples'] == 4  # labels 0, 2
  assert res['meta']['en']['xm3600/retrieval']['n_texts'] == 4
  # Truncation and collisions at the model's length, and the per-class table beside results.json.
  text = res['meta']['de']['tiny3/zeroshot_classification']['text']
  assert text['text_length'] == 8 and 0.0 <= text['texts_truncated_share'] <= 1.0
  assert 'texts_truncated_share' in res['meta']['de']['wit/retrieval']['text']
  per_class = json.loads((run_dir / 'per_class.json').read_text())
  classes = per_class['tasks']['tiny3/zeroshot_classification']['classes']
  assert {lang for by_lang in classes.values() for lang in by_lang} == {'de', 'en'}
  assert res['model']['name'].endswith('@7')
  # recall@10 with 3 images is 1 by construction; macro = mean over languages.
  assert wit_de['image_retrieval_recall@10'] == 1.0
  assert res['macro']['wit/retrieval']['image_retrieval_recall@1'] == pytest.approx(
    np.mean(
      [res['languages'][l]['wit/retrieval']['image_retrieval_recall@1'] for l in ('de', 'fr')]
    )
  )
  assert res['macro']['xm3600/retrieval']['n_languages'] == 2

  # The pipeline's numbers equal a direct computation with the same params.
  enc = encoders.TwoTowerEncoder(model, params, encoders.Tokenizer(spm, 8), batch_size=4)
  assert enc.fingerprint == res['model']['fingerprint']
  pairs, _ = wit.read_wit(str(data / 'wit_v1.test.all-*.tsv'), languages=['de'])
  store = image_store.LocalImageStore(str(data / 'images'), IMAGE_SIZE)
  img = enc.embed_images(store.load(pairs['de'].image_keys[:3]), 'image')
  txt = enc.embed_texts(pairs['de'].texts[:3])
  # Remembered texts give the same rows as a fresh encoder, in any order, with repeats.
  t = pairs['de'].texts[:3]
  again = enc.embed_texts([t[2], t[0], t[2]])
  np.testing.assert_array_equal(again, txt[[2, 0, 2]])
  fresh = encoders.TwoTowerEncoder(model, params, encoders.Tokenizer(spm, 8), batch_size=4)
  enc.text_memo_size = 4  # over the bound: the memo starts again, results unchanged
  np.testing.assert_array_equal(
    enc.embed_texts(['ein Hund', t[1], 'eine Katze']),
    fresh.embed_texts(['ein Hund', t[1], 'eine Katze']),
  )
  assert len(enc._text_memo) == 3 and enc.embed_texts([]).shape == (0, txt.shape[1])
  # More distinct texts in one call than the memo holds: embedded a memo's worth at a time and
  # not remembered (the memo had kept them all, beside every text's token ids); same rows.
  many = ['ein Hund', t[1], 'eine Katze', t[0], 'ein Vogel', t[2], 'ein Haus']
  np.testing.assert_allclose(
    enc.embed_texts([*many, many[3]]), fresh.embed_texts([*many, many[3]]), atol=1e-6
  )
  assert not enc._text_memo
  direct = retrieval.retrieval_metrics(txt, img, [0, 1, 2])
  for k, v in direct.items():
    assert wit_de[k] == pytest.approx(v, abs=1e-9)

  # Per-task files, CSV, and a second run that reuses them.
  per = json.loads((run_dir / 'per_task' / 'xm3600' / 'retrieval' / 'de.json').read_text())
  assert per['metrics'] == res['languages']['de']['xm3600/retrieval']
  with open(run_dir / 'results.csv', newline='', encoding='utf-8') as f:
    rows = list(csv.DictReader(f))
  assert {r['language'] for r in rows} == {'de', 'en', 'fr', 'macro'}
  assert len([r for r in rows if r['language'] != 'macro']) == 2 * 6 + 2 * 6 + 2 * 3
  assert (run_dir / 'eval_config.gin').exists()
  os.remove(run_dir / 'per_task' / 'tiny3' / 'zeroshot_classification' / 'en.json')
  assert run.main(argv) == 0
  # Five evaluations resumed from their files count as done: one line, the last; and it says so.
  messages = [r.getMessage() for r in caplog.records]
  assert [l.split(']')[0] for l in _progress_lines(caplog)] == ['[6/6, ETA 0:00']
  [reused] = [m for m in messages if 'reused from' in m]
  assert reused.startswith(f'5 of 6 evaluations reused from {run_dir / "per_task"} (')
  assert res['model']['fingerprint'] in reused and 'resume=False' in reused
  res2 = json.loads((run_dir / 'results.json').read_text())
  assert res2['languages'] == res['languages']
  assert res2['meta']['en']['tiny3/zeroshot_classification']['classifier_cached'] is True
  # The hint's flag, as printed: every evaluation runs again.
  assert run.main(argv + ['--gin.run.evaluate.resume=False']) == 0
  messages = [r.getMessage() for r in caplog.records]
  assert len(_progress_lines(caplog)) == 6 and not [m for m in messages if 'reused from' in m]

  # A smaller gin into the same RUN_DIR (one evaluation, one language): the other results of
  # this model stay in results.json and per_class.json, and the log says so.
  caplog.clear()
  assert run.main(argv + ["--gin.run.evaluate.languages=['de']"]) == 0
  res3 = json.loads((run_dir / 'results.json').read_text())
  assert res3['languages'] == res['languages']
  kept = [r.getMessage() for r in caplog.records if 'earlier evaluations' in r.getMessage()]
  assert kept and 'tiny3/zeroshot_classification' in kept[0]
  per_class = json.loads((run_dir / 'per_class.json').read_text())
  classes = per_class['tasks']['tiny3/zeroshot_classification']['classes']
  assert {lang for by_lang in classes.values() for lang in by_lang} == {'de', 'en'}

  # Codes no evaluation has: one error naming them, before anything runs or is written.
  before = (run_dir / 'results.json').read_text()
  for flag, named in (("['sin','de']", "'sin'"), ("['zh-Hans']", "'zh-Hans'")):
    with pytest.raises(UserError, match=f'run.evaluate.languages: no evaluation has {named};'):
      run.main(argv + [f'--gin.run.evaluate.languages={flag}'])
  assert (run_dir / 'results.json').read_text() == before
  # A string of codes is those codes (it was taken letter by letter: 'e', 'n'); none is a line.
  caplog.clear()
  assert run.main(argv + ["--gin.run.evaluate.languages='de, en'"]) == 0
  assert '5 of 5 evaluations reused' in caplog.text  # de and en of the 6 (fr only on WIT)
  with pytest.raises(UserError, match='run.evaluate.languages is empty: nothing to evaluate'):
    run.main(argv + ['--gin.run.evaluate.languages=[]'])

  # A per_task file damaged, or edited by hand, is evaluated again with a warning: it was a
  # JSONDecodeError traceback, and an edited score went into results.json unchecked.
  de = run_dir / 'per_task' / 'tiny3' / 'zeroshot_classification' / 'de.json'
  fr = run_dir / 'per_task' / 'wit' / 'retrieval' / 'fr.json'
  de.write_text('{"broken')
  edited = json.loads(fr.read_text())
  edited['metrics']['image_retrieval_recall@1'] = 0.99
  fr.write_text(json.dumps(edited))
  caplog.clear()
  assert run.main(argv) == 0
  assert f'{de}: unreadable (JSONDecodeError); evaluating it again' in caplog.text
  assert f'{fr}: changed since mlit eval wrote it (its checksum differs); evaluating' in caplog.text
  assert json.loads((run_dir / 'results.json').read_text())['languages'] == res['languages']


def test_t5x_text_tower_plus_npz_image_tower(tmp_path):
  """Ablation encoder: the files' weights are used, the rest stays at the seeded init."""
  import flax
  from t5x_checkpoint_writer import write_legacy_checkpoint

  from mlit.checkpoints import big_vision_npz as vit_checkpoint

  model, _ = _tiny_model_and_params(seed=0)
  _, donor = _tiny_model_and_params(seed=5)  # weights the files will carry
  flat_txt = flax.traverse_util.flatten_dict(donor['txt'], sep='/')
  t5x = {k: np.asarray(v) for k, v in flat_txt.items() if not k.startswith('head/')}
  write_legacy_checkpoint(str(tmp_path / 'checkpoint_1'), t5x)
  vit_checkpoint.save_big_vision_npz(str(tmp_path / 'vit.npz'), donor['img'])
  spm = train_tiny_spm(str(tmp_path / 'spm'))
  enc = encoders.from_t5x_and_npz(
    model,
    str(tmp_path / 'checkpoint_1'),
    str(tmp_path / 'vit.npz'),
    spm,
    text_length=8,
    image_size=IMAGE_SIZE,
    batch_size=4,
  )
  init = encoders.init_params(model, IMAGE_SIZE, seed=0)
  got = flax.traverse_util.flatten_dict(enc.params, sep='/')
  want = {**flax.traverse_util.flatten_dict({'img': donor['img'], 'txt': donor['txt']}, sep='/')}
  for k, v in got.items():
    if k.startswith('txt/head/') or not k.startswith(('txt/', 'img/')):
      ref = flax.traverse_util.flatten_dict(init, sep='/')[k]  # heads, t: from init
    else:
      ref = want[k]
    np.testing.assert_array_equal(np.asarray(v), np.asarray(ref), err_msg=k)
  assert 'txt: loaded' in enc.load_report and 'img:' in enc.load_report
  assert enc.embed_texts(['dog', 'cat']).shape == (2, 8)


def test_restore_params_from_model_dir_or_checkpoints_dir(tmp_path):
  params = {'txt': {'w': np.arange(6, dtype=np.float32).reshape(2, 3)}, 't': np.float32(2.3)}
  state = {'step': np.int32(4), 'params': params, 'opt_state': {'mu': np.zeros(3, np.float32)}}
  directory = str(tmp_path / 'checkpoints')
  from mlit.checkpoints import run_state as checkpointing

  ckpt = checkpointing.Checkpoints(directory, async_save=False)
  ckpt.save(4, state, force=True)
  ckpt.wait()
  got, step = encoders.restore_params(str(tmp_path))  # MODEL_DIR works too
  assert step == 4
  np.testing.assert_array_equal(got['txt']['w'], params['txt']['w'])
  assert float(got['t']) == pytest.approx(2.3)
  assert encoders.restore_params(directory)[1] == 4
  with pytest.raises(FileNotFoundError, match='no checkpoint for step 9'):
    encoders.restore_params(directory, step=9)


def test_unknown_language_codes_are_named_with_a_suggestion():
  from eval_multilingual import run

  with pytest.raises(UserError) as e:
    run.check_languages(['sin', 'zh-Hans', 'si', 'xx'], {'si', 'zh', 'en'})
  assert str(e.value) == (
    "run.evaluate.languages: no evaluation has 'sin' (did you mean 'si'?), 'zh-Hans' (did you "
    "mean 'zh'?), 'xx'; available: en, si, zh"
  )
  run.check_languages(['si'], {'si', 'zh'})  # all known: no error
  with pytest.raises(UserError, match="'nb' \\(did you mean 'no'\\?\\), 'iw' \\(did you mean 'he'"):
    run.check_languages(['nb', 'iw'], {'no', 'he'})


def _bind_model_dir(model_dir):
  import gin

  gin.clear_config()
  gin.parse_config(
    'from __gin__ import dynamic_registration\n'
    'from eval_multilingual import encoders\n'
    f"encoders.from_mlit_checkpoint.checkpoint_dir = '{model_dir}'\n"
  )


def test_tuning_counts_belong_to_the_evaluated_model(tmp_path, caplog):
  """A RUN_DIR reused for another model: its language_stats.json is replaced, or removed when
  the new model's run has none; results.json records whose counts they are."""
  from eval_multilingual import run

  caplog.set_level(logging.INFO)
  run_dir, a, b, c = (tmp_path / d for d in ('eval', 'a', 'b', 'c'))
  for d, stats in ((a, {'si': 7043, 'en': 5}), (b, {'en': 9})):
    d.mkdir()
    counts = {l: {'n_train_examples': n, 'source': 'trained batches'} for l, n in stats.items()}
    (d / 'language_stats.json').write_text(json.dumps(counts))
  run_dir.mkdir()
  stats = run_dir / 'language_stats.json'
  _bind_model_dir(a)
  rec_a = run.copy_tuning_counts(str(run_dir), {'fingerprint': 'A'})
  assert json.loads(stats.read_text())['si']['n_train_examples'] == 7043
  assert rec_a['fingerprint'] == 'A' and rec_a['source'] == 'trained batches'
  assert rec_a['file'] == os.path.join('..', 'a', 'language_stats.json')
  _bind_model_dir(b)  # model B's own file replaces A's, a link to it is not written through
  stats.unlink()
  stats.symlink_to(a / 'language_stats.json')
  rec_b = run.copy_tuning_counts(str(run_dir), {'fingerprint': 'B'}, rec_a)
  assert 'si' not in json.loads(stats.read_text()) and rec_b['fingerprint'] == 'B'
  assert 'si' in json.loads((a / 'language_stats.json').read_text()) and not stats.is_symlink()
  assert any('replacing' in r.getMessage() for r in caplog.records)
  _bind_model_dir(c)  # no file in C's run: B's copy is not C's data
  assert run.copy_tuning_counts(str(run_dir), {'fingerprint': 'C'}, rec_b) is None
  assert not stats.exists()
  # A file of unrecorded origin (the demo's manifest counts) stays, recorded as such.
  stats.write_text(json.dumps({'si': {'n_train_examples': 3}}))
  rec = run.copy_tuning_counts(str(run_dir), {'fingerprint': 'C'}, None)
  assert rec['fingerprint'] is None and rec['source'] == 'unknown' and stats.exists()
  # RUN_DIR is the parent of the model dir (the demo's layout) and the model dir has no file:
  # RUN_DIR's own file is not taken for the model's, unless recorded for it.
  _bind_model_dir(run_dir / 'train')
  assert run.copy_tuning_counts(str(run_dir), {'fingerprint': 'D'}, None)['fingerprint'] is None
  assert run.copy_tuning_counts(str(run_dir), {'fingerprint': 'A'}, rec_a) != rec_a  # changed
  _bind_model_dir(a)
  again = run.copy_tuning_counts(str(run_dir), {'fingerprint': 'A'}, None)
  _bind_model_dir(run_dir / 'train')
  assert run.copy_tuning_counts(str(run_dir), {'fingerprint': 'A'}, again) == again
