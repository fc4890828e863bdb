"""T5X-style gin command line: rewriting, search paths, clear errors."""

import logging
import os
import pathlib
import re

import pytest
from spm_fixture import spm_model_path  # noqa: F401

import gin
from mlit.commands import gin_flags

_BASE = """\
from __gin__ import dynamic_registration
import mlit.commands.gin_flags

MODEL_DIR = %gin.REQUIRED
NAME = 'config.gin'
mlit.commands.gin_flags.write_config.model_dir = %MODEL_DIR
mlit.commands.gin_flags.write_config.filename = %NAME
"""


@pytest.fixture(autouse=True)
def _clean_gin():
  yield
  gin.clear_config()


def _write(d: pathlib.Path, name: str, text: str) -> pathlib.Path:
  p = d / name
  p.parent.mkdir(parents=True, exist_ok=True)
  p.write_text(text)
  return p


def test_rewrite_gin_args():
  rest, b = gin_flags.rewrite_gin_args(
    [
      '--gin_file=a.gin',
      '--gin.MODEL_DIR="/tmp/x"',
      '--gin.TRAIN_STEPS=5',
      '--gin.train.seed=3',
      '--other',
    ]
  )
  assert rest == ['--gin_file=a.gin', '--other']
  assert b == ['MODEL_DIR = "/tmp/x"', 'TRAIN_STEPS = 5', 'train.seed = 3']
  with pytest.raises(gin_flags.GinConfigError, match='--gin.NAME=VALUE'):
    gin_flags.rewrite_gin_args(['--gin.MODEL_DIR'])


def test_flags_bind_macros_and_write_config(tmp_path):
  _write(tmp_path / 'g', 'base.gin', _BASE)
  model_dir = tmp_path / 'run'
  gin_flags.parse_flags(
    [
      '--gin_file=base.gin',
      f'--gin_search_paths={tmp_path / "g"}',
      f'--gin.MODEL_DIR="{model_dir}"',
      "--gin.NAME='c.gin'",
    ],
    'test',
  )
  # Every argument comes from gin (dynamic registration: call via gin).
  path = gin.get_configurable(gin_flags.write_config)()
  assert path == os.path.join(str(model_dir), 'c.gin')
  # The written file restores the macros (read back by gin: its printer wraps long values).
  gin.clear_config()
  gin.parse_config_file(path)
  assert gin.query_parameter('%MODEL_DIR') == str(model_dir)
  assert gin.query_parameter('%NAME') == 'c.gin'


def test_missing_required_macro_is_named(tmp_path):
  g = _write(tmp_path, 'base.gin', _BASE)
  with pytest.raises(gin_flags.GinConfigError, match=r'MODEL_DIR.*--gin.MODEL_DIR='):
    gin_flags.parse_flags([f'--gin_file={g}'], 'test')


_REGISTRATIONS = []


@gin.configurable
def counted_registration(name='yfcc100m_full'):
  _REGISTRATIONS.append(name)
  return name


def test_the_required_check_calls_no_configurable(tmp_path):
  """The %gin.REQUIRED check followed a macro by calling its value: `MIXTURE_OR_TASK_NAME =
  @registered_task()` registered every task at flag parsing (then again in the job), its errors
  dropped. A macro naming a required macro is still found."""
  g = _write(
    tmp_path,
    'run.gin',
    'MODEL_DIR = %gin.REQUIRED\nRUN_DIR = %MODEL_DIR\nTASK = @counted_registration()\n',
  )
  _REGISTRATIONS.clear()
  with pytest.raises(gin_flags.GinConfigError, match=r'not set: MODEL_DIR, RUN_DIR \('):
    gin_flags.parse_flags([f'--gin_file={g}'], 'test')
  gin.clear_config()
  gin_flags.parse_flags([f'--gin_file={g}', '--gin.MODEL_DIR="m"'], 'test')
  assert _REGISTRATIONS == []
  assert gin.query_parameter('TASK/macro.value').scoped_selector == 'counted_registration'


def test_unknown_macro_on_command_line(tmp_path):
  g = _write(tmp_path, 'base.gin', _BASE)
  with pytest.raises(gin_flags.GinConfigError, match=r"unknown macro 'MODLE_DIR'.*MODEL_DIR"):
    gin_flags.parse_flags([f'--gin_file={g}', '--gin.MODLE_DIR="/x"'], 'test')


