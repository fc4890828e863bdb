"""Adding a language end to end on a run mlit trained: a small `mlit add-language run`.

A tiny emoji/CLDR run tunes on en and de only (Sinhala left out of its texts and vocabulary);
extend-vocab grows its checkpoint with Sinhala pieces, the generated gin file continues it with the
Sinhala names added, and the evaluation shows Sinhala above chance after, while en/de texts whose
ids did not change embed exactly as before in the grown checkpoint.
"""

import contextlib
import functools
import io
import json
import os
import sys

import numpy as np
import pytest
import seqio

import gin
from eval_multilingual import encoders
from eval_multilingual.datasets import emoji_cldr as emoji_eval
from mlit.commands import add_language
from mlit.emoji_tower import embed as tower_embed
from mlit.emoji_tower import pretrain as tower_pretrain
from mlit.models import text_tower, two_tower
from mlit.training import train as train_lib
from tasks.emoji_cldr import build as build_lib
from tasks.emoji_cldr import vocab as vocab_lib

LANGS = ('en', 'de', 'si')
NEW = 'si'
TEXT = dict(emb_dim=32, num_heads=2, num_encoder_layers=1, head_dim=16, mlp_dim=32)
BASE_GIN = """
# A tiny Lu run on the emoji/CLDR set's pre-computed tower embeddings (demo/lit_emoji.gin, small).
from __gin__ import dynamic_registration

import seqio
import tasks.registration
from mlit.models import text_tower
from mlit.training import train
from tasks.emoji_cldr import tasks as emoji_tasks

include 'models/mt5/base.gin'
include 'runs/lit_tune.gin'
include 'setups/Lu.gin'

EMOJI_DATA = %gin.REQUIRED
EMOJI_VOCAB = %gin.REQUIRED
EMOJI_IMAGE_EMBEDDINGS = %gin.REQUIRED
seqio.SentencePieceVocabulary.sentencepiece_model_file = %EMOJI_VOCAB
seqio.SentencePieceVocabulary.extra_ids = 0
text_tower.T5Config:
  vocab_size = 512
  emb_dim = 32
  num_heads = 2
  num_encoder_layers = 1
  head_dim = 16
  mlp_dim = 32
  embedding_init_stddev = 0.01
IMAGE_TOWER = None
tasks.registration.register_tasks.registrations = [@emoji_tasks.register_emoji_cldr_tasks]
emoji_tasks.register_emoji_cldr_tasks:
  data_dir = %EMOJI_DATA
  vocab_path = %EMOJI_VOCAB
  image_embeddings = %EMOJI_IMAGE_EMBEDDINGS
  tuning_images = 'noto_eval'
MIXTURE_OR_TASK_NAME = @tasks.registration.registered_task()
tasks.registration.registered_task.name = 'emoji_cldr.all'
TASK_FEATURE_LENGTHS = {'text': 8}
OUT_DIM = 32
BATCH_SIZE = 128
TRAIN_STEPS = 150
WARMUP_STEPS = 10
LEARNING_RATE = 3e-3
train.train.checkpoint_period = 150
train.train.log_period = 50
"""


def _reset_gin():
  gin.clear_config()
  gin.config._set_config_is_locked(False)  # pylint: disable=protected-access  (as conftest)


def _train(argv):
  _reset_gin()
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    rc = train_lib.main(argv)
  sys.stderr.write(err.getvalue())
  assert rc == 0, err.getvalue()[-3000:]
  # si.gin and the run's config.gin it includes (written by gin, with import aliases such as
  # emoji_tasks.register_emoji_cldr_tasks) are read as written: no binding is said to be unread.
  assert 'gin bindings this run never read' not in err.getvalue(), err.getvalue()[-3000:]
  _reset_gin()


@functools.lru_cache(maxsize=4)  # each encoder runs the ViT over every render once
def _encoder(model_dir, vocab, vocab_size, d):
  model = two_tower.TwoTower(
    text=text_tower.T5Config(vocab_size=vocab_size, **TEXT),
    pooling='mean',
    image=None,
    image_head=True,
    out_dim=32,
  )
  return encoders.from_mlit_checkpoint(
    model,
    model_dir,
    seqio.SentencePieceVocabulary(vocab, extra_ids=0),
    text_length=8,
    image_tower=tower_pretrain.PretrainConfig().model_kwargs(),
    image_checkpoint_path=str(d / 'tower.npz'),
    image_size=32,
  )


