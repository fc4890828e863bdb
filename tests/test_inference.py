"""mlit.load, `mlit predict/embed/search/export` on one tiny run trained by mlit's trainer
(tests/inference_run.py): the API equals the evaluation's encoder, predictions, bad input, and
exports that transformers, the T5X reader and the big_vision reader load back."""

import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import warnings

import inference_run
import numpy as np
import pytest
from PIL import Image

import gin
import mlit
from mlit.commands import cli
from mlit.inference import tokenizer as tokenizer_lib
from tasks.user_error import UserError

COLOUR_NAMES = list(inference_run.COLOURS)
# One name per colour in each of six scripts, and texts outside the vocabulary (byte fallback).
TEXTS = [n for names in COLOUR_NAMES for n in names] + ['Ψ ∑ 🍕 zebra', 'नमस्ते दुनिया']
# The tiny run reads 8 tokens, so some of these texts are cut; the warning that counts the cut
# texts is checked where it is the subject (test_encode_text_refuses_..._says_what_it_cuts).
pytestmark = pytest.mark.filterwarnings('ignore:encode_text. .* were cut:UserWarning')


@pytest.fixture(scope='session')
def run_dir(tmp_path_factory):
  return os.path.dirname(inference_run.build(str(tmp_path_factory.mktemp('inference'))))


@pytest.fixture(scope='session')
def model(run_dir):
  return mlit.load(run_dir)


def _images(directory):
  """A clean image per colour (no noise), saved as PNG; returns the paths."""
  paths = []
  for names, rgb in inference_run.COLOURS.items():
    path = os.path.join(directory, f'{names[0]}.png')
    Image.fromarray(inference_run.colour_image(rgb)).save(path)
    paths.append(path)
  return paths


EVAL_GIN = """
from __gin__ import dynamic_registration
from eval_multilingual import encoders
encoders.from_mlit_checkpoint:
  model = %MODEL
  checkpoint_dir = %MODEL_DIR
  vocabulary = %VOCABULARY
  text_length = 8
  image_tower = %EVAL_IMAGE_TOWER
  image_checkpoint_path = %IMAGE_CHECKPOINT_PATH
  image_size = 16
"""


def test_api_equals_eval_encoder_from_another_directory(run_dir, tmp_path, monkeypatch):
  from eval_multilingual import encoders
  from mlit.commands import gin_flags

  # The evaluation, as `mlit demo` runs it: the run's config.gin plus an eval gin file, from the
  # directory the run was trained in (its config names the image tower relatively).
  (tmp_path / 'eval.gin').write_text(EVAL_GIN)
  monkeypatch.chdir(os.path.join(os.path.dirname(run_dir), 'work'))
  gin_flags.parse_gin(
    [os.path.join(run_dir, 'train', 'config.gin'), str(tmp_path / 'eval.gin')], []
  )
  reference = gin.get_configurable(encoders.from_mlit_checkpoint)()
  images = [
    inference_run.colour_image(rgb, np.random.default_rng(i))
    for i, rgb in enumerate(inference_run.COLOURS.values())
  ]
  want_text = reference.embed_texts(TEXTS)
  want_image = reference.embed_images(np.stack(images) * (2.0 / 255.0) - 1.0, 'image')

  monkeypatch.chdir(tmp_path)
  model = mlit.load(run_dir)
  got_text, got_image = model.encode_text(TEXTS), model.encode_image(images)
  assert got_text.shape == (len(TEXTS), 16)
  np.testing.assert_allclose(np.linalg.norm(got_text, axis=1), 1.0, atol=1e-5)
  assert np.abs(got_text - want_text).max() <= 1e-6
  assert np.abs(got_image - want_image).max() <= 1e-6
  assert model.step == inference_run.STEPS and len(model.fingerprint) == 24


