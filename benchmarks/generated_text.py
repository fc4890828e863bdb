"""Made-up multilingual texts and a tiny SentencePiece model trained on them (benchmarks only).

Nothing is downloaded: the words are listed here. T5 ids: pad 0, eos 1, unk 2.
"""

import os
import random

from tasks import sentencepiece_training

WORDS = (
  'a photo of the small big red blue dog cat bird car tree house boat river mountain flower '
  'sunset over sea beach city street night lake snow bridge train people '
  'chien chat arbre maison fleur montagne coucher de soleil sur la mer '
  'Hund Katze Baum Haus Blume Berg Sonnenuntergang über dem Meer '
  'perro gato casa árbol flor montaña puesta del sol en el mar'
).split()


def texts(n: int, seed: int, min_words: int = 3, max_words: int = 10) -> list[str]:
  rng = random.Random(seed)
  return [
    ' '.join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))) for _ in range(n)
  ]


def train_spm(directory: str, vocab_size: int = 400, n_texts: int = 3000) -> str:
  """A byte-fallback unigram model on `n_texts` generated texts; returns the .model path."""
  os.makedirs(directory, exist_ok=True)
  return sentencepiece_training.train_t5_sentencepiece(
    texts(n_texts, 0), os.path.join(directory, 'bench_spm'), vocab_size
  )
