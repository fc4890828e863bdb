"""Trains the SentencePiece vocabularies mlit's tasks and text tower take: unigram with byte
fallback and T5's ids (pad 0, eos 1, unk 2, no bos). One trainer for `mlit vocab`, the demo's
vocabulary (tasks/emoji_cldr/vocab.py) and the tests; no TensorFlow, so those stay light."""

from typing import Iterable


def train_t5_sentencepiece(
  texts: Iterable[str],
  model_prefix: str,
  vocab_size: int,
  *,
  character_coverage: float = 1.0,
  split_digits: bool = False,
  num_threads: int = 1,
) -> str:
  """Writes model_prefix.model and .vocab from `texts`; returns the .model path.

  The size is a soft limit: texts with fewer pieces give a smaller model (the caller says so).
  """
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top

  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(texts),
    model_prefix=model_prefix,
    vocab_size=vocab_size,
    model_type='unigram',
    byte_fallback=True,
    character_coverage=character_coverage,
    pad_id=0,
    eos_id=1,
    unk_id=2,
    bos_id=-1,
    hard_vocab_limit=False,
    num_threads=num_threads,
    split_digits=split_digits,
    train_extremely_large_corpus=False,
    minloglevel=2,
  )
  return model_prefix + '.model'