def test_parameter_without_its_configurable_is_an_unknown_macro(tmp_path):
  """`--gin.keep_checkpoints=1` (for train.train.keep_checkpoints) is a new macro to gin, which
  nothing reads: refused like a misspelt macro, with how to bind a parameter."""
  g = _write(tmp_path, 'base.gin', _BASE)
  with pytest.raises(gin_flags.GinConfigError, match=r"unknown macro 'filename'.*configurable"):
    gin_flags.parse_flags([f'--gin_file={g}', '--gin.MODEL_DIR="/x"', '--gin.filename=1'], 'test')


def test_wrong_parameter_name_gets_no_quoting_hint(tmp_path):
  g = _write(tmp_path, 'base.gin', _BASE)
  with pytest.raises(gin_flags.GinConfigError) as e:
    gin_flags.parse_flags(
      [f'--gin_file={g}', '--gin.MODEL_DIR="/x"', '--gin.mlit.commands.gin_flags.write_config.x=1'],
      'test',
    )
  assert "doesn't have a parameter named 'x'" in str(e.value) and 'needs quotes' not in str(e.value)


def test_typo_in_gin_file_names_file_and_line(tmp_path):
  g = _write(tmp_path, 'bad.gin', _BASE + 'mlit.commands.gin_flags.write_config.fielname = 1\n')
  with pytest.raises(gin_flags.GinConfigError) as e:
    gin_flags.parse_flags([f'--gin_file={g}', '--gin.MODEL_DIR="/x"'], 'test')
  msg = str(e.value)
  assert 'fielname' in msg and 'bad.gin' in msg and 'line 8' in msg


def test_typo_in_binding_is_named(tmp_path):
  g = _write(tmp_path, 'base.gin', _BASE)
  with pytest.raises(gin_flags.GinConfigError, match='wirte_config'):
    gin_flags.parse_flags(
      [
        f'--gin_file={g}',
        '--gin.MODEL_DIR="/x"',
        '--gin.mlit.commands.gin_flags.wirte_config.filename=1',
      ],
      'test',
    )


def test_missing_file_lists_search_paths(tmp_path):
  with pytest.raises(gin_flags.GinConfigError, match='nope.gin.*search paths'):
    gin_flags.parse_flags(['--gin_file=nope.gin', f'--gin_search_paths={tmp_path}'], 'test')


def test_include_through_search_path(tmp_path):
  _write(tmp_path / 'g', 'base.gin', _BASE)
  _write(tmp_path / 'g', 'runs/child.gin', "include 'base.gin'\nNAME = 'x.gin'\n")
  gin_flags.parse_flags(
    ['--gin_file=runs/child.gin', '--gin.MODEL_DIR="/m"', f'--gin_search_paths={tmp_path / "g"}'],
    'test',
  )
  assert gin.query_parameter('NAME/macro.value') == 'x.gin'


def test_default_search_paths_find_repo_gin():
  repo_gin = pathlib.Path(gin_flags.__file__).resolve().parents[2] / 'gin'
  assert str(repo_gin) in gin_flags.default_search_paths()


_REQUIRED_FIG6 = [
  '--gin.MODEL_DIR="/m"',
  '--gin.IMAGE_CHECKPOINT_PATH="/b32.npz"',
  '--gin.YFCC_TSV_PATTERN="/y-*"',
  '--gin.YFCC_IMAGE_DIR="/img"',
]


@pytest.mark.parametrize(
  'name',
  sorted(
    p.name
    for p in (pathlib.Path(gin_flags.__file__).resolve().parents[2] / 'gin' / 'experiments').glob(
      'fig6_*_base_*.gin'
    )
  ),
)
def test_fig6_experiments_parse_with_pod_settings(name):
  gin_flags.parse_flags([f'--gin_file=experiments/{name}', *_REQUIRED_FIG6], 'test')
  q = gin.query_parameter
  assert q('BATCH_SIZE/macro.value') == 16384
  assert q('ACTIVATION_DTYPE/macro.value') == 'bfloat16'
  assert q('TRAIN_STEPS/macro.value') == 60000
  assert q('train.train.image_locked') is True
  assert q('train.train.text_init') == ('pretrained' if '_LU_' in name else 'random')
  assert q('text_tower.T5Config.vocab_size') == (250112 if 'mt5' in name else 32128)
  assert q('YFCC_TASK/macro.value') == ('yfcc100m_clip' if 'clip' in name else 'yfcc100m_full')
  assert set(q('TASK_FEATURE_LENGTHS/macro.value')) == {'title', 'description', 'tags'}


