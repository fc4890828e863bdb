"""What a user walkthrough of `mlit predict/embed/search/export` found, on the tiny run of
tests/inference_run.py: relative export paths, --out checks, file names that are not UTF-8,
atomic embed outputs, the big_vision config, and the texts and tables users see."""

import json
import os
import re
import types
import warnings

import inference_run
import numpy as np
import pytest
from PIL import Image

import mlit
from mlit.commands import cli
from mlit.inference import user_text

COLOUR_NAMES = list(inference_run.COLOURS)
# The tiny run reads 8 tokens; its cut-text warning is checked in test_inference.
pytestmark = pytest.mark.filterwarnings('ignore:encode_text. .* were cut:UserWarning')


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  return os.path.dirname(inference_run.build(str(tmp_path_factory.mktemp('inference'))))


@pytest.fixture(scope='module')
def model(run_dir):
  return mlit.load(run_dir)


def _image(path, rgb=(220, 30, 30), size=inference_run.SIZE):
  Image.fromarray(np.full((size, size, 3), rgb, np.uint8)).save(path)
  return str(path)


def _one_error_line(capsys, *parts):
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err, err
  for part in parts:
    assert part in err, err
  return err


def _export(run_dir, fmt, out):
  return cli.main(['export', '--model', run_dir, '--format', fmt, '--out', out])


def test_export_t5x_to_relative_paths(model, run_dir, tmp_path, monkeypatch):
  """'../t5x_up' was TensorStore's traceback 'Invalid file path'; './a/../x' made a/ too."""
  work = tmp_path / 'work'
  work.mkdir()
  monkeypatch.chdir(work)
  assert _export(run_dir, 't5x', '../t5x_up') == 0
  assert (tmp_path / 't5x_up' / f'checkpoint_{model.step}' / 'checkpoint').is_file()
  assert _export(run_dir, 't5x', './a/../x') == 0
  assert (work / 'x' / 'vocabulary.model').is_file() and not (work / 'a').exists()


def test_failed_export_into_an_existing_directory_leaves_it_empty(run_dir, tmp_path, monkeypatch):
  """It left an empty checkpoint_<step>/ behind."""
  from mlit.inference import text_head

  def disk_full(*args):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(text_head, 'write', disk_full)
  (tmp_path / 'out').mkdir()
  with pytest.raises(OSError, match='No space left'):
    _export(run_dir, 't5x', str(tmp_path / 'out'))
  assert os.listdir(tmp_path / 'out') == [] and os.listdir(tmp_path) == ['out']


def test_export_out_is_new_empty_or_an_earlier_export(run_dir, tmp_path, capsys):
  """A file was a FileExistsError traceback; other files were mixed in silently. An earlier
  export of the same format is replaced (and said so); anything else is one line, exit 2."""
  names = tmp_path / 'names.txt'
  names.write_text('mine')
  assert _export(run_dir, 't5x', str(names)) == 2
  _one_error_line(capsys, f'--out {names}: a file')
  mine = tmp_path / 'mine'
  mine.mkdir()
  (mine / 'notes.txt').write_text('mine')
  assert _export(run_dir, 't5x', str(mine)) == 2
  _one_error_line(capsys, 'holds other files (notes.txt)')
  assert os.listdir(mine) == ['notes.txt']
  out = tmp_path / 't5x'
  assert _export(run_dir, 't5x', str(out)) == 0
  record = json.loads((out / 'mlit_export.json').read_text())
  assert record['format'] == 't5x' and set(record['files']) == set(os.listdir(out)) - {
    'mlit_export.json'
  }
  capsys.readouterr()
  assert _export(run_dir, 't5x', str(out)) == 0
  assert f'replaced the earlier t5x export in {out}' in capsys.readouterr().err
  assert _export(run_dir, 'big_vision', str(out)) == 2
  _one_error_line(capsys, 'holds an earlier t5x export')
  (out / 'notes.txt').write_text('mine')
  assert _export(run_dir, 't5x', str(out)) == 2
  _one_error_line(capsys, 'with other files added (notes.txt)')
  assert (out / 'notes.txt').read_text() == 'mine'


