"""Extends a SentencePiece vocabulary with a new language's pieces and grows the text embedding.

- New pieces come from a SentencePiece model trained on the language's texts (same model type);
  pieces the old vocabulary already has, and non-NORMAL pieces, are skipped. A piece that would
  change how a sample of an existing language's texts is segmented is left out (unless allowed),
  so those texts keep their ids and their embeddings exactly; the next candidate takes its place.
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
import re
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
) -> tuple[list[tuple[str, float]], dict]:
  """(piece, score) of a model trained on `texts`, best first, that `old` does not have; and
  counts of the trained model's pieces: 'trained', 'already_present', 'special'."""
  if not texts:
    raise ValueError('no texts to train new pieces on')
  type_name = sp_pb2.TrainerSpec.ModelType.Name(old.trainer_spec.model_type).lower()
  if type_name not in ('unigram', 'bpe'):
    raise ValueError(f'vocabulary extension supports unigram and bpe models, not {type_name}')
  if num_pieces < 1:
    raise ValueError(f'num_pieces {num_pieces}: the minimum is 1')
  vocab_size = seed_vocab_size or int(num_pieces * 1.5) + 16
  for _ in range(2):
    model = io.BytesIO()
    try:
      spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type=type_name,
        vocab_size=vocab_size,
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
      break
    except RuntimeError as e:
      # The seed model must hold every character of the texts; the best num_pieces of a larger
      # one are taken all the same, so a small --num-pieces trains on the size it needs.
      m = re.search(r'required_chars\. (\d+) vs (\d+)', str(e))
      if not m or int(m.group(2)) <= vocab_size:
        raise
      vocab_size = int(m.group(2))
  new = sp_pb2.ModelProto()
  new.ParseFromString(model.getvalue())
  existing = {p.piece for p in old.pieces}
  special = [p for p in new.pieces if p.type != NORMAL or p.piece == '▁']
  present = [p for p in new.pieces if p not in special and p.piece in existing]
  cands = [(p.piece, p.score) for p in new.pieces if p not in special and p.piece not in existing]
  cands.sort(key=lambda ps: -ps[1])
  counts = {'trained': len(new.pieces), 'already_present': len(present), 'special': len(special)}
  return cands, counts


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
  report: dict  # pieces requested / added / not added and why; old languages' id changes


def _changed(old_ids: dict, proto: sp_pb2.ModelProto, old_texts: dict, old_size: int):
  """Per old language: texts whose ids differ under `proto`; and the new ids those texts use."""
  sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
  changed, culprits = {}, set()
  for lang, texts in old_texts.items():
    n = 0
    for before, after in zip(old_ids[lang], sp.encode(texts)):
      if before != after:
        n += 1
        culprits.update(i for i in after if i >= old_size)
    changed[lang] = n
  return changed, culprits


def select_pieces(
  old: sp_pb2.ModelProto,
  candidates: list[tuple[str, float]],
  num_pieces: int,
  old_texts: dict[str, list[str]],
  allow_old_changes: bool = False,
) -> tuple[list[tuple[str, float]], list[str], dict, dict]:
  """Up to num_pieces candidates, best first, none of which changes an old text's ids.

  A unigram segmentation changes only where the best path now uses a new piece (old scores are
  kept), so the new pieces the changed texts use are dropped and the next candidates tried, until
  the sample keeps its ids. Returns (pieces, excluded, changed texts per language with the first
  pieces tried, changed texts per language with the pieces kept).
  """
  old_size = len(old.pieces)
  sp_old = spm.SentencePieceProcessor(model_proto=old.SerializeToString())
  old_ids = {lang: sp_old.encode(texts) for lang, texts in old_texts.items()}
  pool, chosen, excluded, first = list(candidates), [], [], None
  while True:
    take = num_pieces - len(chosen)
    chosen, pool = chosen + pool[:take], pool[take:]
    changed, culprits = _changed(old_ids, merge(old, chosen), old_texts, old_size)
    first = changed if first is None else first
    if allow_old_changes or not culprits:
      return chosen, excluded, first, changed
    bad = {chosen[i - old_size][0] for i in culprits}
    excluded += sorted(bad)
    chosen = [c for c in chosen if c[0] not in bad]


def extend(
  old: sp_pb2.ModelProto,
  texts: list[str],
  num_pieces: int,
  old_texts: dict[str, list[str]] | None = None,
  allow_old_changes: bool = False,
) -> Extension:
  """Appends up to num_pieces of the language's pieces to `old` (see the module docstring)."""
  candidates, counts = train_candidate_pieces(texts, old, num_pieces)
  pieces, excluded, changed_all, changed = select_pieces(
    old, candidates, num_pieces, old_texts or {}, allow_old_changes
  )
  if not pieces:
    raise ValueError('training on the texts gave no piece the vocabulary lacks')
  report = {
    'requested': num_pieces,
    'added': len(pieces),
    'trained_model_pieces': counts['trained'],
    'already_in_vocabulary': counts['already_present'],
    'special_pieces': counts['special'],
    'new_candidates': len(candidates),
    'excluded_changing_old_languages': len(excluded),
    'excluded_pieces': excluded[:50],
    'not_added': num_pieces - len(pieces),
    'old_language_texts': {lang: len(t) for lang, t in (old_texts or {}).items()},
    'old_language_changed_if_all_added': changed_all,
    'old_language_changed': changed,
  }
  return Extension(
    proto=merge(old, pieces),
    pieces=pieces,
    tokenisations=old_tokenisations(old, [p for p, _ in pieces]),
    old_vocab_size=len(old.pieces),
    report=report,
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