@pytest.fixture(scope='module')
def flow(tmp_path_factory):
  d = tmp_path_factory.mktemp('add_si')
  data = str(d / 'data')
  build_lib.build(data, build_lib.BuildConfig(n_aug=2, languages=LANGS, max_emoji=300))
  vocab_lib.train_vocab(data, str(d / 'spm'), vocab_size=500, exclude_languages=[NEW])
  tower_pretrain.pretrain(data, str(d / 'tower.npz'), tower_pretrain.PretrainConfig(steps=60))
  tower_embed.embed(data, str(d / 'tower.npz'), str(d / 'emb.npz'))
  (d / 'base.gin').write_text(BASE_GIN, encoding='utf-8')
  base = str(d / 'base')
  _train(
    [
      f'--gin_file={d / "base.gin"}',
      f'--gin.MODEL_DIR={json.dumps(base)}',
      f'--gin.EMOJI_DATA={json.dumps(data)}',
      f'--gin.EMOJI_VOCAB={json.dumps(str(d / "spm.model"))}',
      f'--gin.EMOJI_IMAGE_EMBEDDINGS={json.dumps(str(d / "emb.npz"))}',
      '--gin_file=demo/leave_out.gin',
      f"--gin.LEFT_OUT_LANGUAGES=['{NEW}']",
    ]
  )
  ext = str(d / 'ext')
  common = ['--lang', NEW]
  assert (
    add_language.main(
      ['extend-vocab', '--vocab', str(d / 'spm.model'), '--checkpoint', base, *common]
      + ['--emoji-data', data, '--num-pieces', '150', '--out', ext]
    )
    == 0
  )
  assert (
    add_language.main(
      ['gin', *common, '--extension', ext, '--model-dir', str(d / 'cont'), '--out']
      + [str(d / 'si.gin'), '--steps', '150', '--warmup', '10', '--repeat', '3']
    )
    == 0
  )
  _train([f'--gin_file={d / "si.gin"}'])
  return d, data, base, ext


def _zero_shot(encoder, data, lang):
  """(top-1, top-5, chance top-1, chance top-5) on the held-out emoji from their names in lang."""
  metrics, meta = emoji_eval.EmojiZeroShotEvaluation(data).run(encoder, lang)
  n = meta['n_classes']
  return metrics['acc1'], metrics['acc5'], 1.0 / n, min(5, n) / n


@pytest.mark.slow
def test_new_language_rises_above_chance(flow):
  d, data, base, ext = flow
  summary = json.loads(open(os.path.join(ext, 'extension.json'), encoding='utf-8').read())
  rows = summary['embedding_rows']
  top1, top5, chance1, chance5 = _zero_shot(
    _encoder(base, str(d / 'spm.model'), rows[0], d), data, NEW
  )
  # Sinhala is bytes to the base vocabulary, and no Sinhala text was tuned on: near chance.
  assert top1 < 3 * chance1 and top5 < 2 * chance5, (top1, top5, chance1, chance5)
  after1, after5, _, _ = _zero_shot(
    _encoder(str(d / 'cont'), summary['vocabulary'], rows[1], d), data, NEW
  )
  # ~60 held-out classes: top-5 is the steadier measure at this size (top-1 moves by 1/60 steps).
  assert after5 > 2 * chance5 and after5 > top5 + chance5, (top5, after5, chance5)
  assert after1 >= chance1, (top1, after1, chance1)


def test_grown_checkpoint_keeps_old_languages_embeddings(flow):
  d, data, base, ext = flow
  summary = json.loads(open(os.path.join(ext, 'extension.json'), encoding='utf-8').read())
  report = summary['pieces']
  assert report['added'] > 50 and report['requested'] == 150
  assert report['old_language_changed'] == {'en': 0, 'de': 0}  # pieces that would are left out
  texts = [t for lang in ('en', 'de') for t in vocab_lib.tuning_texts(data, [lang])][:400]
  old_sp = seqio.SentencePieceVocabulary(str(d / 'spm.model')).tokenizer
  new_sp = seqio.SentencePieceVocabulary(summary['vocabulary']).tokenizer
  assert old_sp.encode(texts) == new_sp.encode(texts)
  rows = summary['embedding_rows']
  old = _encoder(base, str(d / 'spm.model'), rows[0], d).embed_texts(texts)
  grown = _encoder(ext, summary['vocabulary'], rows[1], d).embed_texts(texts)
  np.testing.assert_array_equal(old, grown)
  si = vocab_lib.tuning_texts(data, [NEW])[:50]
  assert max(max(ids) for ids in new_sp.encode(si)) >= summary['old_vocab_size']


