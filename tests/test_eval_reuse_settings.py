"""`mlit eval` into the same RUN_DIR reuses a per_task score only when it was made from the same
data files, image size and prompts: a score computed on other files (or at another
EVAL_IMAGE_SIZE) is evaluated again, never mixed into results.json with the fresh ones."""

import json
import logging
import os
import re
import shutil

import inference_run
import numpy as np
import pytest
from PIL import Image

from eval_multilingual import run

DE, EN = 1, 0  # indexes of German and English in inference_run.COLOURS' names


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  return os.path.dirname(inference_run.build(str(tmp_path_factory.mktemp('inference'))))


def _captions(root, n):
  """The first n colours as images, captioned in German and English (XM3600's format)."""
  (root / 'images').mkdir(exist_ok=True)
  lines = []
  for i, (names, rgb) in enumerate(list(inference_run.COLOURS.items())[:n]):
    key = f'{i:04d}'
    image = inference_run.colour_image(rgb, np.random.default_rng(i))
    Image.fromarray(image).save(root / 'images' / f'{key}.png')
    row = {'image/key': key, 'de': {'caption': [names[DE]]}, 'en': {'caption': [names[EN]]}}
    lines.append(json.dumps(row, ensure_ascii=False))
  (root / 'captions.jsonl').write_text('\n'.join(lines) + '\n', encoding='utf-8')


def _eval(run_dir, root, *bindings, config=None):
  return run.main(
    [
      f'--gin_file={config or os.path.join(run_dir, "train", "config.gin")}',
      '--gin_file=eval/captions.gin',
      f'--gin.RUN_DIR="{root / "eval"}"',
      f'--gin.CAPTIONS="{root / "captions.jsonl"}"',
      f'--gin.CAPTION_IMAGES="{root / "images"}"',
      f'--gin.EVAL_IMAGE_SIZE={inference_run.SIZE}',
      *bindings,
    ]
  )


def _results(root):
  return json.loads((root / 'eval' / 'results.json').read_text(encoding='utf-8'))


def _n_examples(root):
  meta = _results(root)['meta']
  return {lang: m['captions/retrieval']['n_examples'] for lang, m in meta.items()}


def test_a_score_of_other_data_files_is_not_reused(run_dir, tmp_path, caplog):
  _captions(tmp_path, 3)
  assert _eval(run_dir, tmp_path) == 0
  assert _n_examples(tmp_path) == {'de': 3, 'en': 3}
  _captions(tmp_path, 4)  # the captions file grows by an image
  caplog.set_level(logging.INFO)
  assert _eval(run_dir, tmp_path, '--gin.run.evaluate.languages="de"') == 0
  assert 'de.json: evaluated with other files; evaluating it again' in caplog.text
  # en was scored on the old file: left out, not kept beside de's fresh score.
  assert _n_examples(tmp_path) == {'de': 4}
  caplog.clear()
  assert _eval(run_dir, tmp_path) == 0
  assert '1 of 2 evaluations reused' in caplog.text
  assert _n_examples(tmp_path) == {'de': 4, 'en': 4}


def test_the_image_size_is_a_setting_of_the_scores(tmp_path):
  """The demo's EfficientNet tower has one fingerprint at every size: the size must be recorded
  beside it (the reason named in the warning)."""
  from eval_multilingual import evaluations

  _captions(tmp_path, 2)
  at = {
    size: evaluations.RetrievalEvaluation(
      'xm3600', str(tmp_path / 'captions.jsonl'), str(tmp_path / 'images'), image_size=size
    ).settings()
    for size in (160, 224)
  }
  assert run._changed(at[160], at[224]) == 'image_size 160, now 224'
  assert run._changed(at[224], at[224]) == ''


def test_an_image_folder_without_the_images_is_one_line(run_dir, tmp_path):
  """XM3600_IMAGES (here CAPTION_IMAGES) naming another folder: every image missing, which was
  exit 0 with an empty results.json."""
  from tasks.user_error import UserError

  _captions(tmp_path, 2)
  (tmp_path / 'other').mkdir()
  with pytest.raises(UserError, match='no score in any language of captions/retrieval: none of'):
    _eval(run_dir, tmp_path, f'--gin.CAPTION_IMAGES="{tmp_path / "other"}"')
  assert not (tmp_path / 'eval' / 'results.json').exists()


def test_a_run_evaluated_from_another_folder_keeps_its_tuning_counts(run_dir, tmp_path, caplog):
  """A run's config.gin names MODEL_DIR relative to the folder it trained in: evaluated from
  another folder, the encoder found the run beside config.gin, but the tuning counts were looked
  up at the relative MODEL_DIR: no language_stats.json in RUN_DIR, no tuning_counts in
  results.json, and not a word (the report then had no "Tuning examples")."""
  copy = tmp_path / 'elsewhere' / 'mine'
  shutil.copytree(os.path.dirname(run_dir), tmp_path / 'elsewhere', dirs_exist_ok=True)
  shutil.copytree(os.path.join(run_dir, 'train'), copy)
  config = copy / 'config.gin'
  config.write_text(re.sub(r'(?m)^MODEL_DIR = .*$', "MODEL_DIR = 'runs/mine'", config.read_text()))
  counts = {'de': {'n_train_examples': 7, 'source': 'trained batches'}}
  (copy / 'language_stats.json').write_text(json.dumps(counts))
  _captions(tmp_path, 2)
  caplog.set_level(logging.INFO)
  cwd = os.getcwd()
  os.chdir(tmp_path)  # no runs/mine here
  try:
    assert _eval(run_dir, tmp_path, config=config) == 0
  finally:
    os.chdir(cwd)
  assert f"MODEL_DIR 'runs/mine' (as {config} names it) is not here" in caplog.text
  assert json.loads((tmp_path / 'eval' / 'language_stats.json').read_text()) == counts
  assert _results(tmp_path)['tuning_counts']['source'] == 'trained batches'
