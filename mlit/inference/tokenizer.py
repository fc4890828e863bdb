"""Texts -> token ids the way mlit tunes them: SentencePiece ids + EOS, sticky EOS, PAD 0."""

import hashlib
import itertools
import os
from typing import Sequence

import numpy as np

from tasks import file_io
from tasks.user_error import UserError

EOS_ID = 1
PAD_ID = 0


class Tokenizer:
  """Texts -> int32 [N, length]: ids + EOS, truncated to `length` with the last token forced
  to EOS (sticky EOS), padded with 0."""

  def __init__(self, vocabulary, length: int = 16):
    """vocabulary: a SentencePiece model path (str or os.PathLike) or a
    seqio.SentencePieceVocabulary."""
    import sentencepiece  # pylint: disable=g-import-not-at-top

    if isinstance(vocabulary, (str, os.PathLike)):
      # The model's bytes, not seqio's vocabulary: importing seqio loads TensorFlow (5-6 s of
      # every `mlit predict`), and the processor is the same C++ one seqio would make.
      self.vocab_path = os.fspath(vocabulary)
      with file_io.open_binary(self.vocab_path) as f:
        proto = f.read()
      self.processor = sentencepiece.SentencePieceProcessor()
      self.processor.LoadFromSerializedProto(proto)
    else:
      self.vocab_path = str(vocabulary.sentencepiece_model_file)
      try:
        proto, self.processor = vocabulary.sp_model, vocabulary.tokenizer
      except Exception as e:  # pylint: disable=broad-except
        # seqio reads the model through tf.io.gfile: a missing or unreachable file (a gs:// path
        # offline) is one of TensorFlow's errors, whose message alone does not say which setting.
        if not type(e).__module__.startswith('tensorflow'):
          raise
        message = ' '.join(str(e).split())
        raise UserError(
          f'cannot read the SentencePiece model {self.vocab_path!r} (VOCABULARY, '
          f'seqio.SentencePieceVocabulary.sentencepiece_model_file): {message}'
        ) from e
    self.length = length
    self.vocab_digest = hashlib.sha256(proto).hexdigest()[:16]
    eos_id = self.processor.eos_id()
    self.eos_id = eos_id if eos_id >= 0 else EOS_ID

  def encode(self, texts: Sequence[str]) -> list[list[int]]:
    """Each text's SentencePiece ids, untruncated, without EOS."""
    # One C++ call for the whole list: evaluations tokenize hundreds of thousands of prompts
    # (the prompt-set statistics of 20 languages took 1.3 s this way, 2.7 s a text at a time).
    texts = list(texts)
    return self.processor.EncodeAsIds(texts) if texts else []

  def pad(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
    """Untruncated ids -> int32 [N, length]: cut to length - 1, EOS, PAD."""
    keep = self.length - 1
    lengths = np.fromiter((min(len(row), keep) for row in ids), np.int64, count=len(ids))
    flat = np.fromiter(
      itertools.chain.from_iterable(row[:keep] for row in ids), np.int32, count=int(lengths.sum())
    )
    out = np.full((len(ids), self.length), PAD_ID, np.int32)
    out[np.arange(self.length) < lengths[:, None]] = flat  # row-major: each row's ids in order
    out[np.arange(len(ids)), lengths] = self.eos_id
    return out

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    return self.pad(self.encode(texts))