def test_continued_run_is_configured_by_the_generated_gin(flow):
  d, _, _, ext = flow
  text = (d / 'si.gin').read_text(encoding='utf-8')
  assert f'CONTINUE_FROM = "{ext}"' in text and 'INITIAL_CHECKPOINT_PATH = None' in text
  config = (d / 'cont' / 'config.gin').read_text(encoding='utf-8')
  assert 'emoji_tasks.register_emoji_cldr_tasks.exclude_languages = []' in config
  assert "language_repeats = {'si': 3}" in config
  # initialization.json records what each run started from: the base at random, the
  # continued run from the grown checkpoint.
  base_init = json.loads((d / 'base' / 'initialization.json').read_text(encoding='utf-8'))
  assert base_init['text'] == 'random (SEED 0)' and base_init['image'].startswith('none')
  cont_init = json.loads((d / 'cont' / 'initialization.json').read_text(encoding='utf-8'))
  assert cont_init['run']['path'] == os.path.join(ext, 'checkpoints')
  assert str(cont_init['run']['step']) in os.listdir(cont_init['run']['path'])
  assert cont_init['run']['loaded'] == 'params (fresh optimizer)'
  # Tuning counts: the grown checkpoint carries the base run's, and the continued run adds its
  # own batches to them (the report showed the continued run's alone).
  read = lambda p: json.loads(p.read_text(encoding='utf-8'))  # noqa: E731
  base_stats = read(d / 'base' / 'language_stats.json')
  assert read(d / 'ext' / 'language_stats.json') == base_stats
  cont_stats = read(d / 'cont' / 'language_stats.json')
  assert 'si' not in base_stats and cont_stats['si']['n_this_run'] > 0
  for lang, v in base_stats.items():
    own = cont_stats[lang]['n_this_run']
    assert cont_stats[lang]['n_train_examples'] == v['n_train_examples'] + own > own > 0
  assert cont_stats['en']['source'] == "trained batches, the base run's included"


def test_extend_vocab_refuses_a_vocabulary_the_run_was_not_tuned_with(flow, tmp_path, capsys):
  """Another vocabulary would point every old language's ids at the wrong embedding rows: the
  run's mlit_model.json records its vocabulary's sha256, and extend-vocab checks it first. The
  fixture's own extend-vocab (the right vocabulary) passed the check and used the run's text
  length (8) for the truncated shares."""
  d, data, base, ext = flow
  grown_vocab = os.path.join(ext, 'sentencepiece.model')
  argv = ['extend-vocab', '--vocab', grown_vocab, '--checkpoint', base, '--lang', NEW]
  argv += ['--emoji-data', data, '--out', str(tmp_path / 'ext')]
  assert add_language.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'is not the vocabulary the run' in err
  assert os.path.join(base, 'vocabulary.model') in err and not (tmp_path / 'ext').exists()
  summary = json.loads(open(os.path.join(ext, 'extension.json'), encoding='utf-8').read())
  texts = vocab_lib.tuning_texts(data, [NEW])
  sp = seqio.SentencePieceVocabulary(str(d / 'spm.model')).tokenizer
  share = {n: sum(len(ids) + 1 > n for ids in sp.encode(texts)) / len(texts) for n in (8, 16)}
  assert share[8] != share[16]  # the check below tells the run's length from the old default
  assert summary['coverage_before']['truncated_share'] == pytest.approx(share[8])


@pytest.mark.slow
def test_run_checks_the_texts_before_any_evaluation(flow, tmp_path, capfd):
  """extend-vocab (seconds) runs before the base run's evaluation (minutes on a real run): texts
  that add nothing stop the flow with extend-vocab's line and nothing evaluated."""
  d, _, base, _ = flow
  texts = tmp_path / 'de.txt'
  texts.write_text('Hund\nKatze\n', encoding='utf-8')
  out = tmp_path / 'run'
  argv = ['run', '--vocab', str(d / 'spm.model'), '--checkpoint', base, '--lang', 'de']
  with pytest.raises(SystemExit) as stop:
    add_language.main([*argv, '--texts', str(texts), '--out', str(out)])
  assert stop.value.code == 2
  captured = capfd.readouterr()  # the step is a subprocess
  assert captured.out.startswith('== add-language extend-vocab: ') and 'eval' not in captured.out
  assert 'gave no piece the vocabulary lacks' in captured.err
  assert not (out / 'eval_before').exists()


def test_extend_vocab_takes_a_run_root_and_warns_of_a_language_the_run_has(flow, tmp_path, capsys):
  """--checkpoint ROOT, where ROOT/train is the run (as `mlit demo` lays it out and predict,
  export and mlit.load accept it), is that run; extending 'de', which the base run was tuned on,
  says so."""
  d, data, base, _ = flow
  root = tmp_path / 'root'
  root.mkdir()
  os.symlink(base, root / 'train')
  argv = ['extend-vocab', '--vocab', str(d / 'spm.model'), '--checkpoint', str(root), '--lang']
  argv += ['de', '--emoji-data', data, '--num-pieces', '20', '--out', str(tmp_path / 'ext')]
  assert add_language.main(argv) == 0
  err = capsys.readouterr().err
  assert f'--checkpoint {root}: the run in {root / "train"}' in err
  assert (
    f'warning: --lang de: the base run at --checkpoint {root / "train"} was already tuned on de'
    in err
  )
  summary = json.loads((tmp_path / 'ext' / 'extension.json').read_text(encoding='utf-8'))
  assert summary['old_checkpoint'] == str(root / 'train')