def test_fig6_needs_its_data_paths():
  with pytest.raises(gin_flags.GinConfigError, match='YFCC_TSV_PATTERN'):
    gin_flags.parse_flags(
      ['--gin_file=experiments/fig6_t5_base_Lu_clip.gin', '--gin.MODEL_DIR="/m"'], 'test'
    )


def test_include_works_next_to_a_local_runs_folder(tmp_path, monkeypatch):
  # A runs/ folder in the working directory (where demos write) is a namespace package to
  # Python; gin's resource lookup of 'runs/lit_tune.gin' must fall back to the search paths.
  (tmp_path / 'runs' / 'demo').mkdir(parents=True)
  monkeypatch.chdir(tmp_path)
  gin_flags.parse_gin(['local_tiny.gin'], ['MODEL_DIR = "/tmp/x"'])
  assert gin.query_parameter('%TRAIN_STEPS') == 60


def test_config_changes_against_the_runs_saved_config(tmp_path):
  """A resumed run logs what its config changes against the run's config.gin (a longer
  TRAIN_STEPS moves the learning-rate schedule under the restored weights)."""
  g = _write(tmp_path, 'base.gin', _BASE)
  run = tmp_path / 'run'
  gin_flags.parse_flags([f'--gin_file={g}', f'--gin.MODEL_DIR="{run}"'], 'test')
  assert gin_flags.config_changes(str(run)) == []  # no saved config yet
  gin_flags.write_config(str(run))
  assert gin_flags.config_changes(str(run)) == []
  gin_flags.parse_flags([f'--gin_file={g}', f'--gin.MODEL_DIR="{run}"', '--gin.NAME="b.gin"'], 't')
  assert gin_flags.config_changes(str(run)) == ["- NAME = 'config.gin'", "+ NAME = 'b.gin'"]
  # Each name's '-' beside its '+' (all '-' lines came first: a cut list showed only old values).
  old = 'A = 1\nB = 2\nC = 3\n'
  assert gin_flags.binding_changes(old, 'A = 1\nB = 5\nC = 6\nD = 7\n') == [
    '- B = 2',
    '+ B = 5',
    '- C = 3',
    '+ C = 6',
    '+ D = 7',
  ]


def test_user_search_paths_keep_mlit_gin_and_must_exist(tmp_path):
  """As in T5X, a user's --gin_search_paths add to the package's configs: a file of one's own that
  includes local_tiny.gin resolves. A search path that is not a directory is named."""
  _write(tmp_path / 'my', 'mine.gin', "include 'local_tiny.gin'\nTRAIN_STEPS = 3\n")
  gin_flags.parse_flags(
    ['--gin_file=mine.gin', f'--gin_search_paths={tmp_path / "my"}', '--gin.MODEL_DIR="/m"'], 't'
  )
  assert gin.query_parameter('%TRAIN_STEPS') == 3
  with pytest.raises(gin_flags.GinConfigError, match=r"^--gin_search_paths: '.*nope' is not a dir"):
    gin_flags.parse_flags(['--gin_file=local_tiny.gin', f'--gin_search_paths={tmp_path}/nope'], 't')


def test_misspelt_gin_file_or_include_is_named_with_the_close_names(tmp_path):
  with pytest.raises(gin_flags.GinConfigError) as e:
    gin_flags.parse_flags(['--gin_file=local_tiny.gin', '--gin_file=setups/lU.gin'], 't')
  assert str(e.value).endswith('; did you mean setups/LU.gin, setups/Lu.gin?')
  # An include that is not found is the include's fault, not the (found) file's.
  _write(tmp_path, 'mine.gin', "TRAIN_STEPS = 3\ninclude 'runs/lit_tun.gin'\n")
  with pytest.raises(gin_flags.GinConfigError) as e:
    gin_flags.parse_flags([f'--gin_file={tmp_path}/mine.gin'], 't')
  assert "its include 'runs/lit_tun.gin' (" in str(e.value) and 'mine.gin, line 2)' in str(e.value)
  assert str(e.value).endswith('did you mean runs/lit_tune.gin?')