def test_export_big_vision_writes_the_towers_config(model, run_dir, tmp_path):
  out = tmp_path / 'vit'
  assert _export(run_dir, 'big_vision', str(out)) == 0
  info = json.loads((out / 'image_tower.json').read_text())
  tower = inference_run.TOWER
  assert {k: info['config'][k] for k in ('width', 'depth', 'num_heads', 'mlp_dim')} == {
    k: tower[k] for k in ('width', 'depth', 'num_heads', 'mlp_dim')
  }
  assert info['config']['patch_size'] == [8, 8] and info['config']['pool_type'] == 'gap'
  assert info['input']['size'] == [16, 16] and info['input']['range'] == [-1, 1]
  assert info['weights'] == 'image_tower.npz'
  if 'img_head' in model.encoder.params:
    assert info['image_head']['file'] == 'image_head.npz' and (out / 'image_head.npz').exists()


def test_embed_keeps_a_file_name_that_is_not_utf8(model, run_dir, tmp_path, capsys):
  """b'bad\\xffname.png' was a UnicodeEncodeError traceback that left a sidecar cut after 24
  bytes; now the name round-trips through the sidecar and search prints it."""
  images = tmp_path / 'images'
  images.mkdir()
  bad = os.fsdecode(b'bad\xffname.png')
  _image(os.path.join(images, bad))
  _image(images / '赤.png', (30, 40, 220))
  npy = str(tmp_path / 'uni.npy')
  assert cli.main(['embed', '--model', run_dir, '--images', str(images), '--out', npy]) == 0
  raw = (tmp_path / 'uni.json').read_bytes().decode('utf-8')  # valid UTF-8 JSON
  assert '\\udcff' in raw and '赤.png' in raw  # other names stay readable
  assert json.loads(raw)['ids'] == sorted(os.listdir(images))
  capsys.readouterr()
  argv = ['search', '--model', run_dir, '--images', npy, '--query', 'red', '--top-k', '2']
  assert cli.main(argv) == 0
  assert 'bad\\xffname.png' in capsys.readouterr().out
  assert user_text.printable(bad) == 'bad\\xffname.png'


def test_embed_writes_both_files_or_neither(run_dir, tmp_path, monkeypatch):
  """The sidecar was written straight into OUT.json after OUT.npy: a failure while writing it
  left the new .npy beside a cut .json."""
  from mlit.commands import embed

  (tmp_path / 'texts.txt').write_text('red\n', encoding='utf-8')

  def disk_full(*args, **kwargs):
    raise OSError(28, 'No space left on device')

  fake_json = types.SimpleNamespace(
    load=json.load, loads=json.loads, dump=disk_full, dumps=disk_full
  )
  monkeypatch.setattr(embed, 'json', fake_json)
  argv = ['embed', '--model', run_dir, '--texts', str(tmp_path / 'texts.txt')]
  with pytest.raises(OSError, match='No space left'):
    cli.main([*argv, '--out', str(tmp_path / 't.npy')])
  assert sorted(os.listdir(tmp_path)) == ['texts.txt']


def test_embed_out_refuses_a_directory_and_a_foreign_json(run_dir, tmp_path, capsys):
  texts = tmp_path / 'texts.txt'
  texts.write_text('\ufeffred\n\u200b\ufeff\n', encoding='utf-8')
  argv = ['embed', '--model', run_dir, '--texts', str(texts), '--out']
  (tmp_path / 'config.json').write_text('{"learning_rate": 1}')
  assert cli.main([*argv, str(tmp_path / 'config.npy')]) == 2
  _one_error_line(capsys, 'config.json exists and is not an mlit embed sidecar')
  assert (tmp_path / 'config.json').read_text() == '{"learning_rate": 1}'
  assert not (tmp_path / 'config.npy').exists()
  assert cli.main([*argv, str(tmp_path / 'outdir') + os.sep]) == 2
  _one_error_line(capsys, 'a directory; give a file name in it')
  assert not (tmp_path / 'outdir').exists()
  # An earlier sidecar is replaced; a BOM is no part of line 1; a zero-width line is blank.
  for _ in range(2):
    assert cli.main([*argv, str(tmp_path / 'names.npy')]) == 0
  side = json.loads((tmp_path / 'names.json').read_text())
  assert side['ids'] == ['1'] and side['skipped_ids'] == {'blank line': ['2']}


