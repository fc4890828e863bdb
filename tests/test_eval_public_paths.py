"""The README's public-benchmark commands (eval/wit.gin, eval/xm3600.gin after a run's
config.gin) on small copies of the documented formats, with hostile rows: every malformed row
counted and named, and the scores recomputable from mlit.load's embeddings with the rank rule."""

import csv
import gzip
import hashlib
import json
import logging
import os
import shutil

import inference_run
import numpy as np
import pytest
from PIL import Image

import mlit
from eval_multilingual import report, run
from eval_multilingual.datasets import wit, xm3600
from mlit.commands import cli
from tasks.user_error import UserError

COLOURS = list(inference_run.COLOURS.items())  # ((en, de, ru, el, ja, ar), rgb)
DE = 1  # index of German in the colour names


def _wit_row(**fields) -> list[str]:
  row = dict.fromkeys(wit.COLUMNS, '')
  row.update(fields)
  return [row[c] for c in wit.COLUMNS]


def _url(i: int) -> str:
  return f'https://upload.wikimedia.org/wikipedia/commons/{i}/Farbe_{i}.png'


def _write_wit(path, rows, extra_lines=()):
  with gzip.open(path, 'wt', newline='', encoding='utf-8') as f:
    w = csv.writer(f, delimiter='\t', lineterminator='\n')
    w.writerow(wit.COLUMNS)
    for r in rows:
      w.writerow(r)
    for line in extra_lines:
      f.write(line + '\n')


def _hostile_wit(path):
  """Lines: 1 header, 2-5 the German colours, 6 empty caption, 7 repeated URL, 8 no URL,
  9 no language, 10 too few columns."""
  rows = [
    _wit_row(language='de', image_url=_url(i), caption_reference_description=names[DE])
    for i, (names, _) in enumerate(COLOURS)
  ]
  rows += [
    _wit_row(language='de', image_url=_url(9), caption_reference_description=''),
    _wit_row(language='de', image_url=_url(0), caption_reference_description='noch einmal'),
    _wit_row(language='de', image_url='', caption_reference_description='ohne Bild'),
    _wit_row(language='', image_url=_url(8), caption_reference_description='ohne Sprache'),
  ]
  _write_wit(path, rows, ['de\tzu\twenige Spalten'])


def test_wit_malformed_rows_are_counted_and_named(tmp_path, caplog):
  path = str(tmp_path / 'wit_v1.test.all-00000-of-00001.tsv.gz')
  _hostile_wit(path)
  with caplog.at_level(logging.WARNING):
    pairs, file_counts = wit.read_wit(str(tmp_path / 'wit_v1.test.all-*.tsv.gz'))
  assert pairs['de'].texts == [names[DE] for names, _ in COLOURS]
  assert dict(pairs['de'].skipped) == {'no_text': 1, 'duplicate_image_url': 1, 'no_image_url': 1}
  assert dict(file_counts) == {'no_language': 1, 'wrong_column_count': 1}
  named = {r.getMessage().split(': ', 2)[2] for r in caplog.records}
  assert named == {
    f'no_text (de) (first: {path}:6)',
    f'duplicate_image_url (de) (first: {path}:7)',
    f'no_image_url (de) (first: {path}:8)',
    f'no_language (first: {path}:9)',
    f'wrong_column_count (first: {path}:10)',
  }


def test_xm3600_malformed_lines_are_counted_and_named(tmp_path, caplog):
  path = tmp_path / 'captions.jsonl'
  lines = [
    json.dumps({'image/key': 'a', 'de': {'caption': ['rot', 'ganz rot']}}),
    json.dumps({'image/key': 'b', 'de': {'caption': 'ein Text, keine Liste'}}),
    json.dumps({'image/key': 'a', 'de': {'caption': ['dasselbe Bild']}}),
    '{kein json',
    json.dumps({'de': {'caption': ['ohne Schlüssel']}}),
  ]
  path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
  with caplog.at_level(logging.WARNING):
    pairs, counts = xm3600.read_xm3600(str(path), ['de'])
  # A string caption is one malformed entry, not a caption per character; the repeated image
  # would tie with its first copy and count against the model.
  assert pairs['de'].texts == ['rot', 'ganz rot'] and pairs['de'].image_keys == ['a']
  assert dict(pairs['de'].skipped) == {'caption_not_a_list_of_strings': 1}
  assert dict(counts) == {'duplicate_image_key': 1, 'invalid_json': 1, 'no_image_key': 1}
  named = {r.getMessage().split(': ', 2)[2] for r in caplog.records}
  assert named == {
    f'caption_not_a_list_of_strings (de) (first: {path}:2)',
    f'duplicate_image_key (first: {path}:3)',
    f'invalid_json (first: {path}:4)',
    f'no_image_key (first: {path}:5)',
  }
  wrong = tmp_path / 'wrong.jsonl'
  wrong.write_text(json.dumps({'image/key': 'a', 'de': {'captions': ['rot']}}) + '\n')
  with pytest.raises(UserError, match=r"have \['captions'\], no 'caption'"):
    xm3600.read_xm3600(str(wrong), ['de'])


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  return os.path.dirname(inference_run.build(str(tmp_path_factory.mktemp('inference'))))


