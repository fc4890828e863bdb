"""Short `mlit.training.train` runs on each kind of task written by the tests (YFCC joint and
per-batch signals, CC12M with backtranslation, WIT), plus MODEL_DIR/data_stats.json.

One data directory and one SentencePiece model serve every run. The YFCC joint run goes
through `python -m mlit.training.train` in a subprocess (the command line, and a prompt exit with
a generator-backed input); the others call `mlit.training.train.main` in this process, so they
share its imports.
"""

import json
import os

import local_processes
import numpy as np
import pytest
import task_files
from spm_fixture import spm_model_path  # noqa: F401

import gin
from mlit.training import train
from tasks import backtranslation, image_store
from tasks.user_error import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 8  # examples per task
BT_PROBABILITY = 0.3

_GIN = """
from __gin__ import dynamic_registration
import tasks.registration
import tasks.{module}
import tasks.vocabularies
import tasks.image_preprocessors
from mlit.training import train

include 'local_tiny.gin'
include 'setups/uu.gin'
{includes}
tasks.vocabularies.vocabulary.path = '{spm}'
tasks.{module}.{register}.tsv_pattern = '{pattern}'
tasks.{module}.{register}.image_dir = '{images}'
tasks.registration.register_tasks.registrations = [@tasks.{module}.{register}]
tasks.registration.registered_task.name = '{task}'
MIXTURE_OR_TASK_NAME = @tasks.registration.registered_task()
TASK_FEATURE_LENGTHS = {lengths}
IMAGE_TOWER = {{'width': 16, 'depth': 1, 'mlp_dim': 32, 'num_heads': 2, 'patch_size': (8, 8)}}
tasks.image_preprocessors.decode_image.size = 16
TRAIN_STEPS = {steps}
WARMUP_STEPS = 1
BATCH_SIZE = {batch}
train.train.log_period = 1
{extra}
"""
_SIGNAL_LENGTHS = "{'title': 8, 'description': 8, 'tags': 8}"


@pytest.fixture(scope='module')
def data(tmp_path_factory, spm_model_path):  # noqa: F811
  d = str(tmp_path_factory.mktemp('e2e'))
  img = os.path.join(d, 'img')
  long_description = ' '.join(['Harbour at dusk'] * 8)  # always cut at 8 tokens
  yfcc = [
    task_files.yfcc_row(10 + i, f'Boat {i}', long_description, ['sea', 'boat'], line=i)
    for i in range(N)
  ]
  yfcc.insert(3, 'only\tthree\tcolumns')  # skipped: wrong_column_count
  yfcc.insert(5, task_files.yfcc_row(99, '', '', []))  # skipped: all_signals_empty
  task_files.write_lines(os.path.join(d, 'yfcc.tsv.gz'), yfcc)
  urls = [f'http://example.com/{i}.jpg' for i in range(N)]
  task_files.write_lines(
    os.path.join(d, 'cc12m.tsv'), [f'{u}\ta dog on the beach {i}' for i, u in enumerate(urls)]
  )
  wit_urls = [f'http://w/{i}.jpg' for i in range(N)]
  task_files.write_wit(
    os.path.join(d, 'wit_v1.train.all-00000-of-00001.tsv.gz'),
    [task_files.wit_row('de', u, reference=f'Ein Hund {i}') for i, u in enumerate(wit_urls)],
  )
  ids = (
    [str(10 + i) for i in range(N)]
    + [image_store.url_id(u) for u in urls]
    + [image_store.url_id(u) for u in wit_urls]
  )
  for i, image_id in enumerate(ids):
    task_files.write_image(os.path.join(img, f'{image_id}.jpg'), (10 * i, 90, 40))
  # Backtranslation candidates of every CC12M caption, as `mlit backtranslate` writes them.
  bt_dir = os.path.join(d, 'bt')
  os.makedirs(bt_dir)
  with open(os.path.join(bt_dir, 'candidates-00000.jsonl'), 'w') as f:
    for i, u in enumerate(urls):
      f.write(
        json.dumps(
          {
            'id': image_store.url_id(u),
            'text': f'a dog on the beach {i}',
            'candidates': [
              {
                'pivot': 'es',
                'text': f'a dog at the beach {i}',
                'chrf': 70.0,
                'bleu': 40.0,
                'verdict': 'kept',
              }
            ],
          }
        )
        + '\n'
      )
  return {'dir': d, 'img': img, 'spm': spm_model_path, 'bt': bt_dir}