def test_macro_of_a_file_not_given_names_that_file():
  """A setup without the run file: MODEL_DIR is runs/lit_tune.gin's macro."""
  with pytest.raises(gin_flags.GinConfigError, match=r"'MODEL_DIR'.*defined by runs/lit_tune.gin"):
    gin_flags.parse_flags(
      ['--gin_file=models/mt5/small.gin', '--gin_file=setups/Lu.gin', '--gin.MODEL_DIR="/m"'], 't'
    )


@pytest.mark.parametrize(
  'binding, mlit_name',
  [
    ('utils.SaveCheckpointConfig.period=100', 'train.train.checkpoint_period'),
    ('partitioning.PjitPartitioner.num_partitions=2', 'train.train.num_partitions'),
    ('network.T5Config.emb_dim=64', 'text_tower.T5Config.emb_dim'),
  ],
)
def test_t5x_configurable_names_mlits_binding(binding, mlit_name):
  with pytest.raises(gin_flags.GinConfigError) as e:
    gin_flags.parse_flags(
      ['--gin_file=local_tiny.gin', '--gin.MODEL_DIR="/m"', f'--gin.{binding}'], 't'
    )
  assert str(e.value).endswith(f'(a T5X configurable; mlit binds this as {mlit_name})')


def test_a_misspelt_configurable_or_an_unquoted_string_is_said_plainly():
  flags = ['--gin_file=local_tiny.gin', '--gin.MODEL_DIR="/m"']
  with pytest.raises(gin_flags.GinConfigError) as e:
    gin_flags.parse_flags([*flags, '--gin.text_tower.T5Confg.emb_dim=64'], 't')
  assert str(e.value).endswith('(did you mean text_tower.T5Config?)')
  with pytest.raises(gin_flags.GinConfigError) as e:
    gin_flags.parse_flags(['--gin_file=local_tiny.gin', '--gin.MODEL_DIR=runs/x'], 't')
  assert str(e.value) == (
    "error in gin binding 'MODEL_DIR = runs/x': not a value. A string value needs quotes: "
    '--gin.MODEL_DIR=\\"runs/x\\" in a shell, or the binding MODEL_DIR = "runs/x"'
  )  # not Python's parser's words (an ast node's repr)
  with pytest.raises(gin_flags.GinConfigError) as e:  # a number's macro: no quotes suggested
    gin_flags.parse_flags([*flags, '--gin.TRAIN_STEPS=ten'], 't')
  assert str(e.value).endswith(". TRAIN_STEPS takes a number (the gin files give 60), not 'ten'")


def test_setup_without_run_file_is_one_line(capsys):
  """train.train's gin.REQUIRED parameters unbound (no runs/lit_tune.gin): one line, exit 2, not
  gin's RuntimeError traceback."""
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  assert cli.main(['train', '--gin_file=models/t5_1_1/small.gin', '--gin_file=setups/Lu.gin']) == 2
  err = capsys.readouterr().err
  assert err == (
    'mlit train: error: no gin binding for the required parameter(s) model_dir, model, '
    'mixture_or_task_name, task_feature_lengths, train_steps, batch_size of train '
    '(runs/lit_tune.gin binds them: is such a file missing from the --gin_file list?)\n'
  )


def test_eval_of_a_config_whose_vocabulary_the_model_cannot_use_is_one_line(
  tmp_path,
  capsys,
  spm_model_path,  # noqa: F811
):
  """`mlit eval --gin_file=MODEL_DIR/config.gin`: local_tiny.gin's run trains on token ids, so its
  config's VOCABULARY (mT5's gs:// model) was never read; evaluating with it was a TensorFlow
  traceback offline, and online 250,100 pieces read through a 512-row embedding (XLA clamps)."""
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  args = [
    'eval',
    '--gin_file=local_tiny.gin',
    '--gin_file=eval/xm3600.gin',
    f'--gin.MODEL_DIR="{tmp_path}/run"',
    f'--gin.RUN_DIR="{tmp_path}/eval"',
    '--gin.XM3600_CAPTIONS="captions.jsonl"',
    '--gin.XM3600_IMAGES="images"',
    # No run here to read the text length from (mlit_model.json): bound, so the vocabulary's
    # check is what this meets.
    '--gin.encoders.from_mlit_checkpoint.text_length=16',
  ]
  vocab = '--gin.seqio.SentencePieceVocabulary.sentencepiece_model_file'
  (tmp_path / 'run').mkdir()  # a MODEL_DIR that is not there is its own one line (test_inference)
  assert cli.main([*args, f'{vocab}="{tmp_path}/no.model"']) == 2
  err = capsys.readouterr().err
  assert err.startswith(
    f"mlit eval: error: cannot read the SentencePiece model '{tmp_path}/no.model' (VOCABULARY, "
  )
  assert err.count('\n') == 1
  extra = [
    '--gin.seqio.SentencePieceVocabulary.extra_ids=0',
    '--gin.text_tower.T5Config.vocab_size=256',
  ]
  assert cli.main([*args, f'{vocab}="{spm_model_path}"', *extra]) == 2
  err = capsys.readouterr().err
  assert re.search(
    rf'the vocabulary {re.escape(spm_model_path)} \(VOCABULARY\) has \d+ pieces but the model embeds 256 ',
    err,
  )
  assert err.count('\n') == 1


