"""Extends a SentencePiece vocabulary with a new language's pieces and grows the text embedding.

- New pieces come from a SentencePiece model trained on the language's texts (same model type);
  pieces the old vocabulary already has, and non-NORMAL pieces, are skipped.
- They are appended to the old ModelProto as NORMAL pieces with the new model's scores: every
  existing id keeps its piece, score and type.
- The embedding grows: rows of old ids are copied bit for bit, a new piece's row is the mean of the
  old rows of its old-vocabulary tokenisation (bytes included), and rows past the vocabulary keep
  T5X's padding to a multiple of `pad_to`.
- The result is written as a T5X checkpoint in the Orbax layout newer T5X writes
  (`checkpoint_0/state/`, tree {'target': {...}}), which `mlit.checkpoints.t5x` reads and
  `mlit.training.train` starts from with INITIAL_CHECKPOINT_PATH.
"""

import dataclasses
import io
import os
from typing import Iterable

import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

NORMAL = sp_pb2.ModelProto.SentencePiece.NORMAL
EMBEDDING_KEY = 'token_embedder/embedding'


def load_proto(path: str) -> sp_pb2.ModelProto:
  proto = sp_pb2.ModelProto()
  with open(path, 'rb') as f:
    proto.ParseFromString(f.read())
  if not proto.pieces:
    raise ValueError(f'{path}: not a SentencePiece model (no pieces)')
  return proto


def train_candidate_pieces(
  texts: list[str], old: sp_pb2.ModelProto, num_pieces: int, seed_vocab_size: int | None = None
) -> list[tuple[str, float]]:
  """(piece, score) of a model trained on `texts`, best first, that `old` does not have."""
  if not texts:
    raise ValueError('no texts to train new pieces on')
  type_name = sp_pb2.TrainerSpec.ModelType.Name(old.trainer_spec.model_type).lower()
  if type_name not in ('unigram', 'bpe'):
    raise ValueError(f'vocabulary extension supports unigram and bpe models, not {type_name}')
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(texts),
    model_writer=model,
    model_type=type_name,
    vocab_size=seed_vocab_size or int(num_pieces * 1.5) + 16,
    hard_vocab_limit=False,
    character_coverage=1.0,
    byte_fallback=False,
    pad_id=-1,
    bos_id=-1,
    eos_id=-1,
    unk_id=0,
    normalization_rule_name=old.normalizer_spec.name or 'nmt_nfkc',
    minloglevel=2,
    num_threads=1,
  )
  new = sp_pb2.ModelProto()
  new.ParseFromString(model.getvalue())
  existing = {p.piece for p in old.pieces}
  cands = [
    (p.piece, p.score)
    for p in new.pieces
    if p.type == NORMAL and p.piece not in existing and p.piece != '▁'
  ]
  cands.sort(key=lambda ps: -ps[1])
  return cands[:num_pieces]


def merge(old: sp_pb2.ModelProto, pieces: Iterable[tuple[str, float]]) -> sp_pb2.ModelProto:
  """A copy of `old` with `pieces` appended as NORMAL pieces (existing ids untouched)."""
  new = sp_pb2.ModelProto()
  new.CopyFrom(old)
  seen = {p.piece for p in old.pieces}
  for piece, score in pieces:
    if piece in seen:
      raise ValueError(f'piece {piece!r} is already in the vocabulary')
    seen.add(piece)
    p = new.pieces.add()
    p.piece, p.score, p.type = piece, float(score), NORMAL
  new.trainer_spec.vocab_size = len(new.pieces)
  return new


def old_tokenisations(old: sp_pb2.ModelProto, pieces: list[str]) -> list[list[int]]:
  """Old-vocabulary ids of each piece's surface text ('▁' = a space, no dummy prefix added)."""
  raw = sp_pb2.ModelProto()
  raw.CopyFrom(old)
  # Encode the piece text as is: no extra leading '▁', and a leading space is kept.
  raw.normalizer_spec.add_dummy_prefix = False
  raw.normalizer_spec.remove_extra_whitespaces = False
  sp = spm.SentencePieceProcessor(model_proto=raw.SerializeToString())
  return sp.encode([p.replace('▁', ' ') for p in pieces])


def grow_embedding(
  emb: np.ndarray, old_vocab_size: int, tokenisations: list[list[int]], pad_to: int = 128
) -> np.ndarray:
  """[rows, d] -> [new_rows, d]: old rows kept, new rows = mean of old rows of the tokenisation."""
  rows, dim = emb.shape
  if rows < old_vocab_size:
    raise ValueError(
      f'{EMBEDDING_KEY} has {rows} rows but the vocabulary has {old_vocab_size} '
      'pieces: checkpoint and vocabulary do not belong together'
    )
  new_size = old_vocab_size + len(tokenisations)
  new_rows = max(rows, -(-new_size // pad_to) * pad_to) if pad_to > 1 else max(rows, new_size)
  out = np.zeros((new_rows, dim), dtype=emb.dtype)
  out[:rows] = emb  # old ids, and old padding rows where no new piece lands
  for k, ids in enumerate(tokenisations):
    if not ids:
      raise ValueError(f'new piece #{k} has an empty old tokenisation')
    out[old_vocab_size + k] = emb[np.asarray(ids)].astype(np.float64).mean(0).astype(emb.dtype)
  return out


@dataclasses.dataclass
class Extension:
  proto: sp_pb2.ModelProto
  pieces: list[tuple[str, float]]
  tokenisations: list[list[int]]
  old_vocab_size: int


def extend(old: sp_pb2.ModelProto, texts: list[str], num_pieces: int) -> Extension:
  pieces = train_candidate_pieces(texts, old, num_pieces)
  if not pieces:
    raise ValueError('training on the texts gave no piece the vocabulary lacks')
  return Extension(
    proto=merge(old, pieces),
    pieces=pieces,
    tokenisations=old_tokenisations(old, [p for p, _ in pieces]),
    old_vocab_size=len(old.pieces),
  )


def _nest(flat: dict[str, np.ndarray]) -> dict:
  tree: dict = {}
  for key, value in flat.items():
    node = tree
    *parents, leaf = key.split('/')
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def save_t5x_orbax(flat_params: dict[str, np.ndarray], out_dir: str, step: int = 0) -> str:
  """Writes {'target': params} as `out_dir/checkpoint_<step>/state` (Orbax); returns the dir."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  ckpt_dir = os.path.abspath(os.path.join(out_dir, f'checkpoint_{step}'))
  if os.path.exists(ckpt_dir):
    raise FileExistsError(f'{ckpt_dir} exists; choose another --out')
  os.makedirs(ckpt_dir)
  tree = {'target': _nest({k: np.asarray(v) for k, v in flat_params.items()})}
  checkpointer = ocp.PyTreeCheckpointer()
  checkpointer.save(os.path.join(ckpt_dir, 'state'), tree)
  return ckpt_dir
