"""Adding a language end to end on a run mlit trained: a small `mlit add-language run`.

A tiny emoji/CLDR run tunes on en and de only (Sinhala left out of its texts and vocabulary);
extend-vocab grows its checkpoint with Sinhala pieces, the generated gin file continues it with the
Sinhala names added, and the evaluation shows Sinhala above chance after, while en/de texts whose
ids did not change embed exactly as before in the grown checkpoint.
"""

import json
import os

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
from __gin__ import dynamic_registration
from mlit.models import text_tower
from mlit.training import train

text_tower.T5Config.emb_dim = 32
text_tower.T5Config.num_heads = 2
text_tower.T5Config.head_dim = 16
text_tower.T5Config.mlp_dim = 32
text_tower.T5Config.vocab_size = 512
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
  assert train_lib.main(argv) == 0
  _reset_gin()


def _encoder(model_dir, vocab, vocab_size, d):
  model = two_tower.TwoTower(
    text=text_tower.T5Config(vocab_size=vocab_size, **TEXT), pooling='mean', image=None, out_dim=32
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
      '--gin_file=demo/lit_emoji.gin',
      f'--gin_file={d / "base.gin"}',
      f'--gin.MODEL_DIR={json.dumps(base)}',
      f'--gin.EMOJI_DATA={json.dumps(data)}',
      f'--gin.EMOJI_VOCAB={json.dumps(str(d / "spm.model"))}',
      f'--gin.IMAGE_CHECKPOINT_PATH={json.dumps(str(d / "tower.npz"))}',
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


def _top1(encoder, data, lang):
  ev = emoji_eval.EmojiZeroShotEvaluation(data)
  metrics, meta = ev.run(encoder, lang)
  return metrics['acc1'], 1.0 / meta['n_classes']


def test_new_language_rises_above_chance(flow):
  d, data, base, ext = flow
  summary = json.loads(open(os.path.join(ext, 'extension.json'), encoding='utf-8').read())
  rows = summary['embedding_rows']
  before, chance = _top1(_encoder(base, str(d / 'spm.model'), rows[0], d), data, NEW)
  after, _ = _top1(_encoder(str(d / 'cont'), summary['vocabulary'], rows[1], d), data, NEW)
  assert before < 2 * chance  # Sinhala is bytes to the base vocabulary and unseen by the tower
  assert after > 2 * chance and after > before + chance, (before, after, chance)


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
