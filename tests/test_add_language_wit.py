"""Adding a language on WIT rows, end to end on a run mlit trained: `mlit add-language run
--wit-train` on a base run that tuned a tiny text tower on English WIT rows against the locked
EfficientNet-Lite0 (live, on pixels), evaluated with eval/captions.gin on held-out captions.

Swahili (sw) is added from WIT rows of en and sw: the continued run tunes on both (the old
language keeps its share, sw counted --repeat times), the comparison reads the evaluation's main
score (text->image recall@1, as `mlit report` leads with it), and the grown checkpoint loads as a
model of its own.
"""

import contextlib
import io
import json
import random
import sys

import numpy as np
import pytest
import task_files  # tests/task_files.py
from PIL import Image, ImageDraw

import gin
from mlit.checkpoints import efficientnet_pth
from mlit.commands import cli
from mlit.training import train as train_lib
from tasks import image_store

COLOURS = {'red': ((220, 30, 30), 'nyekundu'), 'blue': ((30, 60, 220), 'bluu')}
COLOURS |= {'green': ((30, 170, 50), 'kijani'), 'yellow': ((240, 220, 30), 'njano')}
SHAPES = {'circle': 'duara', 'square': 'mraba'}
SIZE = 32
BASE_GIN = """
include 'local_tiny.gin'
include 'image_towers/efficientnet_lite0.gin'
import tasks.registration
import tasks.wit
import tasks.image_preprocessors
TASK_FEATURE_LENGTHS = {{'text': 16}}
tasks.registration.register_tasks.registrations = [@tasks.wit.register_wit]
tasks.wit.register_wit.tsv_pattern = '{d}/wit_train.tsv'
tasks.wit.register_wit.image_dir = '{d}/images'
tasks.wit.register_wit.languages = ['en']
MIXTURE_OR_TASK_NAME = 'wit_reference.en'
seqio.SentencePieceVocabulary.sentencepiece_model_file = '{d}/spm.model'
IMAGE_CHECKPOINT_PATH = '{d}/lite0.npz'
tasks.image_preprocessors.decode_image.size = {size}
TRAIN_STEPS = 40
WARMUP_STEPS = 4
BATCH_SIZE = 16
train.train.checkpoint_period = 40
train.train.log_period = 20
"""


def _draw(rgb, shape, rnd):
  im = Image.new('RGB', (48, 48), (235, 235, 235))
  r = rnd.randint(12, 18)
  cx, cy = rnd.randint(r + 2, 46 - r), rnd.randint(r + 2, 46 - r)
  draw = ImageDraw.Draw(im)
  (draw.ellipse if shape == 'circle' else draw.rectangle)((cx - r, cy - r, cx + r, cy + r), rgb)
  return im


def _write_data(d):
  """WIT rows of en and sw (6 images per class, named sha1(url).jpg as the WIT task reads
  them), and 2 held-out images per class with captions in both (eval/captions.gin's format)."""
  rnd = random.Random(0)
  (d / 'images').mkdir()
  (d / 'eval').mkdir()
  rows, captions, n = [], [], 0
  for rep in range(8):
    for colour, (rgb, sw_colour) in COLOURS.items():
      for shape, sw_shape in SHAPES.items():
        n += 1
        im = _draw(rgb, shape, rnd)
        texts = {'en': f'a {colour} {shape}', 'sw': f'{sw_shape} {sw_colour}'}
        if rep >= 6:
          im.save(d / 'eval' / f'img{n}.jpg')
          captions.append(
            {'image/key': f'img{n}', **{k: {'caption': [t]} for k, t in texts.items()}}
          )
          continue
        for lang, text in texts.items():
          url = f'https://upload.wikimedia.org/{lang}/{n}.jpg'
          im.save(d / 'images' / f'{image_store.url_id(url)}.jpg')
          rows.append(task_files.wit_row(lang, url, reference=text))
  task_files.write_wit(str(d / 'wit_train.tsv'), rows)
  (d / 'en.txt').write_text(
    ''.join(r['caption_reference_description'] + '\n' for r in rows if r['language'] == 'en'),
    encoding='utf-8',
  )
  with open(d / 'eval' / 'captions.jsonl', 'w', encoding='utf-8') as f:
    f.writelines(json.dumps(c) + '\n' for c in captions)


