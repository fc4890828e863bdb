"""Texts -> token ids the way mlit tunes them: SentencePiece ids + EOS, sticky EOS, PAD 0."""

import hashlib
from typing import Sequence

import numpy as np

EOS_ID = 1
PAD_ID = 0


class Tokenizer:
  """Texts -> int32 [N, length]: ids + EOS, truncated to `length` with the last token forced
  to EOS (sticky EOS), padded with 0."""

  def __init__(self, vocabulary, length: int = 16):
    """vocabulary: a SentencePiece model path or a seqio.SentencePieceVocabulary."""
    if isinstance(vocabulary, str):
      import seqio  # pylint: disable=g-import-not-at-top

      vocabulary = seqio.SentencePieceVocabulary(vocabulary)
    self.vocab, self.length = vocabulary, length
    self.vocab_path = str(getattr(vocabulary, 'sentencepiece_model_file', vocabulary))
    proto = getattr(vocabulary, 'sp_model', None)  # the model bytes, not its path
    self.vocab_digest = hashlib.sha256(proto or self.vocab_path.encode()).hexdigest()[:16]
    self.eos_id = self.vocab.eos_id if self.vocab.eos_id is not None else EOS_ID

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    out = np.full((len(texts), self.length), PAD_ID, np.int32)
    for i, t in enumerate(texts):
      ids = list(self.vocab.encode(t))[: self.length - 1] + [self.eos_id]
      out[i, : len(ids)] = ids
    return out