def test_eval_from_another_folder_uses_the_runs_own_files(run_dir, tmp_path, monkeypatch):
  """A run's config.gin names its vocabulary and locked tower as given when it trained (often
  relative to that folder): evaluated from another folder, evaluation stopped at the first
  ('cannot read the SentencePiece model'). It now reads the run's own (mlit_model.json, sha256
  checked), with a warning naming each. A bound vocabulary that is not the one the run trained
  with (or a remote one, not read) is not used either: its ids are the embedding's rows."""
  from spm_fixture import train_tiny_spm

  from eval_multilingual import encoders
  from mlit.commands import gin_flags

  (tmp_path / 'eval.gin').write_text(EVAL_GIN)
  monkeypatch.chdir(tmp_path)  # the config's IMAGE_CHECKPOINT_PATH, 'tower.npz', is not here
  files = [os.path.join(run_dir, 'train', 'config.gin'), str(tmp_path / 'eval.gin')]
  gone = "seqio.SentencePieceVocabulary.sentencepiece_model_file = 'spm/tiny_spm.model'"
  warnings_seen = []
  handler = logging.Handler()
  handler.emit = lambda record: warnings_seen.append(record.getMessage())
  handler.setLevel(logging.WARNING)
  logging.getLogger().addHandler(handler)
  try:
    gin_flags.parse_gin(files, [gone])
    enc = gin.get_configurable(encoders.from_mlit_checkpoint)()
    assert len(warnings_seen) == 2, warnings_seen
    assert warnings_seen[0].startswith(f'tower.npz: no such file (relative to {tmp_path}), for the')
    assert warnings_seen[1].startswith('spm/tiny_spm.model: no such file (relative to')
    assert (
      "using the run's own, " + os.path.join(run_dir, 'train', 'vocabulary.model')
      in (warnings_seen[1])
    )
    other = train_tiny_spm(str(tmp_path / 'other'), vocab_size=300)
    remote = 'gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model'  # offline: unreadable
    for bound, why in ((other, 'is not the file'), (remote, 'is not read')):
      warnings_seen.clear()
      gin_flags.parse_gin(files, [gone.replace('spm/tiny_spm.model', bound)])
      again = gin.get_configurable(encoders.from_mlit_checkpoint)()
      assert len(warnings_seen) == 2 and warnings_seen[1].startswith(bound), warnings_seen
      assert why in warnings_seen[1]
      assert warnings_seen[1].endswith(
        "tokenizing with the run's own, " + os.path.join(run_dir, 'train', 'vocabulary.model')
      )
      np.testing.assert_array_equal(again.embed_texts(TEXTS), enc.embed_texts(TEXTS))
  finally:
    logging.getLogger().removeHandler(handler)
  images = np.stack([inference_run.colour_image(rgb) for rgb in inference_run.COLOURS.values()])
  pixels = images * (2.0 / 255.0) - 1.0
  fresh = mlit.load(run_dir)  # not the session's model: its memo would keep these batches' bits
  np.testing.assert_allclose(enc.embed_texts(TEXTS), fresh.encode_text(TEXTS), atol=1e-6)
  np.testing.assert_allclose(
    enc.embed_images(pixels, 'image'), fresh.encode_image(list(images)), atol=1e-6
  )


def test_classify_is_softmax_of_scaled_cosines(model, tmp_path):
  paths = _images(str(tmp_path))
  labels = [names[2] for names in COLOUR_NAMES]  # Cyrillic
  probs = model.classify(paths, labels, templates=['{}', '{}!'])
  cls = model.encode_text(labels) + model.encode_text([f'{lab}!' for lab in labels])
  cls /= np.linalg.norm(cls, axis=1, keepdims=True)
  logits = model.logit_scale * model.encode_image(paths) @ cls.T
  want = np.exp(logits - logits.max(1, keepdims=True))
  np.testing.assert_allclose(probs, want / want.sum(1, keepdims=True), atol=1e-5)
  assert list(probs.argmax(1)) == [0, 1, 2, 3]  # the tuned model tells the colours apart


def test_predict_prints_the_colour_first(run_dir, tmp_path, capsys):
  paths = _images(str(tmp_path))
  labels = [names[3] for names in COLOUR_NAMES]  # Greek
  order = [2, 0, 3, 1]  # labels given out of the images' order
  argv = [
    'predict',
    '--model',
    run_dir,
    '--image',
    paths[3],
    paths[0],
    '--top-k',
    '2',
    '--labels',
    ','.join(labels[i] for i in order),
  ]
  assert cli.main(argv) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == paths[3] and lines[3] == paths[0] and len(lines) == 6
  assert lines[1].split()[:2] == ['1', labels[3]]
  assert lines[4].split()[:2] == ['1', labels[0]]
  assert float(lines[1].split()[2]) > float(lines[2].split()[2])