def test_the_tasks_tokenize_with_the_models_vocabulary(spm_model_path, caplog):  # noqa: F811
  """Binding VOCABULARY's file (T5X's seqio.SentencePieceVocabulary.sentencepiece_model_file)
  changed what the evaluation read but not what the tasks tokenized with: they read mT5's mc4
  model unless tasks.vocabularies.vocabulary.path was bound, even under T5's model gin. They
  now take the model's; the tasks' own path, where bound, still wins."""
  from tasks import vocabularies

  def tasks_vocab(files, bindings=()):
    gin_flags.parse_gin(files, list(bindings), finalize=False)
    return vocabularies.vocabulary().sentencepiece_model_file

  t5 = 'gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model'
  assert tasks_vocab(['models/t5_1_1/small.gin']) == t5
  assert tasks_vocab(['models/mt5/small.gin']) == vocabularies.MT5_VOCABULARY
  mine = f"seqio.SentencePieceVocabulary.sentencepiece_model_file = '{spm_model_path}'"
  assert tasks_vocab(['models/mt5/small.gin'], [mine]) == spm_model_path
  tasks_own = "tasks.vocabularies.vocabulary.path = 'gs://b/tasks.model'"
  with caplog.at_level(logging.WARNING):
    assert tasks_vocab(['models/mt5/small.gin'], [mine, tasks_own]) == 'gs://b/tasks.model'
  assert [r.getMessage() for r in caplog.records] == [  # VOCABULARY's file is not read: said
    'the tasks tokenize with gs://b/tasks.model (tasks.vocabularies.vocabulary.path), not with '
    f"VOCABULARY's {spm_model_path}, which training does not read; the run records "
    'gs://b/tasks.model for evaluation and inference'
  ]
  gin.clear_config()
  assert vocabularies.vocabulary().sentencepiece_model_file == vocabularies.MT5_VOCABULARY


def test_a_vocabulary_with_sentencepieces_default_ids_is_one_line(tmp_path, spm_model_path):  # noqa: F811
  """SentencePiece's default ids (unk 0, bos 1, eos 2, no pad) were accepted: id 0, padding to
  the tasks and the tower, would have been every unknown piece. Refused in one line that says
  how to train one; T5's ids (the fixture's) pass."""
  import sentencepiece
  from spm_fixture import sample_sentences

  from tasks import vocabularies
  from tasks.user_error import UserError

  (tmp_path / 'corpus.txt').write_text('\n'.join(sample_sentences(500)))
  sentencepiece.SentencePieceTrainer.train(
    input=str(tmp_path / 'corpus.txt'),
    model_prefix=str(tmp_path / 'defaults'),
    vocab_size=60,
    minloglevel=2,
  )
  with pytest.raises(UserError) as e:
    vocabularies.vocabulary(str(tmp_path / 'defaults.model'))
  assert str(e.value).splitlines()[0] == (  # gin adds the configurable's name below
    f'{tmp_path}/defaults.model: a SentencePiece model with pad id -1, eos 2, unk 0, bos 1; mlit '
    '(as T5) needs pad 0 and eos 1: train it with pad_id=0 eos_id=1 unk_id=2 bos_id=-1 '
    '(`mlit vocab` does)'
  )
  assert vocabularies.vocabulary(spm_model_path).vocab_size > 0


