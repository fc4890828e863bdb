"""A small variant of `make demo`: every stage of the emoji/CLDR pipeline on a few languages and
emoji, through the same command (mlit demo), and then the report's inputs and outputs.

Sizes are the smallest that still check the schema and wiring (100 emoji: 20 held-out concepts;
10 steps of batch 128, through the demo's --gin_bindings); `make demo` is the real run. Each
stage's own reuse of its output is tested beside it (test_emoji_cldr, test_efficientnet); here the
re-run checks the demo's: the dataset build is reused and the trained checkpoint is not retrained."""

import json
import os
import re
import subprocess
import sys

import pytest
from debian_data import needs_debian_data

LANGUAGES = ['en', 'de', 'ja', 'sw']


@pytest.mark.slow
@needs_debian_data
def test_small_demo_pipeline_end_to_end(tmp_path, capsys):
  # As `make demo` runs it: from the checkout, writing runs/demo (its config.gin's paths relative)
  work = tmp_path / 'cwd'
  run_dir = work / 'runs' / 'demo'
  os.makedirs(run_dir.parent)
  cmd = [
    sys.executable,
    '-m',
    'mlit.commands.demo',
    '--run_dir',
    'runs/demo',
    '--languages',
    ','.join(LANGUAGES),
    '--max_emoji',
    '100',
    '--vocab_size',
    '1200',
    '--train_steps',
    '10',
    '--gin_bindings',
    'BATCH_SIZE=128',
  ]  # the default locked tower: ImageNet EfficientNet-Lite0 converted from its wheel
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=work)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

  results = json.loads((run_dir / 'results.json').read_text())
  for key in (
    'emoji_cldr/zeroshot_classification',
    'emoji_cldr_symbola/zeroshot_classification',
    'emoji_cldr_annotations/zeroshot_classification',
    'emoji_cldr/retrieval',
  ):
    assert results['macro'][key]['n_languages'] == len(LANGUAGES)
  for lang in LANGUAGES:
    zs = results['languages'][lang]['emoji_cldr/zeroshot_classification']
    assert 0.0 <= zs['acc1'] <= zs['acc5'] <= 1.0
  timings = json.loads((run_dir / 'timings.json').read_text())
  assert set(timings) == {'data', 'vocab', 'image', 'embed', 'train', 'coverage', 'eval', 'report'}
  stats = json.loads((run_dir / 'language_stats.json').read_text())
  assert set(stats) == set(LANGUAGES) and all(v['n_train_examples'] > 0 for v in stats.values())
  assert set(json.loads((run_dir / 'tokenizer_stats.json').read_text())) == set(LANGUAGES)
  html = (run_dir / 'report' / 'index.html').read_text()
  assert 'Swahili' in html and 'data:image/png;base64,' in html
  assert (run_dir / 'train' / 'config.gin').exists()
  # Coverage counts truncation at the trained model's text length (lit_emoji.gin: 24 tokens).
  coverage_md = (run_dir / 'coverage' / 'coverage.md').read_text(encoding='utf-8')
  assert '(truncated: over 24 tokens incl. EOS)' in coverage_md.splitlines()[0]

  assert 'step 10/10 loss' in proc.stdout + proc.stderr
  # Every stage starts quietly: no TensorFlow load-time INFO lines or CUDA probe errors.
  assert 'I0000' not in proc.stderr and 'cuInit' not in proc.stderr, proc.stderr[-3000:]
  # Re-running reuses the stages' outputs: the dataset build, and the trained checkpoint is not
  # trained again. Then one comparison (`mlit demo --compare`): English-only tuning, which links
  # the base run's data, vocabulary and embeddings and trains, evaluates and reports on its own.
  proc = subprocess.run(
    cmd + ['--stages', 'data,train', '--compare', 'english_only'],
    capture_output=True,
    text=True,
    check=False,
    cwd=work,
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  out = proc.stdout + proc.stderr
  assert '"reused": true' in out  # the dataset build
  assert 'resumed from step 10' in out and out.count('step 10/10 loss') == 1  # the variant's
  assert 'the run has finished: step 10 of 10; nothing to train' in out  # the base run's
  variant = run_dir / 'compare' / 'english_only'
  assert os.path.islink(variant / 'image_embeddings.npz')
  assert json.loads((variant / 'train' / 'mlit_model.json').read_text())
  summary = json.loads((run_dir / 'compare' / 'summary.json').read_text())
  assert set(summary['runs']) == {'base', 'english_only'}
  only_en = json.loads((variant / 'results.json').read_text())['languages']
  assert set(only_en) == set(LANGUAGES)  # evaluated in every language, tuned on English
  assert 'english_only' in (run_dir / 'compare' / 'report' / 'report.md').read_text()

  # README's Evaluation block (<!-- test: demo -->), as printed, on this run as runs/demo.
  import readme_blocks  # pylint: disable=g-import-not-at-top

  old_cwd = os.getcwd()
  os.chdir(work)
  try:
    for block, extra in readme_blocks.group_blocks('demo'):
      for command in block.commands:
        assert readme_blocks.run(command, extra) == 0, (block.line, command)
    # README's "Using a trained model" chain on this run: the held-out renders as PNG files,
    # then predict and search on them (the README's own emoji are not among these 100).
    from tasks.emoji_cldr import __main__ as emoji_main  # pylint: disable=g-import-not-at-top

    renders = ['renders', '--data', 'runs/demo/data', '--out', 'runs/demo/heldout']
    assert emoji_main.main(renders) == 0
    pngs = sorted(os.listdir(run_dir / 'heldout'))
    assert len(pngs) == 20 and all(p.endswith('.png') for p in pngs)
    predict = (
      f'mlit predict --model runs/demo --image runs/demo/heldout/{pngs[0]} --labels "Hund,Katze"'
    )
    capsys.readouterr()
    assert readme_blocks.run(predict) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f'runs/demo/heldout/{pngs[0]}' and len(table) == 3, table
    search = 'mlit search --model runs/demo --images runs/demo/heldout/ --query Hund --top-k 20'
    assert readme_blocks.run(search) == 0
    ranked = capsys.readouterr().out.splitlines()
    assert ranked[0] == 'Hund' and sorted(line.split()[1] for line in ranked[1:]) == pngs
    # The same evaluation from another folder, the run's config.gin given by its path: its
    # relative data paths ('runs/demo/data') stopped it ('manifest.json not found'); they are
    # read where the run trained, with one warning, and every score is the run's own (reused).
    elsewhere = tmp_path / 'elsewhere'
    os.makedirs(elsewhere)
    evaluate = [
      sys.executable,
      '-m',
      'mlit.commands.cli',
      'eval',
      f'--gin_file={run_dir}/train/config.gin',
      '--gin_file=demo/eval_emoji.gin',
      f'--gin.RUN_DIR="{run_dir}"',
    ]
    proc = subprocess.run(evaluate, capture_output=True, text=True, check=False, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
      f'warning: {run_dir}/train/config.gin names EMOJI_DATA, EMOJI_IMAGE_EMBEDDINGS, EMOJI_VOCAB, '
      'IMAGE_CHECKPOINT_PATH relative to the folder the run trained in; they are not in this one '
      f'({elsewhere}): reading them from {work}'
    ) in proc.stderr, proc.stderr[-3000:]
    assert re.search(r'(\d+) of \1 evaluations reused from ', proc.stderr), proc.stderr[-3000:]
  finally:
    os.chdir(old_cwd)
  assert (run_dir / 'coverage' / 'coverage.json').exists()
  assert '95% CI' in (run_dir / 'report' / 'report.md').read_text(encoding='utf-8')


def test_a_size_below_one_is_refused_before_any_stage(tmp_path, capsys):
  """--train_steps 0 and --max_emoji 0 were read as not given: the demo ran 700 steps on every
  emoji without a word; a negative --vocab_size reached SentencePiece."""
  from mlit.commands import cli  # pylint: disable=import-outside-toplevel

  run_dir = tmp_path / 'demo'
  for flag, value in [('--train_steps', '0'), ('--max_emoji', '0'), ('--vocab_size', '-5')]:
    assert cli.main(['demo', f'--run_dir={run_dir}', flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'mlit demo: error: {flag} must be >= 1, got {value}'), err
  assert not run_dir.exists()


class _NoStage:
  """Stands in for `subprocess` in mlit.commands.demo: a stage that would start fails the test."""

  @staticmethod
  def run(cmd, **kwargs):
    raise AssertionError(f'a stage ran: {cmd}')


@needs_debian_data
def test_an_unknown_language_is_refused_before_any_stage(tmp_path, capsys, monkeypatch):
  """--languages=en,de,xx ran the data stage, whose child process ended in a ValueError
  traceback (exit 1) from the CLDR parser."""
  from mlit.commands import cli, demo  # pylint: disable=import-outside-toplevel

  monkeypatch.setattr(demo, 'subprocess', _NoStage)
  run_dir = tmp_path / 'demo'
  assert cli.main(['demo', f'--run_dir={run_dir}', '--languages=en,de,xx', '--stages=data']) == 2
  err = capsys.readouterr().err.strip()
  assert '\n' not in err, err
  assert err.startswith("mlit demo: error: --languages: no CLDR emoji annotations for 'xx'; "), err
  flags = ['--languages=en,de', '--vocab_languages=en,ja']
  assert cli.main(['demo', f'--run_dir={run_dir}', *flags]) == 2
  assert capsys.readouterr().err.strip() == (
    'mlit demo: error: --vocab_languages ja: not among --languages en,de (the vocabulary is '
    'trained on the texts the data stage builds)'
  )
  assert not run_dir.exists()


def test_the_text_tower_is_sized_to_the_vocabulary_built(tmp_path, capsys, monkeypatch):
  """The text tower embedded --vocab_size rows (32000) whatever the vocabulary had: a few
  languages' texts gave 1666 pieces, and 30k rows were never looked up, without a word."""
  import sentencepiece  # pylint: disable=import-outside-toplevel

  from mlit.commands import demo  # pylint: disable=import-outside-toplevel

  run_dir = tmp_path / 'demo'
  run_dir.mkdir()
  texts = ['grinning face', 'smiling face with heart eyes', 'red apple', 'Katze', 'Hund']
  sentencepiece.SentencePieceTrainer.train(
    sentence_iterator=iter(texts * 4),
    model_prefix=str(run_dir / 'spm'),
    vocab_size=32000,
    hard_vocab_limit=False,
    byte_fallback=True,
    minloglevel=2,
  )
  pieces = sentencepiece.SentencePieceProcessor(model_file=str(run_dir / 'spm.model'))
  pieces = pieces.get_piece_size()
  assert 256 < pieces < 384
  ran = []

  class Stage:
    @staticmethod
    def run(cmd, **kwargs):
      ran.append(cmd)
      return subprocess.CompletedProcess(cmd, 0)

  monkeypatch.setattr(demo, 'subprocess', Stage)
  assert demo.main([f'--run_dir={run_dir}', '--stages=train', '--train_steps=5']) == 0
  assert '--gin.text_tower.T5Config.vocab_size=384' in ran[0]
  out = capsys.readouterr().out
  assert (
    f'== mlit demo: train: the vocabulary has {pieces} pieces, not the --vocab_size 32000 '
    'asked; the text tower embeds 384 token ids (its pieces, rounded up to a multiple of 128)\n'
  ) in out
  assert '== results' not in out  # a run without them is not pointed at its results
  # Before the vocabulary is built (its stage comes first), and for the default run's 32000
  # pieces, the rows are --vocab_size's: `make demo` trains the same model as before.
  assert demo.embedding_rows(str(tmp_path / 'none.model'), 32000) == (32000, None)
  assert demo.embedding_rows(str(tmp_path / 'none.model'), 1666) == (1792, None)