def _recall(text_emb, image_emb, ks=(1, 5, 10)):
  """One caption per image, text i describes image i; rank = wrong candidates scoring >= the
  correct one (README: ties count against the model)."""
  s = text_emb @ image_emb.T
  n, out = len(s), {}
  t2i = [(np.delete(s[q], q) >= s[q, q]).sum() for q in range(n)]
  i2t = [(np.delete(s[:, q], q) >= s[q, q]).sum() for q in range(n)]
  for k in ks:
    out[f'image_retrieval_recall@{k}'] = float(np.mean(np.array(t2i) < k))
    out[f'text_retrieval_recall@{k}'] = float(np.mean(np.array(i2t) < k))
  return out


def _captions_argv(run_dir, out, captions, images) -> list[str]:
  """README's `mlit eval` of your own pairs (eval/captions.gin, named 'mine') on the run."""
  return [
    f'--gin_file={os.path.join(run_dir, "train", "config.gin")}',
    '--gin_file=eval/captions.gin',
    f'--gin.RUN_DIR="{out}"',
    f'--gin.CAPTIONS="{captions}"',
    f'--gin.CAPTION_IMAGES="{images}"',
    '--gin.CAPTIONS_NAME="mine"',
    f'--gin.EVAL_IMAGE_SIZE={inference_run.SIZE}',
  ]


def _eval_from(directory, argv):
  """`mlit eval ARGV` run from `directory`."""
  cwd = os.getcwd()
  os.chdir(directory)
  try:
    assert run.main(argv) == 0
  finally:
    os.chdir(cwd)


def test_readme_wit_command_on_a_run_tuned_on_precomputed_embeddings(run_dir, tmp_path, caplog):
  """The command as the README prints it, on a Lu run like the demo's (no image tower in the
  checkpoint): the locked tower and text length come from the run's mlit_model.json, an
  undecodable image is left out and named, and the numbers equal mlit.load's."""
  caplog.set_level(logging.INFO)
  data, images = tmp_path / 'wit', tmp_path / 'wit' / 'images'
  images.mkdir(parents=True)
  _hostile_wit(str(data / 'wit_v1.test.all-00000-of-00001.tsv.gz'))
  paths = []
  for i, (_, rgb) in enumerate(COLOURS):
    paths.append(str(images / f'{hashlib.sha256(_url(i).encode()).hexdigest()}.png'))
    Image.fromarray(inference_run.colour_image(rgb, np.random.default_rng(i))).save(paths[-1])
  # Line 7 repeats _url(0); add one more German row whose stored image is no image file.
  bad_url = 'https://upload.wikimedia.org/kaputt.png'
  (images / f'{hashlib.sha256(bad_url.encode()).hexdigest()}.png').write_bytes(b'no png')
  _write_wit(
    str(data / 'wit_v1.test.all-00001-of-00001.tsv.gz'),
    [_wit_row(language='de', image_url=bad_url, caption_reference_description='kaputt')],
  )
  model = mlit.load(run_dir)  # the embeddings anyone recomputes the scores from
  want = _recall(model.encode_text([names[DE] for names, _ in COLOURS]), model.encode_image(paths))
  out = tmp_path / 'eval_wit'
  argv = [
    f'--gin_file={os.path.join(run_dir, "train", "config.gin")}',
    '--gin_file=eval/wit.gin',
    f'--gin.RUN_DIR="{out}"',
    f'--gin.WIT_FILES="{data}/wit_v1.test.all-*.tsv.gz"',
    f'--gin.WIT_IMAGES="{images}"',
    f'--gin.EVAL_IMAGE_SIZE={inference_run.SIZE}',
  ]
  # Not the run's working directory: its config names the tower relatively.
  _eval_from(tmp_path, argv)
  results = json.loads((out / 'results.json').read_text())
  meta = results['meta']['de']['wit/retrieval']
  assert meta['n_examples'] == meta['n_images'] == len(COLOURS)
  assert meta['n_images_unreadable'] == 1 and meta['n_images_missing'] == 0
  assert meta['skipped_in_files'] == {'no_language': 1, 'wrong_column_count': 1}
  assert meta['text']['text_length'] == 8  # the run's, not eval/common.gin's old 16
  assert any('1 images cannot be decoded' in r.getMessage() for r in caplog.records)

  assert results['languages']['de']['wit/retrieval'] == want