def test_bindings_the_run_never_read_are_one_warning(tmp_path):
  """A misspelt macro in a file of yours, or a parameter of a configurable the run does not call
  (or calls with its own argument), binds fine in gin and does nothing: the trainer says so."""
  from mlit.commands import gin_unread  # pylint: disable=g-import-not-at-top

  @gin.configurable
  def unread_probe(a=0, b=0):
    return a + b

  mine = _write(
    tmp_path,
    'mine.gin',
    "include 'local_tiny.gin'\nLEARNING_RAT = 0.3\nMY_B = 2\nunread_probe.a = 1\n"
    'unread_probe.b = %MY_B\nother/unread_probe.a = 5\n',
  )
  gin_flags.parse_gin([str(mine)], ['MODEL_DIR = "x"', 'unread_probe.b = 3'])
  assert gin_unread.unread_warning(gin_flags.mlit_defines_macro).endswith(
    f'LEARNING_RAT ({mine}:2; did you mean LEARNING_RATE?); MY_B ({mine}:3; nothing refers to it)'
    f'; unread_probe.a ({mine}:4); unread_probe.b ({mine}:5); other/unread_probe.a ({mine}:6); '
    'unread_probe.b (--gin.unread_probe.b)'
  )
  assert gin.get_configurable(unread_probe)() == 4
  # What the run read is not named; mlit's own macros (TRAIN_STEPS, ...) never are.
  assert gin_unread.unread_warning(gin_flags.mlit_defines_macro) == (
    'warning: gin bindings this run never read (a misspelt name, a setting the model passes '
    f'itself, or one for another command): LEARNING_RAT ({mine}:2; did you mean LEARNING_RATE?); '
    f'MY_B ({mine}:3; nothing refers to it); other/unread_probe.a ({mine}:6; what the run '
    'read: test_train_gin_flags.unread_probe.a)'
  )


def test_a_binding_read_inside_a_macros_scope_is_read(tmp_path):
  """A task registered by a gin reference (`MIXTURE_OR_TASK_NAME = @registered_task()`) reads its
  bindings in the scope 'MIXTURE_OR_TASK_NAME': a run's config.gin resumed from another folder
  was told `tasks4.vocabulary.path (config.gin:131)` was never read, the path it tokenized with."""
  from mlit.commands import gin_unread  # pylint: disable=g-import-not-at-top

  @gin.configurable
  def scoped_probe(a=0):
    return a

  mine = _write(tmp_path, 'mine.gin', "include 'local_tiny.gin'\nscoped_probe.a = 1\n")
  gin_flags.parse_gin([str(mine)], ['MODEL_DIR = "x"'])
  with gin.config_scope('MIXTURE_OR_TASK_NAME'):
    assert gin.get_configurable(scoped_probe)() == 1
  assert gin_unread.unread_warning(gin_flags.mlit_defines_macro) is None


def test_a_misspelt_macro_in_a_file_names_where_and_the_close_one(tmp_path):
  mine = tmp_path / 'mine.gin'
  mine.write_text("include 'local_tiny.gin'\n# %LEARNING_RAT in a comment\nX = %LEARNING_RAT\n")
  gin_flags.parse_gin([str(mine)], ['MODEL_DIR = "/m"'], finalize=False)
  text = "No bindings specified for 'LEARNING_RAT/gin.macro' in config string: ..."
  assert gin_flags._finalize_message(text, [str(mine)], []) == (
    f'gin macro LEARNING_RAT is used ({mine}:3) but never set: set it in a gin file or pass '
    '--gin.LEARNING_RAT=...; did you mean LEARNING_RATE?'
  )


def test_a_misspelt_gin_file_path_suggests_the_files_of_its_folder(tmp_path):
  (tmp_path / 'yfcc_live.gin').write_text("include 'local_tiny.gin'\n")
  with pytest.raises(gin_flags.GinConfigError) as e:
    gin_flags.parse_gin([str(tmp_path / 'yfc_live.gin')], [])
  assert str(e.value).endswith(f'; did you mean {tmp_path / "yfcc_live.gin"}?')


def test_a_misspelt_parameter_gets_the_close_one():
  with pytest.raises(gin_flags.GinConfigError) as e:
    gin_flags.parse_gin(
      ['local_tiny.gin'], ['MODEL_DIR = "/m"', 'train.train.log_perod = 5'], finalize=False
    )
  assert "doesn't have a parameter named 'log_perod'" in str(e.value)
  assert str(e.value).endswith('(did you mean log_period?)')
