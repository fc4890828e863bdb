"""Made-up multilingual texts and a tiny SentencePiece model trained on them (benchmarks only).

Nothing is downloaded: the words are listed here. T5 ids: pad 0, eos 1, unk 2.
"""

import os
import random

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
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top

  os.makedirs(directory, exist_ok=True)
  corpus = os.path.join(directory, 'corpus.txt')
  with open(corpus, 'w', encoding='utf-8') as f:
    f.write('\n'.join(texts(n_texts, 0)) + '\n')
  prefix = os.path.join(directory, 'bench_spm')
  spm.SentencePieceTrainer.train(
    input=corpus,
    model_prefix=prefix,
    vocab_size=vocab_size,
    model_type='unigram',
    byte_fallback=True,
    character_coverage=1.0,
    pad_id=0,
    eos_id=1,
    unk_id=2,
    bos_id=-1,
    hard_vocab_limit=False,
    num_threads=1,
    minloglevel=2,
  )
  return prefix + '.model'