def test_own_pairs_with_eval_captions_gin_beside_webdataset_sidecars(run_dir, tmp_path):
  """README's evaluation of your own pairs (eval/captions.gin: XM3600's format under your name)
  on a folder extracted from a webdataset shard, where <key>.txt and <key>.json sit beside
  <key>.jpg: the image wins its stem, and the scores equal mlit.load's."""
  images = tmp_path / 'mine_eval'
  images.mkdir()
  lines, paths = [], []
  for i, (names, rgb) in enumerate(COLOURS):
    key = f'{i:09d}'
    (images / f'{key}.json').write_text(json.dumps({'key': key, 'language': 'de'}))
    (images / f'{key}.txt').write_text(names[DE], encoding='utf-8')
    paths.append(str(images / f'{key}.png'))
    Image.fromarray(inference_run.colour_image(rgb, np.random.default_rng(i))).save(paths[-1])
    lines.append(json.dumps({'image/key': key, 'de': {'caption': [names[DE]]}}))
  (tmp_path / 'captions.jsonl').write_text('\n'.join(lines) + '\n', encoding='utf-8')
  model = mlit.load(run_dir)
  want = _recall(model.encode_text([names[DE] for names, _ in COLOURS]), model.encode_image(paths))
  out = tmp_path / 'eval_mine'
  argv = _captions_argv(run_dir, out, tmp_path / 'captions.jsonl', images)
  _eval_from(tmp_path, argv)
  results = json.loads((out / 'results.json').read_text())
  assert results['languages']['de'] == {'mine/retrieval': want}
  assert results['meta']['de']['mine/retrieval']['n_images'] == len(COLOURS)
  with pytest.raises(UserError, match='retrieval name'):
    run.main([*argv[:-2], '--gin.CAPTIONS_NAME="mine/x"'])


def test_a_caption_of_several_images_is_scored_both_ways(run_dir, tmp_path):
  """Your own pairs where one string captions several images (two red images, both 'rot'):
  image->text counts both wrong at R@1 (the string ties with itself), the meta counts the shared
  texts and scores them merged, and the merged scores equal a NumPy computation from mlit.load's
  embeddings; the report says so."""
  images = tmp_path / 'mine_eval'
  images.mkdir()
  captions = [names[DE] for names, _ in COLOURS] + [COLOURS[0][0][DE]]  # a second red image
  colours = [rgb for _, rgb in COLOURS] + [COLOURS[0][1]]
  lines, paths = [], []
  for i, (caption, rgb) in enumerate(zip(captions, colours)):
    paths.append(str(images / f'k{i}.png'))
    Image.fromarray(inference_run.colour_image(rgb, np.random.default_rng(i))).save(paths[-1])
    lines.append(json.dumps({'image/key': f'k{i}', 'de': {'caption': [caption]}}))
  (tmp_path / 'captions.jsonl').write_text('\n'.join(lines) + '\n', encoding='utf-8')
  out = tmp_path / 'eval_mine'
  _eval_from(tmp_path, _captions_argv(run_dir, out, tmp_path / 'captions.jsonl', images))
  results = json.loads((out / 'results.json').read_text())
  meta = results['meta']['de']['mine/retrieval']
  assert meta['n_texts_shared'] == 2
  model = mlit.load(run_dir)
  distinct = sorted(set(captions))
  s = model.encode_text(distinct) @ model.encode_image(paths).T  # [strings, images]
  column = [distinct.index(c) for c in captions]
  mine = np.array([[captions[i] == d for i in range(len(paths))] for d in distinct])  # [S, I]
  # Text -> image, merged: each text's images are every image its string captions.
  t2i = [(s[c][~mine[c]] >= s[c][mine[c]].max()).sum() for c in column]
  # Image -> text, merged: an image's texts are every copy of its string.
  i2t = [(s[column][:, i][~mine[column, i]] >= s[column[i], i]).sum() for i in range(len(paths))]
  for k in (1, 5, 10):
    got = meta['shared_texts_merged']
    assert got[f'image_retrieval_recall@{k}'] == float(np.mean(np.array(t2i) < k))
    assert got[f'text_retrieval_recall@{k}'] == float(np.mean(np.array(i2t) < k))
  # The headline: the two red images tie on 'rot' and count wrong at image->text R@1.
  headline = results['languages']['de']['mine/retrieval']['text_retrieval_recall@1']
  assert headline <= (len(paths) - 2) / len(paths) < got['text_retrieval_recall@1']
  assert report.main([str(out)]) == 0
  text = (out / 'report' / 'report.md').read_text(encoding='utf-8')
  assert '## Texts that caption several images' in text
  assert f'| 2 of {len(paths)} |' in text
  assert (
    '- mine I→T R@1: in 1 language some texts caption several images, which lowers this score '
    'whatever the model does' in text
  )