def _mlit(argv):
  """`mlit ARGV` in this process, as the dispatcher runs it: (exit code, stdout, stderr)."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      rc = cli.main(argv)
    except SystemExit as e:
      rc = e.code
  sys.stderr.write(err.getvalue())
  return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope='module')
def base(tmp_path_factory):
  d = tmp_path_factory.mktemp('add_sw')
  _write_data(d)
  efficientnet_pth.convert(str(d / 'lite0.npz'))
  rc, _, err = _mlit(['vocab', '--out', str(d / 'spm'), '--vocab-size', '320', str(d / 'en.txt')])
  assert rc == 0, err[-2000:]
  (d / 'base.gin').write_text(BASE_GIN.format(d=d, size=SIZE), encoding='utf-8')
  gin.clear_config()
  assert train_lib.main([f'--gin_file={d / "base.gin"}', f'--gin.MODEL_DIR="{d / "base"}"']) == 0
  gin.clear_config()
  return d


def _run_args(d, out, *extra):
  evaluation = [
    f'CAPTIONS="{d}/eval/captions.jsonl"',
    f'CAPTION_IMAGES="{d}/eval"',
    'CAPTIONS_NAME="shapes"',
    f'EVAL_IMAGE_SIZE={SIZE}',
  ]
  return [
    'add-language',
    'run',
    '--vocab',
    str(d / 'spm.model'),
    '--checkpoint',
    str(d / 'base'),
    '--lang',
    'sw',
    '--texts',
    str(d / 'wit_train.tsv'),
    '--old-texts',
    str(d / 'wit_train.tsv'),
    '--num-pieces',
    '40',
    '--steps',
    '30',
    '--warmup',
    '3',
    '--repeat',
    '3',
    '--wit-images',
    str(d / 'images'),
    '--eval-gin',
    'eval/captions.gin',
    *[a for b in evaluation for a in ('--eval-binding', b)],
    '--out',
    str(out),
    *extra,
  ]


@pytest.mark.slow
def test_a_language_added_from_wit_rows_keeps_the_old_one_in_the_tuning(base, tmp_path):
  d = base
  out = tmp_path / 'add'
  rc, stdout, err = _mlit(_run_args(d, out, '--wit-train', str(d / 'wit_train.tsv')))
  assert rc == 0, err[-3000:]
  result = json.loads((out / 'comparison.json').read_text())
  assert result['metric'].endswith('image_retrieval_recall@1')
  new = result['new_language']
  assert new['after'] > new['before'], new
  # The grown checkpoint scores the old language exactly as the base run: same ids, same rows.
  assert result['old_languages'] == 1 and result['old_unchanged_when_grown'] == 1
  assert f'== sw shapes T→I R@1: before {100 * new["before"]:.2f}%' in stdout
  assert '== 1 old language: median' in stdout
  # The tuning data: both languages of the rows, sw's 48 rows counted 3 times against en's 48.
  text = (out / 'sw.gin').read_text()
  assert 'wit.register_wit.language_rates = {"en": 48.0, "sw": 144.0}' in text
  assert "registration.registered_task.name = 'wit_reference.languages'" in text
  stats = json.loads((out / 'train' / 'language_stats.json').read_text())
  assert stats['en']['n_this_run'] > 0 and stats['sw']['n_this_run'] > stats['en']['n_this_run']
  # The grown, not yet tuned model is a model of its own (mlit_model.json in the extension):
  # it embeds English as the base run does and reads Swahili with its new pieces.
  import mlit  # pylint: disable=g-import-not-at-top

  grown, base_model = mlit.load(str(out / 'extension')), mlit.load(str(d / 'base'))
  np.testing.assert_array_equal(
    grown.encode_text(['a red circle', 'a blue square']),
    base_model.encode_text(['a red circle', 'a blue square']),
  )
  scores = grown.classify([str(d / 'eval' / 'img49.jpg')], ['duara nyekundu', 'mraba bluu'])
  assert scores.shape == (1, 2)


def test_wit_rows_without_the_language_are_refused_before_any_step(base, tmp_path):
  d = base
  only_en = tmp_path / 'en_only.tsv'
  lines = (d / 'wit_train.tsv').read_text(encoding='utf-8').splitlines(keepends=True)
  only_en.write_text(''.join(x for x in lines if not x.startswith('sw\t')), encoding='utf-8')
  out = tmp_path / 'add'
  rc, _, err = _mlit(_run_args(d, out, '--wit-train', str(only_en)))
  assert rc == 2
  assert (
    err.strip()
    .splitlines()[-1]
    .endswith(
      f'--wit-train {only_en}: no row of sw with a reference description (the languages there: '
      'en 48)'
    )
  )
  assert not out.exists()  # refused before extend-vocab
  rc, _, err = _mlit(_run_args(d, out, '--wit-train', str(d / 'wit_trian.tsv')))
  assert (
    rc == 2
    and 'wit_trian.tsv' in err
    and 'wit_trian.tsv: matches no file' in err
    and not out.exists()
  )


PRECOMPUTED_GIN = """
include 'local_tiny.gin'
import tasks.registration
import tasks.precomputed
TASK_FEATURE_LENGTHS = {{'text': 16}}
tasks.registration.register_tasks.registrations = [@tasks.precomputed.register_precomputed]
tasks.precomputed.register_precomputed.embedding_dirs = ['{d}/emb']
tasks.precomputed.register_precomputed.name = 'wit_en_embeddings'
tasks.precomputed.register_precomputed.mode = 'text'
MIXTURE_OR_TASK_NAME = 'wit_en_embeddings'
seqio.SentencePieceVocabulary.sentencepiece_model_file = '{d}/spm.model'
TRAIN_STEPS = 40
WARMUP_STEPS = 4
BATCH_SIZE = 16
train.train.checkpoint_period = 40
"""

WIT_TASK_GIN = """
import tasks.registration
import tasks.wit
tasks.registration.register_tasks.registrations = [@tasks.wit.register_wit]
tasks.wit.register_wit.tsv_pattern = '{d}/wit_train.tsv'
tasks.wit.register_wit.image_dir = '{d}/images'
tasks.wit.register_wit.languages = ['en']
"""


@pytest.mark.slow
def test_a_base_run_on_precomputed_embeddings_tunes_on_wit_rows_with_their_tower(base, tmp_path):
  """A base run that tuned on pre-computed embeddings (as the demo's does) was refused for WIT
  tuning: the continued run needs images, so it runs the tower that made the embeddings (the
  base run's mlit_model.json) live, its image head and text tower continued from the run."""
  d = base
  (tmp_path / 'wit_task.gin').write_text(WIT_TASK_GIN.format(d=d), encoding='utf-8')
  argv = ['precompute', '--gin_file=precompute.gin', f'--gin_file={tmp_path / "wit_task.gin"}']
  argv += ['--gin.PRECOMPUTE_TASK="wit_reference.en"', f'--gin.PRECOMPUTE_DIR="{tmp_path}/emb"']
  argv += [f'--gin.IMAGE_CHECKPOINT_PATH="{d}/lite0.npz"', f'--gin.IMAGE_SIZE={SIZE}']
  rc, _, err = _mlit(argv)
  assert rc == 0, err[-2000:]
  gin.clear_config()
  (tmp_path / 'pre.gin').write_text(
    PRECOMPUTED_GIN.format(d=tmp_path).replace(f'{tmp_path}/spm.model', f'{d}/spm.model'),
    encoding='utf-8',
  )
  pre = tmp_path / 'pre'
  assert train_lib.main([f'--gin_file={tmp_path / "pre.gin"}', f'--gin.MODEL_DIR="{pre}"']) == 0
  gin.clear_config()
  out = tmp_path / 'add'
  args = _run_args(d, out, '--wit-train', str(d / 'wit_train.tsv'))
  args[args.index(str(d / 'base'))] = str(pre)
  rc, stdout, err = _mlit(args)
  assert rc == 0, err[-3000:]
  text = (out / 'sw.gin').read_text()
  assert (
    'IMAGE_TOWER_KIND = "efficientnet_lite"' in text
    and "IMAGE_TOWER = {'variant': 'lite0'}" in text
  )
  assert f'IMAGE_CHECKPOINT_PATH = "{d}/lite0.npz"' in text
  assert f'image_preprocessors.decode_image.size = {SIZE}' in text
  init = json.loads((out / 'train' / 'initialization.json').read_text())
  assert init['image']['path'] == f'{d}/lite0.npz' and 'pre-computed' in init['run']['loaded']
  assert 'is not the locked tower' not in err
  new = json.loads((out / 'comparison.json').read_text())['new_language']
  assert new['after'] > new['before'], new
  # The tuned model holds the tower itself (mlit.load runs it on pixels).
  import mlit  # pylint: disable=g-import-not-at-top

  tuned = mlit.load(str(out / 'train'))
  assert tuned.spec['two_tower']['image'] == {'variant': 'lite0'}
  assert tuned.classify(
    [str(d / 'eval' / 'img49.jpg')], ['duara nyekundu', 'mraba bluu']
  ).shape == (
    1,
    2,
  )


def test_a_tower_other_than_the_one_that_made_the_embeddings_is_a_warning(tmp_path, capsys):
  """A run on pre-computed embeddings continued live with another tower's weights or config:
  its image head was tuned to the recorded tower, so the run says so (it still runs)."""
  import types  # pylint: disable=g-import-not-at-top

  from tasks import file_io  # pylint: disable=g-import-not-at-top

  made, other = tmp_path / 'made.npz', tmp_path / 'other.npz'
  made.write_bytes(b'tower that made the embeddings')
  other.write_bytes(b'another tower')
  tower = {'kind': 'efficientnet_lite', 'config': {'variant': 'lite0'}}
  tower['checkpoint'] = {'path': str(made), 'sha256': file_io.file_sha256(str(made))}
  run = tmp_path / 'run'
  run.mkdir()
  (run / 'mlit_model.json').write_text(json.dumps({'format': 1, 'image': tower}))
  model = types.SimpleNamespace(image_kind='efficientnet_lite', image={'variant': 'lite0'})
  train_lib._check_embeddings_tower(str(run), model, str(made))
  assert capsys.readouterr().err == ''
  train_lib._check_embeddings_tower(str(run), model, str(other))
  err = capsys.readouterr().err
  assert err.startswith(f'warning: IMAGE_CHECKPOINT_PATH {other} is not the locked tower whose')
  model.image = {'variant': 'lite1'}
  train_lib._check_embeddings_tower(str(run), model, str(made))
  assert "the live image tower (efficientnet_lite {'variant': 'lite1'}) is not" in (
    capsys.readouterr().err
  )
