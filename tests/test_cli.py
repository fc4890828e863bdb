"""The `mlit` dispatcher: command list, unknown commands, one-line user errors, help texts."""

import ast
import gc
import importlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import pytest
from debian_data import needs_debian_data

from mlit.commands import cli, gin_flags

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Modules run as commands (by `mlit` or by `mlit demo`'s stages) besides cli.COMMANDS.
_MORE_COMMAND_MODULES = (
  'mlit.translation.backtranslate_beam',
  'mlit.emoji_tower.pretrain',
  'mlit.emoji_tower.embed',
  'tasks.emoji_cldr.build_main',
  'tasks.emoji_cldr.vocab',
)


def test_help_lists_every_command_on_stdout(capsys):
  assert cli.main(['--help']) == 0
  out = capsys.readouterr().out
  for name in cli.COMMANDS:
    assert f'  {name}' in out and cli.SUMMARIES[name] in out


def test_a_closed_stdout_ends_quietly():
  # `mlit --help | head -1`: the reader is gone before the help is written (a BrokenPipeError
  # traceback before). The pipe's read end is closed first, so every run hits it.
  read, write = os.pipe()
  os.close(read)
  with os.fdopen(write, 'wb') as stdout:
    proc = subprocess.run(
      [sys.executable, '-m', 'mlit.commands.cli', '--help'],
      stdout=stdout,
      stderr=subprocess.PIPE,
      text=True,
      check=False,
      env={**os.environ, 'MLIT_MALLOC': 'system'},
      timeout=120,
    )
  assert proc.stderr == '' and proc.returncode == cli.BROKEN_PIPE == 141


def test_own_warnings_are_one_line_in_a_command(capsys):
  # encode_text warns API users about cut texts; in `mlit predict` that is one line like the
  # command's other warnings. A warning from another library keeps Python's format.
  own = str(ROOT / 'mlit' / 'inference' / 'model.py')
  other = str(ROOT / '.venv' / 'lib' / 'somelib.py')
  with pytest.warns(DeprecationWarning, match='deprecated'):  # passed on to the usual display
    with cli._own_warnings_one_line('predict'):
      warnings.warn_explicit('2 of 3 texts were cut', UserWarning, own, 70)
      warnings.warn_explicit('deprecated', DeprecationWarning, other, 5)
  assert capsys.readouterr().err == 'mlit predict: warning: 2 of 3 texts were cut\n'


def test_logging_records_are_command_lines(capsys):
  """mlit's logged warnings printed as Python's default 'WARNING:root:...' (once a library's
  implicit basicConfig ran) and absl's as 'WARNING:absl:...': now one `mlit COMMAND: warning:`
  line like the command's others; its INFO lines (eval's progress) keep their time; another
  library's record names its logger; a logged exception is one line without --verbose."""
  import logging

  own = str(ROOT / 'tasks' / 'data_stats.py')
  other = str(ROOT / '.venv' / 'lib' / 'site-packages' / 'absl' / 'logging.py')
  root = logging.getLogger()
  level = root.level
  handler = cli.log_to_stderr('eval')
  assert cli.log_to_stderr('train') is None  # a command run inside another keeps its handler
  try:
    root.setLevel(logging.INFO)

    def emit(name, levelno, path, message, exc_info=None):
      logging.getLogger(name).handle(
        logging.LogRecord(name, levelno, path, 1, message, None, exc_info)
      )

    emit('root', logging.WARNING, own, 'skipping row (not_a_photo) at yfcc.tsv:10')
    emit('absl', logging.WARNING, other, 'a library warning')
    emit('apache_beam.statecache', logging.INFO, other, 'Creating state cache')  # not shown
    emit('root', logging.INFO, own, '[1/6, ETA ?] wit/retrieval de')
    try:
      raise OSError('disk full')
    except OSError:
      emit('root', logging.ERROR, own, 'could not write', sys.exc_info())
  finally:
    root.removeHandler(handler)
    root.setLevel(level)
  lines = capsys.readouterr().err.splitlines()
  assert lines[:2] == [
    'mlit eval: warning: skipping row (not_a_photo) at yfcc.tsv:10',
    'absl: warning: a library warning',
  ]
  assert lines[2].endswith(' [1/6, ETA ?] wit/retrieval de') and lines[2][:4].isdigit()
  assert lines[3:] == ['mlit eval: error: could not write (disk full)']
  # A command run in a caller's process (tests, API users) leaves its logging as it was.
  before = list(root.handlers)
  assert cli.main(['report', str(ROOT / 'no_such_run')]) == 2
  assert root.handlers == before


def test_unknown_command_says_so(capsys):
  assert cli.main(['tarin']) == 2
  err = capsys.readouterr().err
  assert "unknown command 'tarin'" in err and 'train' in err


def _module_path(name: str) -> pathlib.Path:
  return ROOT / (name.replace('.', '/') + '.py')


def test_every_command_option_has_help():
  missing = []
  for module in (*cli.COMMANDS.values(), *_MORE_COMMAND_MODULES):
    path = _module_path(module)
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'add_argument':
        if not any(k.arg == 'help' for k in node.keywords):
          missing.append(f'{path.relative_to(ROOT)}:{node.lineno}')
  assert not missing, missing


@pytest.mark.parametrize('command', sorted(cli.COMMANDS))
def test_each_command_help_has_its_own_example(command, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main([command, '--help'])
  assert e.value.code == 0
  out = capsys.readouterr().out
  examples = [l for l in out.splitlines() if l.strip().startswith(f'mlit {command} ')]
  assert examples, f'no example line "mlit {command} ..." in:\n{out[-600:]}'


def test_user_error_is_one_line_and_exit_2(capsys):
  assert cli.main(['eval', '--gin_file=no_such_file.gin']) == 2
  err = capsys.readouterr().err.strip()
  assert err.count('\n') == 0 and 'no_such_file.gin' in err and err.startswith('mlit eval: error')
  assert 'Traceback' not in err


def test_eval_without_the_runs_config_names_the_unset_macro(capsys):
  """Gin's own message appends the whole config (KBs on one line); ours names the macro."""
  assert cli.main(['eval', '--gin_file=demo/eval_emoji.gin', '--gin.RUN_DIR="/tmp/r"']) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith('mlit eval: error: gin macro MODEL is used')
  assert 'but never set' in err
  assert 'config.gin' in err and err.count('\n') == 0 and len(err) < 400


def test_verbose_shows_the_traceback(capsys):
  assert cli.main(['--verbose', 'eval', '--gin_file=no_such_file.gin']) == 2
  assert 'Traceback' in capsys.readouterr().err


def test_unquoted_gin_string_says_how_to_quote(capsys):
  argv = ['eval', '--gin_file=demo/eval_emoji.gin', '--gin.RUN_DIR=/tmp/x']
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.count('\n') == 0
  assert 'needs quotes' in err and '--gin.RUN_DIR=\\"/tmp/x\\"' in err


def test_impossible_schedule_is_a_user_error(capsys, tmp_path):
  argv = [
    'train',
    '--gin_file=local_tiny.gin',
    f'--gin.MODEL_DIR="{tmp_path / "run"}"',
    '--gin.TRAIN_STEPS=4',
    '--gin.WARMUP_STEPS=5',
  ]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.startswith('mlit train: error: make_optimizer: warmup_steps=5 must be < total_steps=4')
  assert 'In call to configurable' not in err
  assert not (tmp_path / 'run').exists()  # found in the set-up: no empty MODEL_DIR/checkpoints


@pytest.mark.parametrize(
  'binding, message',
  [
    (
      '--gin.train.num_partitions=2',
      'num_partitions=2 (gin: train.train.num_partitions) must divide',
    ),
    ('--gin.train.loss="x"', "train.loss must be 'softmax' or 'sigmoid', got 'x'"),
    ('--gin.train.freeze=["^no_such/"]', "freeze rule '^no_such/' matches no parameter"),
    ('--gin.MIXTURE_OR_TASK_NAME="no_such_task"', "MIXTURE_OR_TASK_NAME 'no_such_task' is not"),
    ("--gin.BATCH_SIZE='32'", "BATCH_SIZE must be a positive integer, got '32'"),
    ("--gin.TASK_FEATURE_LENGTHS={'txt': 8}", "TASK_FEATURE_LENGTHS names 'txt' but the task's"),
    ('--gin_file=yfcc_per_batch.gin', "TASK_FEATURE_LENGTHS names 'title' but the task's"),
    ('--gin.USE_CACHED_TASKS=True', 'USE_CACHED_TASKS = True needs TASK_CACHE_DIRS'),
  ],
)
def test_training_config_mistakes_are_one_line(binding, message, capsys, tmp_path):
  argv = ['train', '--gin_file=local_tiny.gin', f'--gin.MODEL_DIR="{tmp_path}"', '--dry_run']
  assert cli.main(argv + [binding]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith(f'mlit train: error: {message}'), err[-3:]
  assert not any('Traceback' in l for l in err)
  if 'yfcc' in binding:  # a YFCC file on another task: said so
    assert err[-1].endswith('yfcc_per_batch.gin and the YFCC run files are for YFCC tasks)')


def test_module_import_runs_before_gin(tmp_path, monkeypatch):
  (tmp_path / 'mlit_test_plugin_18.py').write_text(
    'import gin\n\n\n@gin.configurable\ndef plugin_value(x=1):\n  return x\n'
  )
  monkeypatch.syspath_prepend(str(tmp_path))
  gin_file = tmp_path / 'plugin.gin'
  gin_file.write_text('plugin_value.x = 2\n')
  with pytest.raises(gin_flags.GinConfigError, match='plugin_value'):
    gin_flags.parse_flags([f'--gin_file={gin_file}'], 'test')
  gin_flags.parse_flags([f'--gin_file={gin_file}', '--module_import=mlit_test_plugin_18'], 'test')
  assert importlib.import_module('mlit_test_plugin_18').plugin_value() == 2
  with pytest.raises(gin_flags.GinConfigError, match='--module_import=no_such_module_18'):
    gin_flags.parse_flags([f'--gin_file={gin_file}', '--module_import=no_such_module_18'], 'test')


def test_missing_files_and_translator_pairs_are_one_line(tmp_path, capsys):
  vocab = tmp_path / 'missing.model'
  assert cli.main(['coverage', '--vocab', str(vocab), 'texts.tsv']) == 2
  err = capsys.readouterr().err.strip()
  assert err == f'mlit coverage: error: --vocab {vocab}: no such file'
  captions = tmp_path / 'c.tsv'
  captions.write_text('a\tThe cat\n', encoding='utf-8')
  argv = [
    'backtranslate',
    '--input',
    str(captions),
    '--out',
    str(tmp_path / 'bt'),
    '--pivots',
    'xx',
  ]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.count('\n') == 0 and 'cannot translate en->xx, xx->en' in err
  # `make test` installs apertium-eng-spa and apertium-eng-cat: the line says what a typo missed
  assert 'installed both ways for en: ca, es;' in err, err


def test_bad_flag_value_is_one_line(capsys):
  assert cli.main(['report', 'some_run', '--min-n', 'abc']) == 2
  err = capsys.readouterr().err.strip()
  assert err == (
    "mlit report: error: argument --min-n: invalid int value: 'abc' "
    '(mlit report --help lists the options)'
  )


def test_known_input_errors_are_user_errors():
  from eval_multilingual import prompts  # pylint: disable=g-import-not-at-top
  from eval_multilingual.datasets import wit  # pylint: disable=g-import-not-at-top
  from mlit.checkpoints import big_vision_npz, t5x  # pylint: disable=g-import-not-at-top
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  for error in (
    prompts.PromptError,
    wit.WitFormatError,
    t5x.CheckpointError,
    big_vision_npz.CheckpointError,
    gin_flags.GinConfigError,
  ):
    assert issubclass(error, UserError) and issubclass(error, cli.user_error_types()), error
  assert issubclass(FileNotFoundError, cli.user_error_types())


@needs_debian_data
def test_commands_without_tensorflow_never_import_it(tmp_path):
  """cli.WITHOUT_TENSORFLOW and the demo's stages before training run with TensorFlow
  unimportable (each would spend 5-6 s loading it), and print none of its load-time lines."""
  from test_report import write_run  # pylint: disable=g-import-not-at-top

  blocked = tmp_path / 'blocked' / 'tensorflow'
  blocked.mkdir(parents=True)
  (blocked / '__init__.py').write_text("raise ImportError('TensorFlow imported')\n")
  env = dict(os.environ, PYTHONPATH=str(blocked.parent))
  run_dir = tmp_path / 'demo'
  stages = 'data,vocab,image,embed,coverage'
  demo = ['mlit.commands.demo', '--run_dir', str(run_dir), '--languages', 'en,de', '--stages']
  demo += [stages, '--max_emoji', '60', '--vocab_size', '600']
  write_run(tmp_path / 'eval_run', seed=0)
  english = {'name': 'toy', 'num_classes': 2, 'languages': {'en': {'classes': ['cat', 'dog']}}}
  english['languages']['en']['templates'] = ['a photo of a {}.']
  (tmp_path / 'en.json').write_text(json.dumps(english), encoding='utf-8')
  prompts = ['mlit.commands.add_language', 'prompts', '--lang', 'es', '--backend', 'apertium']
  prompts += ['--english', str(tmp_path / 'en.json'), '--out', str(tmp_path / 'es.json')]
  vocab = ['mlit.commands.add_language', 'coverage', '--vocab', str(run_dir / 'spm.model')]
  (tmp_path / 'de.txt').write_text('eine grinsende Katze\nein roter Apfel\n', encoding='utf-8')
  vocab += ['--lang', 'de', str(tmp_path / 'de.txt')]
  # coverage is a demo stage; add-language's other steps (extend-vocab, gin) are read alike.
  # predict, embed, export and search: test_inference (they need a trained run).
  assert cli.WITHOUT_TENSORFLOW == {
    'add-language',
    'coverage',
    'demo',
    'embed',
    'export',
    'predict',
    'report',
    'search',
  }
  for args in (demo, ['eval_multilingual.report', str(tmp_path / 'eval_run')], prompts, vocab):
    proc = subprocess.run(
      [sys.executable, '-m', *args], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert 'I0000' not in proc.stderr and 'TensorFlow imported' not in proc.stderr
  assert set(json.loads((run_dir / 'timings.json').read_text())) == set(stages.split(','))
  assert (run_dir / 'coverage' / 'coverage.json').exists()
  assert (tmp_path / 'eval_run' / 'report' / 'index.html').exists()
  assert json.loads((tmp_path / 'es.json').read_text(encoding='utf-8'))['languages']['es']


def test_unknown_translation_backend_is_one_line(tmp_path, capsys):
  (tmp_path / 'c.tsv').write_text('c1\tA red apple\n', encoding='utf-8')
  argv = ['backtranslate', '--input', str(tmp_path / 'c.tsv'), '--out', str(tmp_path / 'bt')]
  assert cli.main([*argv, '--source', 'en', '--pivots', 'es', '--backend', 'google']) == 2
  err = capsys.readouterr().err.strip()
  assert err == (
    "mlit backtranslate: error: --backend: unknown translation backend 'google': use apertium, "
    'command:<template> or transformers:<model dir>'
  )


def test_one_line_drops_gins_call_chain_and_scopes():
  error = ValueError(
    "f.tsv:1: bad header In call to configurable 'train' (<function train at 0x1>) in scope "
    "'MIXTURE_OR_TASK_NAME' in scope 'MIXTURE_OR_TASK_NAME'"
  )
  assert cli.one_line(error) == 'f.tsv:1: bad header'


@pytest.mark.parametrize(
  'flags, message',
  [
    (['--pivots', 'es,es'], '--pivots es,es: es given twice'),
    (['--pivots', 'en,es'], '--pivots en,es: en is the --source language itself'),
    (['--pivots', 'es', '--min_chrf', '96'], '--min_chrf 96.0 is not below --max_chrf'),
  ],
)
def test_backtranslate_setting_mistakes_are_one_line(flags, message, tmp_path, capsys):
  (tmp_path / 'c.tsv').write_text('c1\tA red apple\n', encoding='utf-8')
  argv = ['backtranslate', '--input', str(tmp_path / 'c.tsv'), '--out', str(tmp_path / 'bt')]
  assert cli.main([*argv, '--source', 'en', *flags]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith(f'mlit backtranslate: error: {message}') and '\n' not in err
  assert not (tmp_path / 'bt').exists()


def test_multiprocess_off_a_pod_is_one_line(tmp_path):
  """In a fresh process, as a user runs it: jax.distributed finds no cluster to join."""
  proc = subprocess.run(
    [sys.executable, '-m', 'mlit.commands.cli', 'train', '--gin_file=local_tiny.gin']
    + [f'--gin.MODEL_DIR="{tmp_path}"', '--multiprocess', '--dry_run'],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env={k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'OMPI_', 'TPU_'))},
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  err = proc.stderr.strip().splitlines()
  assert (
    err[-1].startswith('mlit train: error: --multiprocess: ') and 'Traceback' not in proc.stderr
  )


@pytest.mark.parametrize(
  'command, line',
  [
    (
      'eval',
      'mlit eval: interrupted (Ctrl-C); the same command reuses the evaluations that finished',
    ),
    ('report', 'mlit report: interrupted (Ctrl-C)'),
    (
      'ingest',
      'mlit ingest: interrupted (Ctrl-C); the same command keeps the complete shards and writes '
      'the rest',
    ),
  ],
)
def test_ctrl_c_is_one_line_and_exit_130(command, line, monkeypatch, capsys):
  module = importlib.import_module(cli.COMMANDS[command])

  def pressed(argv):
    raise KeyboardInterrupt

  monkeypatch.setattr(module, 'main', pressed)
  assert cli.main([command]) == cli.INTERRUPTED == 130
  assert capsys.readouterr().err == line + '\n'


def test_ctrl_c_swallowed_in_a_gc_callback_still_stops_the_command(monkeypatch, capsys):
  # Python swallows an exception raised in a gc callback (JAX registers one): a Ctrl-C that
  # landed there ran `mlit train` on to its last step, exit 0.
  module = importlib.import_module(cli.COMMANDS['report'])
  steps = []

  def pressed_in_gc(phase, info):
    gc.callbacks.remove(pressed_in_gc)
    raise KeyboardInterrupt

  def job(argv):
    gc.callbacks.append(pressed_in_gc)
    for step in range(1000):
      gc.collect()
      time.sleep(0.01)
      steps.append(step)
    return 0

  monkeypatch.setattr(module, 'main', job)
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # xdist workers ignore it
  try:
    assert cli.main(['report']) == cli.INTERRUPTED
  finally:
    signal.signal(signal.SIGINT, previous)
    if pressed_in_gc in gc.callbacks:
      gc.callbacks.remove(pressed_in_gc)
  assert len(steps) < 100, len(steps)  # stopped a few steps later, not after 1000
  assert capsys.readouterr().err == 'mlit report: interrupted (Ctrl-C)\n'


def test_a_hook_the_command_installed_stays_after_it(monkeypatch):
  # orbax_read's filter of what abandoned checkpoint reads print (some of it at exit) was
  # removed when the Ctrl-C hook was put back: 'Event loop is closed' tracebacks after the
  # one-line error of a damaged checkpoint.
  from mlit.checkpoints import orbax_read  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(sys, 'unraisablehook', sys.unraisablehook)
  module = importlib.import_module(cli.COMMANDS['report'])
  monkeypatch.setattr(module, 'main', lambda argv: orbax_read._quiet_abandoned_reads() or 0)
  assert cli.main(['report']) == 0
  assert isinstance(sys.unraisablehook, orbax_read._AbandonedReadFilter)