def test_zero_width_labels_and_queries_are_empty(run_dir, tmp_path, capsys):
  red = _image(tmp_path / 'red.png')
  assert cli.main(['predict', '--model', run_dir, '--image', red, '--labels', 'red,\u200b']) == 2
  _one_error_line(capsys, '--labels: empty label in')
  argv = ['search', '--model', run_dir, '--images', str(tmp_path), '--query', 'red', '\ufeff']
  assert cli.main(argv) == 2
  _one_error_line(capsys, '--query: empty query')


def test_predict_table_is_aligned_by_display_width(model, run_dir, tmp_path, capsys):
  """A BOM no longer shows in the first label of --labels-file; CJK, Devanagari and Arabic labels
  line up (len() padding misaligned them); the probabilities are model.classify's."""
  red = _image(tmp_path / 'red.png')
  names = tmp_path / 'names.txt'
  labels = ['赤', 'नमस्ते', 'أحمر', 'green']
  names.write_text('\ufeff' + '\n'.join(labels) + '\n', encoding='utf-8')
  argv = ['predict', '--model', run_dir, '--image', red, '--labels-file', str(names)]
  assert cli.main(argv) == 0
  rows = capsys.readouterr().out.splitlines()[1:]
  shown = {row.split()[1]: row for row in rows}
  assert set(shown) == set(labels)  # '\ufeff赤' before
  columns = {user_text.display_width(row[: row.rindex(' ')]) for row in rows}
  assert len(columns) == 1, rows
  want = model.classify([red], labels)[0]
  for label, row in shown.items():
    assert float(row.split()[-1]) == pytest.approx(want[labels.index(label)], abs=1e-3)
  assert user_text.display_width('赤') == 2 and user_text.display_width('नमस्ते') == 4


def test_predict_decodes_each_image_once(run_dir, tmp_path, monkeypatch, capsys):
  opened = []
  real_open = Image.open
  monkeypatch.setattr(Image, 'open', lambda p, *a: opened.append(p) or real_open(p, *a))
  paths = [_image(tmp_path / 'red.png'), _image(tmp_path / 'blue.png', (30, 40, 220))]
  assert cli.main(['predict', '--model', run_dir, '--image', *paths, '--labels', 'red,blue']) == 0
  assert opened == paths


def test_too_large_images_say_so_without_raw_warnings(
  model, run_dir, tmp_path, monkeypatch, capsys
):
  """Above PIL's limit: decoded without PIL's raw DecompressionBombWarning; above twice it:
  skipped as 'too large (N pixels, PIL's limit M)', not as 'not a readable image'."""
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)
  big = _image(tmp_path / 'big.png', size=12)  # 144 pixels: PIL warns
  huge = _image(tmp_path / 'huge.png', size=16)  # 256 pixels: PIL refuses
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    assert cli.main(['predict', '--model', run_dir, '--image', big, huge, '--labels', 'a,b']) == 0
  assert not [w for w in caught if 'DecompressionBomb' in w.category.__name__]
  captured = capsys.readouterr()
  assert captured.out.splitlines()[0] == big
  assert captured.err == (
    f"mlit predict: skipped 1 (too large (256 pixels, PIL's limit 200)): {huge}\n"
  )
  from mlit.inference import image_folder

  skipped = image_folder.embed_directory(model, str(tmp_path))[2]
  assert skipped == {"too large (256 pixels, PIL's limit 200)": ['huge.png']}


def test_search_names_the_queries_it_cuts(run_dir, tmp_path, capsys):
  _image(tmp_path / 'red.png')
  long = ' '.join(['blue'] * 20)
  argv = ['search', '--model', run_dir, '--images', str(tmp_path), '--query', 'red', long]
  assert cli.main(argv) == 0
  err = capsys.readouterr().err
  assert re.fullmatch(
    r"mlit search: 1 of 2 queries are longer than the run's 8 tokens \(EOS included\) and were "
    rf"cut, as in training: '{long}'\n",
    err,
  ), err


def test_export_without_transformers_installed_is_one_line(run_dir, tmp_path, capsys, monkeypatch):
  """mlit's core install leaves transformers out: the export was a ModuleNotFoundError traceback."""
  import sys

  monkeypatch.setitem(sys.modules, 'transformers', None)  # import transformers -> ImportError
  assert _export(run_dir, 'transformers', str(tmp_path / 'hf')) == 2
  _one_error_line(capsys, '--format transformers needs the transformers package', "'.[demo]'")
  assert not (tmp_path / 'hf').exists()