def test_inference_commands_never_import_tensorflow(model, run_dir, tmp_path):
  """predict, embed and export (cli.WITHOUT_TENSORFLOW) run with TensorFlow unimportable: the
  tokenizer reads the run's SentencePiece model without seqio (whose import loads TF, 5-6 s)."""
  blocked = tmp_path / 'blocked' / 'tensorflow'
  blocked.mkdir(parents=True)
  (blocked / '__init__.py').write_text("raise ImportError('TensorFlow imported')\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocked.parent), *sys.path]))
  red = _images(str(tmp_path))[0]
  texts = tmp_path / 'texts.txt'
  texts.write_text('red\nκόκκινο\n', encoding='utf-8')
  commands = {
    'predict': ['--image', red, '--labels', 'blue,red', '--top-k', '1'],
    'embed': ['--texts', str(texts), '--out', str(tmp_path / 't.npy')],
    'search': ['--images', os.path.dirname(red), '--query', 'κόκκινο', '--top-k', '1'],
    'export': ['--format', 't5x', '--out', str(tmp_path / 't5x')],
  }
  assert set(commands) <= cli.WITHOUT_TENSORFLOW
  outs = {}
  for command, args in commands.items():
    proc = subprocess.run(
      [sys.executable, '-m', 'mlit.commands.cli', command, '--model', run_dir, *args],
      env=env,
      capture_output=True,
      text=True,
      check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert 'I0000' not in proc.stderr and 'TensorFlow imported' not in proc.stderr
    outs[command] = proc.stdout
  assert outs['predict'].splitlines()[1].split()[:2] == ['1', 'red']
  assert outs['search'].splitlines() == ['κόκκινο', outs['search'].splitlines()[1]]
  assert outs['search'].splitlines()[1].split()[:2] == ['1', 'red.png']
  np.testing.assert_array_equal(np.load(tmp_path / 't.npy'), model.encode_text(['red', 'κόκκινο']))
  assert model.fingerprint in outs['export']


def test_tokenizer_from_a_path_equals_seqios_vocabulary(run_dir):
  """The path route (inference, no seqio) and a seqio vocabulary (evaluation from gin) give the
  same ids and the same digest, so an encoder's fingerprint does not depend on the route."""
  import seqio  # pylint: disable=g-import-not-at-top

  from mlit.inference.tokenizer import Tokenizer  # pylint: disable=g-import-not-at-top

  path = os.path.join(run_dir, 'train', 'vocabulary.model')
  by_path, by_seqio = Tokenizer(path, 8), Tokenizer(seqio.SentencePieceVocabulary(path), 8)
  assert by_path.vocab_digest == by_seqio.vocab_digest and by_path.eos_id == by_seqio.eos_id == 1
  np.testing.assert_array_equal(by_path(TEXTS), by_seqio(TEXTS))
  assert by_path.encode([]) == [] and len(by_path(TEXTS)) == len(TEXTS)
  assert Tokenizer(pathlib.Path(path), 8).vocab_digest == by_path.vocab_digest
  with pytest.raises(FileNotFoundError, match='nothing.model'):
    Tokenizer(os.path.join(run_dir, 'nothing.model'))


def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, capsys):
  good = _images(str(tmp_path))[0]
  broken = tmp_path / 'broken.png'
  broken.write_text('not an image')
  cases = {
    'no such run directory': [
      '--model',
      str(tmp_path / 'missing'),
      '--image',
      good,
      '--labels',
      'a,b',
    ],
    'no readable image among 1': ['--model', run_dir, '--image', str(broken), '--labels', 'a,b'],
    "'a' is given twice (labels 1 and 3)": [
      '--model',
      run_dir,
      '--image',
      good,
      '--labels',
      'a,b,a',
    ],
    'unrecognized argument --lables: did you mean --labels?': ['--model', run_dir, '--image', good]
    + ['--lables', 'a,b'],
    'empty label list': ['--model', run_dir, '--image', good, '--labels', ' , '],
    'not a trained mlit run': ['--model', str(tmp_path), '--image', good, '--labels', 'a'],
    'give --lang': [
      '--model',
      run_dir,
      '--image',
      good,
      '--labels',
      'a',
      '--templates',
      'clip_benchmark/imagenet1k',
    ],
  }
  names = tmp_path / 'names.txt'
  names.write_text('a\nb\n', encoding='utf-8')
  cases.update(
    {
      'a directory; give image files': ['--model', run_dir, '--image', str(tmp_path)]
      + ['--labels', 'a,b'],
      '--top-k 0: give 1 or more': ['--model', run_dir, '--image', good, '--labels', 'a,b']
      + ['--top-k', '0'],
      "not a template (it needs '{}'": ['--model', run_dir, '--image', good, '--labels', 'a,b']
      + ['--templates', 'a photo'],
      f'--labels {names}: a file; give --labels-file': ['--model', run_dir, '--image', good]
      + ['--labels', str(names)],
    }
  )
  for message, args in cases.items():
    assert cli.main(['predict', *args]) == 2, message
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_predict_skips_an_unreadable_image_among_good_ones(run_dir, tmp_path, capsys):
  good = _images(str(tmp_path))[0]
  broken = tmp_path / 'broken.png'
  broken.write_text('not an image')
  argv = ['predict', '--model', run_dir, '--image', str(broken), good, '--labels', 'a,b']
  assert cli.main(argv) == 0
  captured = capsys.readouterr()
  assert captured.out.splitlines()[0] == good and len(captured.out.splitlines()) == 3
  assert captured.err == f'mlit predict: skipped 1 (not a readable image): {broken}\n'
  names = tmp_path / 'twice.txt'
  names.write_text('a\n\nb\na\n', encoding='utf-8')
  assert (
    cli.main(['predict', '--model', run_dir, '--image', good, '--labels-file', str(names)]) == 2
  )
  assert f"--labels-file {names}: 'a' is given twice (lines 1 and 4)" in capsys.readouterr().err


def test_predict_labels_from_a_file_or_full_width_commas(model, run_dir, tmp_path, capsys):
  """--labels-file holds names with commas; --labels splits at '，' too; a single label is
  warned about (its probability is 1 whatever the image); the API refuses a labels string."""
  red = _images(str(tmp_path))[0]
  names = tmp_path / 'names.txt'
  names.write_text('green, or so\n\nκόκκινο\n', encoding='utf-8')
  argv = ['predict', '--model', run_dir, '--image', red, '--top-k', '2']
  assert cli.main([*argv, '--labels-file', str(names)]) == 0
  captured = capsys.readouterr()
  assert [l.split()[1] for l in captured.out.splitlines()[1:]] == ['κόκκινο', 'green,']
  assert 'skipped 1 blank line(s)' in captured.err
  assert cli.main([*argv, '--labels', 'green，κόκκινο']) == 0
  assert [l.split()[1] for l in capsys.readouterr().out.splitlines()[1:]] == ['κόκκινο', 'green']
  assert cli.main([*argv, '--labels', 'green']) == 0
  assert 'its probability is 1 for every image' in capsys.readouterr().err
  # --lang puts the labels in that language's templates, and says so (bare labels say nothing).
  assert cli.main([*argv, '--labels', 'κόκκινο,πράσινο', '--lang', 'el']) == 0
  err = capsys.readouterr().err
  # The test run's texts are 8 tokens: the Greek templates are cut, which is said in one line
  # naming the labels given (it named 'texts[80]', a position in an internal list).
  assert re.fullmatch(
    r'mlit predict: each label in \d+ templates of clip_benchmark/babel_imagenet \(el\), e\.g\. '
    r"'.*\{\}.*'; the labels go in as given \(in that language, for its templates\)\n"
    r"mlit predict: 2 of 2 labels are cut to the run's 8 tokens \(EOS included\), as in "
    r"training: 'κόκκινο' \(in \d+ of \d+ templates, e\.g\. '.*'\), 'πράσινο' \(in .*\)\n",
    err,
  ), err
  with pytest.raises(UserError, match='give a list'):
    model.classify([red], 'red,green')
  with pytest.raises(UserError, match="label 2 'red' is label 0 again"):  # as predict
    model.classify([red], ['red', 'green', ' red'])
  np.testing.assert_array_equal(
    model.classify([red], ['red', 'green'], templates='a {} one'),
    model.classify([red], ['red', 'green'], templates=['a {} one']),
  )


def test_damaged_checkpoint_is_one_line_in_a_fresh_process(run_dir, tmp_path):
  """A truncated checkpoint file: `mlit embed` names the checkpoint and TensorStore's root cause
  in one line and exits 2. In a fresh interpreter, because orbax's abandoned reads print their
  tracebacks ('Exception ignored in ...', 'Event loop is closed') when they are collected,
  which may be at exit."""
  copy = tmp_path / 'run'
  shutil.copytree(run_dir, copy)
  ckpts = copy / 'train' / 'checkpoints'
  (step,) = [d for d in os.listdir(ckpts) if d.isdigit()]
  for data in (ckpts / step / 'state').glob('ocdbt.process_*/d/*'):  # every data file cut in half
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
  (tmp_path / 'names.txt').write_text('red\nrouge\n')
  proc = subprocess.run(
    [sys.executable, '-m', 'mlit.commands.cli', 'embed', '--model', str(copy)]
    + ['--texts', str(tmp_path / 'names.txt'), '--out', str(tmp_path / 'names.npy')],
    capture_output=True,
    text=True,
    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr[-3000:]
  assert f'{ckpts}/{step}: checkpoint unreadable (' in lines[0]
  assert 'TensorStore details' not in lines[0] and not (tmp_path / 'names.npy').exists()


def test_embed_texts_and_images(model, run_dir, tmp_path, capsys):
  texts = tmp_path / 'texts.txt'
  texts.write_text('red\n\nκόκκινο\n赤\n', encoding='utf-8')
  assert (
    cli.main(['embed', '--model', run_dir, '--texts', str(texts), '--out', str(tmp_path / 't.npy')])
    == 0
  )
  side = json.loads((tmp_path / 't.json').read_text())
  assert side['ids'] == ['1', '3', '4'] and side['fingerprint'] == model.fingerprint
  # The blank line is counted and named, not dropped silently.
  assert side['skipped'] == {'blank line': 1}
  assert side['skipped_ids'] == {'blank line': ['2']}
  assert f'skipped 1 (blank line): {texts}:2' in capsys.readouterr().err
  np.testing.assert_array_equal(
    np.load(tmp_path / 't.npy'), model.encode_text(['red', 'κόκκινο', '赤'])
  )
  images = tmp_path / 'images'
  images.mkdir()
  paths = _images(str(images))
  (images / 'broken.png').write_text('not an image')
  assert (
    cli.main(
      ['embed', '--model', run_dir, '--images', str(images), '--out', str(tmp_path / 'i.npy')]
    )
    == 0
  )
  side = json.loads((tmp_path / 'i.json').read_text())
  assert side['ids'] == sorted(os.path.basename(p) for p in paths)
  assert side['skipped'] == {'unreadable image': 1}
  assert side['skipped_ids'] == {'unreadable image': ['broken.png']}
  assert 'skipped 1 (unreadable image): broken.png' in capsys.readouterr().err
  want = model.encode_image([str(images / i) for i in side['ids']])
  np.testing.assert_allclose(np.load(tmp_path / 'i.npy'), want, atol=1e-6)


def test_image_folder_is_embedded_a_batch_at_a_time(run_dir, tmp_path, capsys):
  """A folder is read and embedded a batch of files at a time (pixels of one batch in memory),
  unreadable files named, progress on stderr; the embeddings equal encode_image's, which also
  decodes a list of paths a batch at a time."""
  from mlit.inference import image_folder  # pylint: disable=g-import-not-at-top

  model = mlit.load(run_dir, batch_size=2)
  paths = _images(str(tmp_path))
  (tmp_path / 'blue_broken.png').write_text('not an image')  # sorts into the first batch
  (tmp_path / 'notes.txt').write_text('not an image file name')
  rows = []
  embed_images = model.encoder.embed_images
  model.encoder.embed_images = lambda x, kind: rows.append(len(x)) or embed_images(x, kind)
  ids, emb, skipped = image_folder.embed_directory(model, str(tmp_path), log_every=0)
  assert ids == sorted(os.path.basename(p) for p in paths) and rows == [1, 2, 1]
  (tmp_path / 'more').mkdir()
  assert skipped == {
    'unreadable image': ['blue_broken.png'],
    image_folder.NOT_AN_IMAGE_NAME: ['notes.txt'],
  }
  assert image_folder.embed_directory(model, str(tmp_path), log_every=0)[2][
    'subdirectory, not read'
  ] == ['more']
  with pytest.raises(UserError, match='a file; give the directory of images'):
    image_folder.embed_directory(model, paths[0])
  assert '--images' in capsys.readouterr().err  # 'done of total' lines between batches
  rows.clear()
  want = model.encode_image([str(tmp_path / i) for i in ids])  # the API decodes by batch too
  assert rows == [2, 2]
  np.testing.assert_allclose(emb, want, atol=1e-6)


def test_search_ranks_the_named_colour_first(model, run_dir, tmp_path, capsys):
  """`mlit search` over a folder and over `mlit embed`'s output of it: the same ranking; an
  output embedded with other weights or of texts is refused in one line."""
  images = tmp_path / 'images'
  images.mkdir()
  _images(str(images))
  queries = [names[i] for i, names in enumerate(COLOUR_NAMES)]  # red, grün, синий, κίτρινο
  files = [f'{names[0]}.png' for names in COLOUR_NAMES]
  argv = ['search', '--model', run_dir, '--top-k', '2', '--query', *queries]
  assert cli.main([*argv, '--images', str(images)]) == 0
  folder_out = capsys.readouterr().out
  lines = folder_out.splitlines()
  assert len(lines) == 12 and lines[::3] == queries
  assert [lines[3 * q + 1].split()[:2] for q in range(4)] == [['1', f] for f in files]
  npy = str(tmp_path / 'images.npy')
  assert cli.main(['embed', '--model', run_dir, '--images', str(images), '--out', npy]) == 0
  capsys.readouterr()
  assert cli.main([*argv, '--images', npy]) == 0
  assert capsys.readouterr().out == folder_out
  sidecar = json.loads((tmp_path / 'images.json').read_text())
  cases = {
    'embedded with other weights': dict(sidecar, fingerprint='0' * 24),
    "holds 'text' embeddings": dict(sidecar, kind='text'),
  }
  for message, bad in cases.items():
    (tmp_path / 'images.json').write_text(json.dumps(bad))
    assert cli.main([*argv, '--images', npy]) == 2
    err = capsys.readouterr().err
    assert message in err and npy in err and len(err.strip().splitlines()) == 1, err
  (tmp_path / 'images.json').write_text(json.dumps(sidecar))
  pathlib.Path(npy).write_bytes(b'not a numpy file')
  assert cli.main([*argv, '--images', npy]) == 2
  assert 'not a readable .npy' in capsys.readouterr().err
  assert cli.main([*argv, '--images', str(tmp_path / 'missing')]) == 2
  assert 'no such directory' in capsys.readouterr().err


def test_search_columns_stay_aligned_past_rank_99():
  """`--top-k 371` on the demo: ranks 100 and on were a column wider than 1-99."""
  from mlit.commands import search  # pylint: disable=g-import-not-at-top

  lines = search.ranked_lines([f'img{i}.png' for i in range(120)], [0.5] * 120, 10)
  assert lines[0] == '    1  img0.png    0.500' and lines[99] == '  100  img99.png   0.500'
  assert len({len(l) for l in lines}) == 1


def test_export_transformers_parity(model, run_dir, tmp_path):
  import torch
  import transformers
  from safetensors.numpy import load_file

  out = tmp_path / 'hf'
  # A fresh interpreter, as a user runs it: the first import of transformers' model code is
  # where an installed torchvision speaks, and the command's output must not carry that.
  proc = subprocess.run(
    [sys.executable, '-m', 'mlit.commands.cli', 'export', '--model', run_dir]
    + ['--format', 'transformers', '--out', str(out)],
    capture_output=True,
    text=True,
    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'wrote ' in proc.stdout + proc.stderr
  assert 'Failed to load image Python extension' not in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert 'I0000' not in proc.stderr, proc.stderr[-2000:]  # TensorFlow's load-time INFO lines
  assert {
    'config.json',
    'model.safetensors',
    'spiece.model',
    'README.md',
    'text_head.json',
    'text_projection.safetensors',
    'tokenizer.json',
  } <= set(os.listdir(out))
  modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
  assert len(set(modes.values())) == 1, modes  # safetensors' files are not owner-only
  layers = model.encoder.model.text.num_encoder_layers
  card = (out / 'README.md').read_text()
  assert f'tower: an MT5EncoderModel ({layers} layer{"" if layers == 1 else "s"}, width' in card
  hf = transformers.MT5EncoderModel.from_pretrained(out).eval()
  head = json.loads((out / 'text_head.json').read_text())
  proj = load_file(str(out / 'text_projection.safetensors'))
  ids = model.encoder.tokenizer(TEXTS)
  with torch.no_grad():
    hidden = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(ids > 0)).last_hidden_state
  mask = (ids > 0)[..., None]
  pooled = (hidden.numpy() * mask).sum(1) / mask.sum(1)
  emb = pooled @ proj['weight'].T + proj['bias']
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  assert head['pooling'] == 'mean' and head['max_length'] == 8
  assert np.abs(emb - model.encode_text(TEXTS)).max() <= 1e-4
  # The exported tokenizer gives mlit's ids, texts outside the vocabulary (byte fallback) too.
  tok = transformers.AutoTokenizer.from_pretrained(out)
  hf_ids = tok(TEXTS, padding='max_length', truncation=True, max_length=8)['input_ids']
  np.testing.assert_array_equal(np.asarray(hf_ids), model.encoder.tokenizer(TEXTS))


def test_export_t5x_round_trips_bit_exactly(model, run_dir, tmp_path):
  from flax import traverse_util

  from mlit.checkpoints import t5x as t5x_checkpoint

  assert cli.main(['export', '--model', run_dir, '--format', 't5x', '--out', str(tmp_path)]) == 0
  ckpt = tmp_path / f'checkpoint_{model.step}'
  flat = t5x_checkpoint.read_t5x_checkpoint(str(ckpt))
  txt = traverse_util.flatten_dict(model.encoder.params['txt'], sep='/')
  want = {k: np.asarray(v) for k, v in txt.items() if not k.startswith('head/')}
  assert set(flat) == set(want)
  for key, value in want.items():
    assert flat[key].dtype == value.dtype and np.array_equal(flat[key], value), key
  loaded, report = t5x_checkpoint.load_text_tower_from_t5x(str(ckpt), model.encoder.params['txt'])
  assert report.fresh == ['head/bias', 'head/kernel'] and not report.missing
  assert (tmp_path / 'text_projection.safetensors').exists()
  # The vocabulary the embedding rows were trained with goes with them.
  assert (tmp_path / 'vocabulary.model').read_bytes() == open(
    model.encoder.tokenizer.vocab_path, 'rb'
  ).read()


def test_export_big_vision_npz(model, run_dir, tmp_path):
  from flax import traverse_util

  from mlit.checkpoints import big_vision_npz

  assert (
    cli.main(['export', '--model', run_dir, '--format', 'big_vision', '--out', str(tmp_path)]) == 0
  )
  flat = big_vision_npz.read_npz(str(tmp_path / 'image_tower.npz'))
  want = traverse_util.flatten_dict(model.encoder.params['img'], sep='/')
  assert set(flat) == set(want)
  assert all(np.array_equal(flat[k], np.asarray(v)) for k, v in want.items())


def test_failed_export_leaves_no_directory(run_dir, tmp_path, monkeypatch):
  """A write that fails half-way (here: the disk fills up) removes the directory the export made,
  and leaves a directory that was already there as it was."""
  from mlit.checkpoints import big_vision_npz

  def disk_full(path, params):
    with open(path, 'wb') as f:
      f.write(b'half an npz')
    raise OSError(28, 'No space left on device', path)

  monkeypatch.setattr(big_vision_npz, 'save_big_vision_npz', disk_full)
  new = tmp_path / 'new' / 'vit'
  with pytest.raises(OSError, match='No space left'):
    cli.main(['export', '--model', run_dir, '--format', 'big_vision', '--out', str(new)])
  assert not (tmp_path / 'new').exists()
  old = tmp_path / 'old'
  old.mkdir()
  with pytest.raises(OSError, match='No space left'):
    cli.main(['export', '--model', run_dir, '--format', 'big_vision', '--out', str(old)])
  assert os.listdir(old) == [] and os.listdir(tmp_path) == ['old']  # no temporary left either'


def test_texts_are_embedded_at_the_width_they_need(model):
  """The encoder cuts each group of texts to the multiple of 8 tokens it needs: the same
  embeddings as the full text length, for texts of every length up to it."""
  import jax

  from mlit.inference import encoder as encoder_lib

  enc = model.encoder
  rng = np.random.default_rng(0)
  length = 24
  ids = np.zeros((40, length), np.int32)
  for i, n in enumerate(rng.integers(1, length + 1, len(ids))):
    ids[i, :n] = rng.integers(2, 60, n)
    ids[i, n - 1] = 1  # EOS
  grouped = enc._embed_token_ids(ids)
  full = np.asarray(
    jax.jit(lambda p, t: enc.model.apply({'params': p}, text=t)[1])(enc.params, ids)
  )
  assert encoder_lib.WIDTH_STEP < length
  np.testing.assert_allclose(grouped, full, atol=1e-5)


def test_a_relative_checkpoint_path_names_the_working_directory(tmp_path, monkeypatch):
  """A run's config.gin keeps paths as given (relative): read from another directory, the
  error says where it looked."""
  from mlit.inference import encoder  # pylint: disable=g-import-not-at-top

  monkeypatch.chdir(tmp_path)
  with pytest.raises(FileNotFoundError, match=f'relative to the working directory {tmp_path}'):
    encoder.restore_params('runs/demo/train')
  with pytest.raises(FileNotFoundError) as e:
    encoder.restore_params(str(tmp_path / 'nothing'))
  assert 'relative to' not in str(e.value)


def test_encode_text_refuses_what_is_not_text_and_says_what_it_cuts(model):
  """A text that is not a str, or is blank, is one UserError naming its position (before: a
  TypeError of SentencePiece's, or an embedding of the end-of-text token alone); a text longer
  than the run's text length is cut, as in training, and a warning counts it."""
  cases = {
    'text 0 is bytes, not str (decode it first': b'red',
    'text 1 is NoneType, not str': ['red', None],
    'text 1 is empty': ['red', ''],
    'text 0 is blank': [' \t'],
    'text 1 is blank': ['red', '\u200b\ufeff '],  # zero-width: looks empty, was embedded
  }
  for message, texts in cases.items():
    with pytest.raises(UserError, match=re.escape(message)):
      model.encode_text(texts)
  np.testing.assert_array_equal(
    model.encode_text(np.array(['red', 'κόκκινο'])), model.encode_text(['red', 'κόκκινο'])
  )
  assert model.text_length == 8
  long = ' '.join(['red'] * 20)
  with pytest.warns(
    UserWarning, match=r"1 of 2 texts are longer than the run's 8 tokens .*texts\[1\]"
  ):
    cut = model.encode_text(['red', long])
  again, cut_positions = model.encode_text_and_cuts(['red', long])
  assert cut_positions == [1]
  np.testing.assert_array_equal(again, cut)
  first7 = model.encoder.tokenizer.pad([model.encoder.tokenizer.encode([long])[0][:7]])
  np.testing.assert_allclose(cut[1], model.encoder._embed_token_ids(first7)[0], atol=1e-6)


def test_embed_names_the_lines_it_cuts(model, run_dir, tmp_path, capsys):
  texts = tmp_path / 'texts.txt'
  texts.write_text('red\n' + ' '.join(['blue'] * 20) + '\n', encoding='utf-8')
  out = str(tmp_path / 't.npy')
  assert cli.main(['embed', '--model', run_dir, '--texts', str(texts), '--out', out]) == 0
  assert json.loads((tmp_path / 't.json').read_text())['cut_ids'] == ['2']
  err = capsys.readouterr().err
  assert (
    err
    == f"mlit embed: cut 1 line(s) to the run's 8 tokens (EOS included), as in training: {texts}:2\n"
  )


def test_embed_tokenizes_each_text_once(model, run_dir, tmp_path, monkeypatch):
  """`mlit embed --texts` tokenized every line three times (the cut check in the command, again
  in encode_text, then for the embedding): one pass now gives both the cuts and the ids."""
  texts = tmp_path / 'texts.txt'
  lines = ['red', ' '.join(['blue'] * 20), 'green', 'red']
  texts.write_text('\n'.join(lines) + '\n', encoding='utf-8')
  tokenized = []
  real_encode = tokenizer_lib.Tokenizer.encode
  monkeypatch.setattr(
    tokenizer_lib.Tokenizer,
    'encode',
    lambda self, some: tokenized.extend(list(some)) or real_encode(self, some),
  )
  out = str(tmp_path / 't.npy')
  assert cli.main(['embed', '--model', run_dir, '--texts', str(texts), '--out', out]) == 0
  assert tokenized == lines
  monkeypatch.undo()
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    want = model.encode_text(lines)
  np.testing.assert_allclose(np.load(out), want, atol=1e-6)


def test_eval_encoder_names_a_missing_model_dir(tmp_path, monkeypatch):
  """A MODEL_DIR that is not there (a copied run's config.gin names where it trained) is one
  UserError naming MODEL_DIR; it read 'no mlit_model.json ... bind text_length'."""
  from mlit.inference import encoder  # pylint: disable=g-import-not-at-top

  monkeypatch.chdir(tmp_path)
  with pytest.raises(
    UserError,
    match=re.escape(f'runs/demo/train: no such directory (MODEL_DIR, relative to {tmp_path})'),
  ):
    encoder.from_mlit_checkpoint(None, 'runs/demo/train', None)


def test_a_copied_runs_config_gin_evaluates_that_run(run_dir, model, tmp_path, monkeypatch, caplog):
  """config.gin names MODEL_DIR as training was given it (relative to where it ran): read from
  a copy elsewhere, evaluation stopped ('no such directory (MODEL_DIR ...)'). The trainer writes
  config.gin into MODEL_DIR, so a config.gin beside mlit_model.json is that run's: it is
  evaluated, with a warning. A MODEL_DIR given as a flag is taken as typed."""
  from eval_multilingual import encoders
  from mlit.commands import gin_flags

  copy = tmp_path / 'elsewhere' / 'mine'
  shutil.copytree(os.path.dirname(run_dir), tmp_path / 'elsewhere', dirs_exist_ok=True)
  shutil.copytree(os.path.join(run_dir, 'train'), copy)
  config = copy / 'config.gin'
  text = re.sub(r'(?m)^MODEL_DIR = .*$', "MODEL_DIR = 'runs/mine'", config.read_text())
  config.write_text(text)
  (tmp_path / 'eval.gin').write_text(EVAL_GIN)
  monkeypatch.chdir(tmp_path)  # no runs/mine here
  gin_flags.parse_gin([str(config), str(tmp_path / 'eval.gin')], [])
  enc = gin.get_configurable(encoders.from_mlit_checkpoint)()
  assert f"MODEL_DIR 'runs/mine' (as {config} names it) is not here; evaluating {copy}" in (
    caplog.text
  )
  np.testing.assert_allclose(enc.embed_texts(TEXTS), model.encode_text(TEXTS), atol=1e-6)
  gin_flags.parse_gin([str(config), str(tmp_path / 'eval.gin')], ["MODEL_DIR = 'runs/mine'"])
  with pytest.raises(UserError, match=re.escape('runs/mine: no such directory (MODEL_DIR')):
    gin.get_configurable(encoders.from_mlit_checkpoint)()


def test_load_refuses_what_it_cannot_apply(run_dir, tmp_path):
  """No checkpoint yet, a step the run lacks or that contradicts the checkpoint directory given,
  a batch size below 1: one UserError each (before: FileNotFoundError 'no checkpoint for step
  None', a checkpoints/700 directory's step silently replaced, a ValueError of range() at the
  first batch). A run root whose name is a number is not a step."""
  model_dir = os.path.join(run_dir, 'train')
  (step,) = os.listdir(os.path.join(model_dir, 'checkpoints'))
  fresh = tmp_path / 'fresh'
  fresh.mkdir()
  for name in ('mlit_model.json', 'vocabulary.model'):
    shutil.copy(os.path.join(model_dir, name), fresh)
  cases = {
    f'{fresh}: no checkpoint yet': (str(fresh), {}),
    'no checkpoint for step 3 (have': (run_dir, {'step': 3}),
    f'step=3, but {model_dir}/checkpoints/{step} is the checkpoint of step {step}': (
      f'{model_dir}/checkpoints/{step}',
      {'step': 3},
    ),
    'batch_size 0: give an int of 1 or more': (run_dir, {'batch_size': 0}),
    f"step '{step}': give an int (a checkpoint step) or None": (run_dir, {'step': step}),
  }
  for message, (path, kwargs) in cases.items():
    with pytest.raises(UserError, match=re.escape(message)):
      mlit.load(path, **kwargs)
  numbered = tmp_path / '2024'
  shutil.copytree(run_dir, numbered)
  model = mlit.load(str(numbered))
  assert model.step == inference_run.STEPS
  # Pre-computed embeddings of another width: one line, not flax's ScopeParamShapeError.
  with pytest.raises(UserError, match=r'embeddings of shape \(2, 3\); the run takes \[N, \d+\]'):
    model.encode_image_embedding(np.zeros((2, 3)))


def test_a_run_root_moved_whole_finds_its_locked_tower(run_dir, model, tmp_path):
  """mlit_model.json recorded the locked tower by absolute path only, so a run root copied to
  another folder or machine, its original gone, could neither be loaded nor evaluated ('file of
  the run is missing'). The trainer now also records the tower's path relative to MODEL_DIR;
  loading falls back to it (sha256 checked as before)."""
  root = tmp_path / 'moved'
  shutil.copytree(os.path.dirname(run_dir), root)  # spm/, work/tower.npz, run/train
  model_dir = root / 'run' / 'train'
  spec = json.loads((model_dir / 'mlit_model.json').read_text())
  assert spec['image']['checkpoint']['relative_path'] == os.path.join(
    '..', '..', 'work', 'tower.npz'
  )
  spec['image']['checkpoint']['path'] = str(tmp_path / 'gone' / 'tower.npz')  # the original, gone
  (model_dir / 'mlit_model.json').write_text(json.dumps(spec))
  images = _images(str(tmp_path))
  np.testing.assert_allclose(
    mlit.load(str(root / 'run')).encode_image(images), model.encode_image(images), atol=1e-6
  )
  from mlit.inference import encoder as encoder_lib  # the evaluation's way in

  enc = encoder_lib.from_mlit_checkpoint(
    model.encoder.model, str(model_dir / 'checkpoints'), model.encoder.tokenizer.vocab_path
  )
  assert enc.model.image is not None
  # The original place reused for other weights (the demo re-run with another tower, say): the
  # copy's own tower is used; it was 'sha256 ... differs from the run's'.
  (tmp_path / 'gone').mkdir()
  (tmp_path / 'gone' / 'tower.npz').write_bytes(b'other weights')
  np.testing.assert_allclose(
    mlit.load(str(root / 'run')).encode_image(images), model.encode_image(images), atol=1e-6
  )
  (root / 'work' / 'tower.npz').write_bytes(b'not the tower either')
  with pytest.raises(UserError, match=r'work/tower.npz and .*gone/tower.npz: neither holds'):
    mlit.load(str(root / 'run'))
  (root / 'work' / 'tower.npz').unlink()
  (tmp_path / 'gone' / 'tower.npz').unlink()
  with pytest.raises(UserError, match=r'gone/tower.npz: file of the run is missing .* and so is '):
    mlit.load(str(root / 'run'))
