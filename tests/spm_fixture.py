"""A tiny SentencePiece model trained at test time (T5 ids: pad 0, eos 1, unk 2).

Reuse from any test module:  `from spm_fixture import spm_model_path  # noqa: F401`
(a session-scoped pytest fixture), or call `train_tiny_spm(directory)` directly.
"""

import os
import random

import pytest

from tasks import sentencepiece_training

_WORDS = (
  'sunset over the sea beach boat city street night dog cat bird tree '
  'flower mountain lake snow river bridge house car train people '
  'Sonnenuntergang über dem Meer Hund Katze Baum Blume Berg '
  'coucher de soleil sur la mer chien chat arbre fleur montagne '
  'puesta del sol en el mar perro gato árbol flor montaña'
).split()


def sample_sentences(n: int, seed: int = 0) -> list:
  rng = random.Random(seed)
  return [' '.join(rng.choice(_WORDS) for _ in range(rng.randint(2, 12))) for _ in range(n)]


def train_tiny_spm(directory: str, vocab_size: int = 400, sentences=None) -> str:
  """Trains a byte-fallback unigram model; returns the .model path."""
  os.makedirs(directory, exist_ok=True)
  return sentencepiece_training.train_t5_sentencepiece(
    sentences or sample_sentences(2000), os.path.join(directory, 'tiny_spm'), vocab_size
  )


@pytest.fixture(scope='session')
def spm_model_path(tmp_path_factory) -> str:
  return train_tiny_spm(str(tmp_path_factory.mktemp('spm')))