def test_export_puts_an_evaluation_of_its_step_in_the_model_card(run_dir, tmp_path, capsys):
  """README's own-pairs walk evaluates into its own RUN_DIR, which the exported model card did
  not find ('No results.json found beside the run'): `--results` names it, and a results.json
  of another step, given or beside the run, never stands for this tower's scores."""
  images = tmp_path / 'mine_eval'
  images.mkdir()
  lines = []
  for i, (names, rgb) in enumerate(COLOURS + COLOURS[:1]):  # 'rot' captions two images
    Image.fromarray(inference_run.colour_image(rgb, np.random.default_rng(i))).save(
      images / f'k{i}.png'
    )
    lines.append(json.dumps({'image/key': f'k{i}', 'de': {'caption': [names[DE]]}}))
  (tmp_path / 'captions.jsonl').write_text('\n'.join(lines) + '\n', encoding='utf-8')
  evaluated = tmp_path / 'eval_mine'
  _eval_from(tmp_path, _captions_argv(run_dir, evaluated, tmp_path / 'captions.jsonl', images))
  results = json.loads((evaluated / 'results.json').read_text())
  step = mlit.load(run_dir).step
  assert results['model']['name'].split('+')[0].endswith(f'@{step}')
  out = tmp_path / 'hf'
  argv = ['export', '--model', run_dir, '--format', 'transformers', '--out', str(out)]
  assert cli.main([*argv, '--results', str(evaluated)]) == 0
  card = (out / 'README.md').read_text(encoding='utf-8')
  assert f'Mean over languages (`results.json` of `mlit eval` on step {step}):' in card
  for name, value in results['macro']['mine/retrieval'].items():
    shown = f'{value:.4f}' if isinstance(value, float) else str(value)
    assert f'| mine/retrieval | {name} | {shown} |' in card
  merged = results['meta']['de']['mine/retrieval']['shared_texts_merged']
  assert (
    'mine/retrieval: in 1 of 1 languages some texts caption several images; a string ties '
    'with itself for each of its images, and ties count against the model. With each such text '
    'counted as a caption of each of its images: image_retrieval_recall@1 '
    f'{merged["image_retrieval_recall@1"]:.4f}, text_retrieval_recall@1 '
    f'{merged["text_retrieval_recall@1"]:.4f}.'
  ) in card
  # Another step's scores: refused when given, left out (and said) when beside the run.
  other = dict(results, model=dict(results['model'], name=f'mlit:{run_dir}@{step + 7}'))
  (tmp_path / 'other.json').write_text(json.dumps(other))
  capsys.readouterr()
  assert cli.main([*argv, '--results', str(tmp_path / 'other.json')]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith(f'mlit export: error: --results {tmp_path / "other.json"}: ') and (
    f'(step {step + 7}), not step {step} of ' in err
  ), err
  assert len(err.splitlines()) == 1
  assert (
    cli.main(
      [*argv[:-2], '--format', 't5x', '--out', str(tmp_path / 't5x'), '--results', str(evaluated)]
    )
    == 2
  )
  assert 'only --format transformers writes a model card' in capsys.readouterr().err
  copy = tmp_path / 'run_copy'
  shutil.copytree(run_dir, copy)
  (copy / 'results.json').write_text(json.dumps(other))
  assert (
    cli.main(
      ['export', '--model', str(copy), '--format', 'transformers', '--out', str(tmp_path / 'hf2')]
    )
    == 0
  )
  card = (tmp_path / 'hf2' / 'README.md').read_text(encoding='utf-8')
  assert f'scored step {step + 7}, not this step ({step}): left out.' in card
  assert '| mine/retrieval |' not in card
  # A damaged one: one warning line, and the export goes on without scores.
  (copy / 'results.json').write_text('{broken')
  capsys.readouterr()
  assert (
    cli.main(
      ['export', '--model', str(copy), '--format', 'transformers', '--out', str(tmp_path / 'hf3')]
    )
    == 0
  )
  err = capsys.readouterr().err
  assert (
    f'mlit export: warning: {copy / "results.json"} is not JSON (' in err and 'Traceback' not in err
  )
  card = (tmp_path / 'hf3' / 'README.md').read_text(encoding='utf-8')
  assert 'The results.json beside the run is not JSON: left out.' in card