def _gin(
  data,
  name,
  *,
  module,
  register,
  pattern,
  task,
  lengths="{'text': 8}",
  includes='',
  extra='',
  steps=2,
  batch=4,
):
  path = os.path.join(data['dir'], f'{name}.gin')
  with open(path, 'w') as f:
    f.write(
      _GIN.format(
        module=module,
        register=register,
        pattern=pattern,
        task=task,
        lengths=lengths,
        includes=includes,
        extra=extra,
        steps=steps,
        batch=batch,
        spm=data['spm'],
        images=data['img'],
      )
    )
  return path


def _args(gin_path, model_dir):
  return [
    f'--gin_search_paths={ROOT}/gin',
    f'--gin_file={gin_path}',
    f'--gin.MODEL_DIR="{model_dir}"',
  ]


def _train_here(gin_path, model_dir):
  try:
    assert train.main(_args(gin_path, model_dir)) == 0
  finally:
    gin.clear_config()
  return _metrics(model_dir)


def _wit_gin(data, name, task, extra):
  """A run file of the fixture's WIT rows (German) and images."""
  pattern = f'{data["dir"]}/wit_v1.train.*.tsv.gz'
  return _gin(
    data, name, module='wit', register='register_wit', pattern=pattern, task=task, extra=extra
  )


def _train_error(gin_path, model_dir) -> str:
  """The UserError a run of gin_path stops with, before any step (its first line: gin adds
  one naming the configurable)."""
  try:
    with pytest.raises(UserError) as e:
      train.main(_args(gin_path, model_dir))
  finally:
    gin.clear_config()
  return str(e.value).splitlines()[0]


