"""The tokenizer `mlit export --format transformers` writes (export_transformers._save_tokenizer),
loaded with AutoTokenizer as the model card does, gives mlit's ids (mlit.inference.tokenizer:
SentencePiece ids cut to length - 1, EOS 1, PAD 0) on any text: characters the byte-fallback
vocabulary lacks (CJK, Greek, emoji, combining marks), truncation, runs of whitespace, empty
texts, special-token text. The tiny SentencePiece model is trained here as mlit trains its own
(tasks.sentencepiece_training: unigram, byte fallback)."""

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from spm_fixture import sample_sentences, train_tiny_spm

from mlit.inference import export_transformers
from mlit.inference.tokenizer import Tokenizer

LENGTH = 8
# Markup, digits and hex letters give '<', '/', '>', '0'-'9', 'x', 'A'-'F' pieces, so that text
# spelling a special or byte piece ('</s>', '<0x41>') can be read as characters. Nothing CJK,
# Greek or emoji: those go through byte fallback.
MARKUP = ['a <b>dog</b> at 10:45, x 0123456789 ABCDEF abcdef'] * 20
TEXTS = [
  # Outside the vocabulary (byte fallback), alone and mixed with words it has.
  '東京タワーの写真',
  'Ωmega 🍕 ok',
  '👨‍👩‍👧 family ❤️',
  'नमस्ते दुनिया',
  'مرحبا بالعالم',
  '한국어 문장',
  'Ψ ∑ zebra',
  'x\u0336y',  # a combining mark the vocabulary lacks
  'café ñandú',  # precomposed letters
  'cafe\u0301',  # a combining acute that the normalizer composes
  '\U0001f600\U0010ffff\x00',
  # In the vocabulary.
  'sunset over the sea',
  'Hund Katze Baum',
  # Whitespace: leading, trailing, runs, other spaces, only whitespace, nothing.
  '  dog',
  'dog  ',
  'dog   cat \t bird\n\ntree',
  '\u3000dog\u00a0cat\u2009',
  ' ',
  '    ',
  '\t\n',
  '',
  '▁dog▁',
  # Text spelling special and byte pieces: characters, as in SentencePiece.
  '</s>',
  '<pad> <unk>',
  'a</s>b',
  '<0x41><0xE6>',
  # Longer than LENGTH - 1 pieces: truncated, EOS last.
  'sunset over the sea beach boat city street night dog cat bird tree flower',
  '東京' * 10,
  'dog ' * 50,
]
# Fragments for random texts: whitespace runs, words, special-piece spellings.
FRAGMENTS = [' ', '  ', '\t', '\n', '\u3000', '\u00a0', 'dog', ' cat', '</s>', '<0x41>', '▁']


@pytest.fixture(scope='module')
def tokenizers(tmp_path_factory):
  """(the exported tokenizer as AutoTokenizer loads it, mlit's Tokenizer factory, the spm path)."""
  root = tmp_path_factory.mktemp('export_tokenizer')
  spm = train_tiny_spm(str(root / 'spm'), sentences=sample_sentences(2000) + MARKUP)
  out = root / 'hf'
  out.mkdir()
  # What export() has written before the tokenizer: the model's config and spiece.model.
  transformers = export_transformers._transformers()  # pylint: disable=protected-access
  transformers.MT5Config(vocab_size=512, d_model=8, num_layers=1).save_pretrained(out)
  shutil.copyfile(spm, out / 'spiece.model')
  export_transformers._save_tokenizer(str(out), LENGTH)  # pylint: disable=protected-access
  return transformers.AutoTokenizer.from_pretrained(out), spm


def _hf_ids(tok, texts, length=LENGTH):
  batch = tok(list(texts), padding='max_length', truncation=True, max_length=length)
  return np.asarray(batch['input_ids'])


def test_ids_equal_mlits(tokenizers):
  tok, spm = tokenizers
  want = Tokenizer(spm, LENGTH)(TEXTS)
  got = _hf_ids(tok, TEXTS)
  bad = [(t, g.tolist(), w.tolist()) for t, g, w in zip(TEXTS, got, want) if (g != w).any()]
  assert not bad, bad
  assert (want[-3:, -1] == 1).all()  # the long texts are cut: EOS last
  # Untruncated ids too, and the model card's call: max_length from the saved model_max_length.
  long = Tokenizer(spm, 256)(TEXTS)
  np.testing.assert_array_equal(_hf_ids(tok, TEXTS, 256), long)
  card = tok(TEXTS, padding='max_length', truncation=True)['input_ids']
  np.testing.assert_array_equal(np.asarray(card), want)


def test_byte_pieces_decode_to_the_text(tokenizers):
  tok, _ = tokenizers
  for text in ('東京タワーの写真', 'Ωmega 🍕 ok'):
    assert tok.decode(tok(text)['input_ids'], skip_special_tokens=True) == text


@settings(
  max_examples=300,
  deadline=None,
  derandomize=True,
  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
  st.lists(st.one_of(st.characters(codec='utf-8'), st.sampled_from(FRAGMENTS)), max_size=30).map(
    ''.join
  )
)
def test_ids_equal_mlits_on_random_text(tokenizers, text):
  tok, spm = tokenizers
  mlit = Tokenizer(spm, 64)
  # `tokenizers` applies SentencePiece's charsmap per grapheme (shortest match), which differs on
  # some runs of combining marks; everything after normalization must match exactly.
  assume(tok.backend_tokenizer.normalizer.normalize_str(text) == mlit.processor.normalize(text))
  np.testing.assert_array_equal(_hf_ids(tok, [text], 64), mlit([text]), err_msg=ascii(text))
