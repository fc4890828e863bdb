"""A few `python -m mlit.train` steps on each kind of task written by the tests."""

import json
import os
import subprocess
import sys

import pytest

import spm_fixture
import task_files
from tasks import image_store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_GIN = """
from __gin__ import dynamic_registration
import tasks.registration
import tasks.{module}
import tasks.vocabularies
import tasks.image_preprocessors

include 'local_tiny.gin'
include 'setups/uu.gin'
tasks.vocabularies.vocabulary.path = '{spm}'
tasks.{module}.{register}.tsv_pattern = '{pattern}'
tasks.{module}.{register}.image_dir = '{images}'
{extra}
tasks.registration.register_tasks.registrations = [@tasks.{module}.{register}]
tasks.registration.registered_task.name = '{task}'
MIXTURE_OR_TASK_NAME = @tasks.registration.registered_task()
TASK_FEATURE_LENGTHS = {lengths}
IMAGE_TOWER = {{'width': 16, 'depth': 1, 'mlp_dim': 32, 'num_heads': 2, 'patch_size': (8, 8)}}
tasks.image_preprocessors.decode_image.size = 16
TRAIN_STEPS = 3
WARMUP_STEPS = 1
BATCH_SIZE = 4
"""


def _yfcc(d):
  rows = [task_files.yfcc_row(10 + i, f"Boat {i}", "Harbour at dusk", ["sea", "boat"],
                              line=i) for i in range(8)]
  task_files.write_lines(os.path.join(d, "yfcc.tsv.gz"), rows)
  for i in range(8):
    task_files.write_image(os.path.join(d, "img", f"{10 + i}.jpg"), (20 * i, 90, 40))
  return dict(module="yfcc", register="register_yfcc", pattern=f"{d}/yfcc.tsv.gz",
              extra="tasks.yfcc.register_yfcc.detect_languages = False",
              task="yfcc100m_full",
              lengths="{'title': 8, 'description': 8, 'tags': 8}")


def _cc12m(d):
  urls = [f"http://example.com/{i}.jpg" for i in range(8)]
  task_files.write_lines(os.path.join(d, "cc12m.tsv"),
                         [f"{u}\ta dog on the beach {i}" for i, u in enumerate(urls)])
  for i, u in enumerate(urls):
    task_files.write_image(os.path.join(d, "img", image_store.url_id(u) + ".jpg"),
                           (20 * i, 90, 40))
  return dict(module="cc12m", register="register_cc12m", pattern=f"{d}/cc12m.tsv",
              extra="", task="cc12m", lengths="{'text': 8}")


def _wit(d):
  rows = [task_files.wit_row("de", f"http://w/{i}.jpg", reference=f"Ein Hund {i}")
          for i in range(8)]
  task_files.write_wit(os.path.join(d, "wit_v1.train.all-00000-of-00001.tsv.gz"), rows)
  for i in range(8):
    task_files.write_image(
        os.path.join(d, "img", image_store.url_id(f"http://w/{i}.jpg") + ".jpg"),
        (20 * i, 90, 40))
  return dict(module="wit", register="register_wit",
              pattern=f"{d}/wit_v1.train.*.tsv.gz",
              extra="tasks.wit.register_wit.languages = ['de']", task="wit_reference.de",
              lengths="{'text': 8}")


@pytest.mark.slow
@pytest.mark.parametrize("make", [_yfcc, _cc12m, _wit], ids=["yfcc", "cc12m", "wit"])
def test_train_steps_on_task(tmp_path, make):
  d = str(tmp_path)
  fields = make(d)
  spm = spm_fixture.train_tiny_spm(os.path.join(d, "spm"))
  gin_path = os.path.join(d, "run.gin")
  with open(gin_path, "w") as f:
    f.write(_GIN.format(spm=spm, images=os.path.join(d, "img"), **fields))
  model_dir = os.path.join(d, "run")
  env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": ""}
  proc = subprocess.run(
      [sys.executable, "-m", "mlit.train", f"--gin_search_paths={ROOT}/gin",
       f"--gin_file={gin_path}", f'--gin.MODEL_DIR="{model_dir}"'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(model_dir, "metrics.jsonl")) as f:
    last = [json.loads(line) for line in f][-1]
  assert last["step"] == 3
  loss = last.get("loss", last.get("train/loss"))
  assert loss is not None and loss == loss  # finite, not NaN