def _metrics(model_dir):
  with open(os.path.join(model_dir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  assert all(np.isfinite(r['loss']) for r in records)
  return records


@pytest.mark.slow
def test_yfcc_joint_command_line_writes_data_stats(data):
  """The YFCC task from the command line on two processes, each reading one of two files (one
  run of each kind would double the test's time; one process is the common case of the same
  code). data_stats.json had process 0's file only (corpus: 1 file, 5 rows) and its half of each
  batch's texts; now the run's, as is the truncation warning's count."""
  rows = [
    task_files.yfcc_row(10 + i, f'Boat {i}', 'Harbour at dusk ' * 8, ['sea'], line=i)
    for i in range(N)
  ]
  task_files.write_lines(
    os.path.join(data['dir'], 'split-0.tsv.gz'), rows[:4] + ['only\tthree\tcolumns']
  )
  task_files.write_lines(
    os.path.join(data['dir'], 'split-1.tsv.gz'), rows[4:] + [task_files.yfcc_row(99, '', '', [])]
  )
  gin_path = _gin(
    data,
    'yfcc_split',
    module='yfcc',
    register='register_yfcc',
    pattern=f'{data["dir"]}/split-*.tsv.gz',
    task='yfcc100m_full',
    lengths=_SIGNAL_LENGTHS,
    extra='tasks.yfcc.register_yfcc.detect_languages = False',
  )
  model_dir = os.path.join(data['dir'], 'run_two_processes')
  env = {**os.environ, 'PYTHONPATH': ROOT, 'CUDA_VISIBLE_DEVICES': ''}
  procs = local_processes.start_training(_args(gin_path, model_dir), env)
  errs = [p.communicate(timeout=600)[1] for p in procs]
  for p, err in zip(procs, errs):
    assert p.returncode == 0, err[-3000:]
  last = _metrics(model_dir)[-1]
  assert last['step'] == 2
  assert {'title/loss', 'description/loss', 'tags/loss'} <= set(last)  # three losses
  with open(os.path.join(model_dir, 'data_stats.json')) as f:
    stats = json.load(f)
  # Rows are re-read every epoch (the shuffle buffer reads ahead): one of each per pass.
  skipped = stats['skipped_rows']
  assert set(skipped) == {'wrong_column_count', 'all_signals_empty'}
  assert min(skipped.values()) >= 1 and stats['kept_rows']['yfcc100m'] >= N
  # The corpus once (whatever the input re-read), and what the two steps of 4 consumed.
  assert stats['corpus'] == {
    'yfcc100m': {
      'files_read': 2,
      'rows': N + 2,
      'kept': N,
      'skipped': {'wrong_column_count': 1, 'all_signals_empty': 1},
    }
  }
  assert stats['consumed'] == {'steps': 2, 'examples': 8, 'batch_size': 4}
  # Texts of the batches trained on: 2 steps x 4; every description was cut.
  assert stats['texts']['description'] == {'n_texts': 8, 'n_truncated': 8, 'truncated_share': 1.0}
  assert stats['texts']['title']['n_truncated'] == 0
  # And the run says so, once, at its end (fewer than 1,000 texts), counting every process's
  # texts (it said 'the first 4', process 0's half): the titles are not named.
  assert errs[0].count("warning: 100% of the first 8 'description' texts were longer than its") == 1
  assert "'title' texts" not in errs[0]


@pytest.mark.slow
def test_yfcc_per_batch_signal_through_the_trainer(data):
  gin_path = _gin(
    data,
    'yfcc_per_batch',
    module='yfcc',
    register='register_yfcc',
    pattern=f'{data["dir"]}/yfcc.tsv.gz',
    task='yfcc100m_full',
    includes="include 'yfcc_per_batch.gin'",
    lengths=_SIGNAL_LENGTHS,
    extra='tasks.yfcc.register_yfcc.detect_languages = False',
  )
  model_dir = os.path.join(data['dir'], 'run_yfcc_per_batch')
  last = _train_here(gin_path, model_dir)[-1]
  # One 'text' per batch (picked from the three signals), one loss.
  assert 'text/loss' in last and 'title/loss' not in last
  with open(os.path.join(model_dir, 'config.gin')) as f:
    assert 'select_signal_per_batch' in f.read()
  with open(os.path.join(model_dir, 'data_stats.json')) as f:
    assert json.load(f)['texts']['tags']['n_texts'] == 8
  # The mode bound without the file's batch transform: one line, not a joint run.
  gin_path = _gin(
    data,
    'yfcc_per_batch_alone',
    module='yfcc',
    register='register_yfcc',
    pattern=f'{data["dir"]}/yfcc.tsv.gz',
    task='yfcc100m_full',
    lengths=_SIGNAL_LENGTHS,
    extra='tasks.yfcc.register_yfcc.detect_languages = False\n'
    "tasks.yfcc.register_yfcc.mode = 'per_batch'",
  )
  error = _train_error(gin_path, os.path.join(data['dir'], 'run_per_batch_alone'))
  assert error.endswith(
    'include yfcc_per_batch.gin (--gin_file=yfcc_per_batch.gin after the run file), or the run '
    'trains the three signals summed (joint)'
  )


def _cc12m_bt_gin(data, name, candidates_dir, steps, batch):
  return _gin(
    data,
    name,
    module='cc12m',
    register='register_cc12m',
    pattern=f'{data["dir"]}/cc12m.tsv',
    task='cc12m',
    includes="include 'augment/backtranslation.gin'",
    steps=steps,
    batch=batch,
    extra=f"BT_CANDIDATES_DIR = '{candidates_dir}'\nBT_PROBABILITY = {BT_PROBABILITY}",
  )


@pytest.mark.slow
def test_cc12m_with_backtranslation_logs_the_rate(data, capsys):
  steps, batch = 6, 32
  model_dir = os.path.join(data['dir'], 'run_cc12m_bt')
  records = _train_here(_cc12m_bt_gin(data, 'cc12m_bt', data['bt'], steps, batch), model_dir)
  rates = [r['bt_fired_rate'] for r in records]
  assert len(rates) == steps
  # Binomial over steps x batch captions (sd about 0.033): a 4.5-sd bound.
  assert abs(np.mean(rates) - BT_PROBABILITY) < 0.15, rates
  # The run's shares so far: every caption has a kept round trip in the fixture.
  assert records[-1]['bt_candidates_share'] == 1.0
  with open(os.path.join(model_dir, 'data_stats.json')) as f:
    bt = json.load(f)['backtranslation']
  assert bt['texts'] >= steps * batch and bt['with_candidates'] == bt['texts']
  assert bt['replaced_share'] == bt['replaced'] / bt['texts']
  assert abs(bt['replaced_share'] - BT_PROBABILITY) < 0.15, bt
  err = capsys.readouterr().err
  assert f'backtranslation: p = {BT_PROBABILITY}; 8 texts with 8 kept round trips in' in err
  assert '% of texts so far (100% have candidates)' in err
  assert 'warning: backtranslation' not in err


def test_backtranslation_at_probability_zero_says_it_is_off(data, capsys):
  gin_path = _gin(
    data,
    'cc12m_bt_off',
    module='cc12m',
    register='register_cc12m',
    pattern=f'{data["dir"]}/cc12m.tsv',
    task='cc12m',
    includes="include 'augment/backtranslation.gin'",
    extra=f"BT_CANDIDATES_DIR = '{data['bt']}'\nBT_PROBABILITY = 0.0",
  )
  _train_here(gin_path, os.path.join(data['dir'], 'run_cc12m_bt_off'))
  err = capsys.readouterr().err
  assert 'backtranslation: off (BT_PROBABILITY = 0 with augment/backtranslation.gin)' in err


@pytest.mark.slow
def test_backtranslation_whose_ids_match_no_text_warns(data, tmp_path, capsys, monkeypatch):
  # Candidates keyed by the captions' text instead of the task's example ids (url hashes).
  wrong = tmp_path / 'bt_by_text'
  wrong.mkdir()
  with open(os.path.join(data['bt'], 'candidates-00000.jsonl')) as f:
    records = [json.loads(line) for line in f]
  (wrong / 'candidates-00000.jsonl').write_text(
    ''.join(json.dumps(dict(r, id=r['text'])) + '\n' for r in records)
  )
  monkeypatch.setattr(backtranslation, '_COVERAGE_CHECK_TEXTS', 64)
  model_dir = os.path.join(data['dir'], 'run_cc12m_bt_wrong_ids')
  # The shapes and schedule of the run above: its compiled step comes from the session's XLA cache.
  records = _train_here(_cc12m_bt_gin(data, 'cc12m_bt_wrong', wrong, 6, 32), model_dir)
  assert [r['bt_candidates_share'] for r in records] == [0.0] * 6
  err = capsys.readouterr().err
  warnings = [l for l in err.splitlines() if 'warning: backtranslation' in l]
  assert len(warnings) == 1, err  # once, not at every log line
  assert f'none of the first 64 texts has a kept round trip in {wrong}' in warnings[0]


@pytest.mark.slow
def test_backtranslation_of_another_language_is_counted_not_used(
  data, tmp_path, capsys, monkeypatch
):
  """A job run with --source en on German WIT texts ('Ein Hund 3' read as English): its round
  trips are mangled German, so the German examples keep their text, and the run counts them
  (other_language) and says so once."""
  bt = tmp_path / 'bt_en'
  bt.mkdir()
  rows = [
    {
      'id': image_store.url_id(f'http://w/{i}.jpg'),
      'text': f'Ein Hund {i}',
      'candidates': [
        {'pivot': 'ca', 'text': f'A Hund {i}', 'chrf': 60.0, 'bleu': 30.0, 'verdict': 'kept'}
      ],
    }
    for i in range(N)
  ]
  (bt / 'candidates-00000.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  (bt / 'job.json').write_text(json.dumps({'source': 'en', 'pivots': ['ca']}))
  monkeypatch.setattr(backtranslation, '_COVERAGE_CHECK_TEXTS', 64)
  gin_path = _gin(
    data,
    'wit_bt_en',
    module='wit',
    register='register_wit',
    pattern=f'{data["dir"]}/wit_v1.train.*.tsv.gz',
    task='wit_reference.de',
    includes="include 'augment/backtranslation.gin'",
    steps=6,
    batch=32,
    extra=f"BT_CANDIDATES_DIR = '{bt}'\nBT_PROBABILITY = 1.0\n"
    "tasks.wit.register_wit.languages = ['de']",
  )
  model_dir = os.path.join(data['dir'], 'run_wit_bt_en')
  records = _train_here(gin_path, model_dir)
  assert [r['bt_fired_rate'] for r in records] == [0.0] * 6  # p = 1, yet none replaced
  with open(os.path.join(model_dir, 'data_stats.json')) as f:
    counts = json.load(f)['backtranslation']
  assert counts['other_language'] == counts['texts'] >= 6 * 32
  assert counts['with_candidates'] == counts['replaced'] == counts['other_text'] == 0
  err = capsys.readouterr().err
  assert f'kept round trips in {bt}, translated from en' in err
  warnings = [l for l in err.splitlines() if 'warning: backtranslation' in l]
  assert len(warnings) == 1, err
  assert warnings[0].startswith(
    'warning: backtranslation: 64 of the first 64 texts have round trips in '
    f'{bt} but are in another language than the one it translated from (--source)'
  )


@pytest.mark.slow
def test_wit_reference_task(data):
  gin_path = _wit_gin(data, 'wit', 'wit_reference.de', "tasks.wit.register_wit.languages = ['de']")
  records = _train_here(gin_path, os.path.join(data['dir'], 'run_wit'))
  assert [r['step'] for r in records] == [1, 2]
  assert 'bt_fired_rate' not in records[-1]  # no substitution without the gin file


def test_a_language_without_rows_says_so_when_the_task_runs_dry(data):
  """WIT rows of de only, a task of fr: the readers keep every row and the language filter lets
  none through; the line says so instead of only 'rows kept N'."""
  gin_path = _wit_gin(
    data, 'wit_fr', 'wit_reference.fr', "tasks.wit.register_wit.languages = ['fr']"
  )
  error = _train_error(gin_path, os.path.join(data['dir'], 'run_wit_fr'))
  assert error.startswith("task 'wit_reference.fr' ran out of data at step 0: rows kept ")
  assert "none came out of its steps after them (a per-language task's filter" in error


@pytest.mark.slow
def test_a_mixture_of_cc12m_and_wit_trains_without_the_language_only_wit_gives(data, caplog):
  """register_mixture over CC12M (no language feature) and WIT (one): the mixture is read
  without the language, with a warning naming it, instead of tf.data's traceback."""
  gin_path = _gin(
    data,
    'cc_wit',
    module='cc12m',
    register='register_cc12m',
    pattern=f'{data["dir"]}/cc12m.tsv',
    task='cc12m_wit',
    extra=f"""
import tasks.wit
tasks.wit.register_wit.tsv_pattern = '{data['dir']}/wit_v1.train.*.tsv.gz'
tasks.wit.register_wit.image_dir = '{data['img']}'
tasks.registration.register_tasks.registrations = [
    @tasks.cc12m.register_cc12m, @tasks.wit.register_wit, @tasks.registration.register_mixture]
tasks.registration.register_mixture.name = 'cc12m_wit'
tasks.registration.register_mixture.tasks_and_rates = [('cc12m', 1.0), ('wit_reference', 1.0)]
""",
  )
  model_dir = os.path.join(data['dir'], 'run_cc_wit')
  assert [r['step'] for r in _train_here(gin_path, model_dir)] == [1, 2]
  warnings = [r.getMessage() for r in caplog.records if 'mixture' in r.getMessage()]
  assert warnings == [
    "mixture 'cc12m_wit': language not given by cc12m, so the mixture is read without it "
    '(language_stats.json counts none of its examples)'
  ]
  from tasks import registration  # pylint: disable=g-import-not-at-top

  with pytest.raises(UserError, match="'wit_referenc' is not registered"):
    registration.register_mixture('m', [('cc12m', 1.0), ('wit_referenc', 1.0)])
  with pytest.raises(UserError, match="'cc12m' rate 0 must be > 0"):
    registration.register_mixture('m', [('cc12m', 0)])


def test_a_task_without_images_names_itself_and_the_fix(data):
  gin_path = _wit_gin(
    data, 'wit_no_images', 'wit_reference', 'tasks.wit.register_wit.image_dir = None'
  )
  assert _train_error(gin_path, os.path.join(data['dir'], 'run_wit_no_images')) == (
    "task 'wit_reference' gives neither 'image' nor 'image_embedding': give its registration "
    "image_dir= or image_shards= (live images), or train a '*_precomputed' task of `mlit "
    'precompute` embeddings'
  )
