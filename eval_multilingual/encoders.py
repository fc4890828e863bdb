"""Embeds texts and images with an mlit TwoTower model for evaluation.

An encoder has `embed_texts(list[str]) -> [N, D]`, `embed_images(x, kind) -> [N, D]`
(kind 'image': float [N, H, W, 3] in [-1, 1]; 'embedding': pre-computed [N, D_img]) and
a `fingerprint` naming the model weights, tokenizer and text length (for caches).
Texts are tokenized with a seqio SentencePieceVocabulary: ids + EOS, truncated to the
model's text length with the last token forced to EOS (sticky EOS), padded with 0.
Work is done in fixed-size jitted batches (the last one padded), so nothing recompiles.

Constructors:
- `from_mlit_checkpoint`: a TwoTower and the params of an mlit training checkpoint.
- `from_t5x_and_npz`: for ablations, a text tower from a T5X checkpoint and an image
  tower from a big_vision .npz; parameters neither file has (heads, temperature) keep
  their seeded initial values, and `load_report` lists them.
"""

import hashlib
import logging
import os
import time
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

EOS_ID = 1
PAD_ID = 0


class Tokenizer:
  """Texts -> int32 [N, length] with sticky EOS, using a SentencePiece model."""

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


def params_fingerprint(params: Any, extra: str = '') -> str:
  """Hash of every parameter's name, shape, dtype and bytes."""
  h = hashlib.blake2b(extra.encode('utf-8'), digest_size=12)
  for path, leaf in jax.tree_util.tree_flatten_with_path(nn.unbox(params))[0]:
    arr = np.asarray(leaf)
    h.update(f'{jax.tree_util.keystr(path)}{arr.shape}{arr.dtype}'.encode())
    h.update(np.ascontiguousarray(arr).tobytes())
  return h.hexdigest()


class TwoTowerEncoder:
  """Batches, jit and progress logging around TwoTower.apply."""

  text_memo_size = 100_000  # distinct texts kept (51 MB at 128 floats each)

  def __init__(
    self,
    model,
    params,
    tokenizer: Tokenizer,
    batch_size: int = 256,
    name: str = '',
    load_report: str = '',
  ):
    self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
    self.params = jax.tree_util.tree_map(jnp.asarray, nn.unbox(params))
    self.name, self.load_report = name, load_report
    self.fingerprint = params_fingerprint(
      self.params, f'{model!r}|{tokenizer.vocab_digest}|{tokenizer.length}'
    )
    self._text_fn = jax.jit(lambda p, t: model.apply({'params': p}, text=t)[1])
    self._image_fn = jax.jit(lambda p, x: model.apply({'params': p}, image=x)[0])
    self._emb_fn = jax.jit(lambda p, x: model.apply({'params': p}, image_embedding=x)[0])
    self._text_memo: dict[str, np.ndarray] = {}

  def _batched(self, fn, x: np.ndarray, what: str) -> np.ndarray:
    n, bs, outs = len(x), self.batch_size, []
    start, last_log = time.time(), time.time()
    for s in range(0, n, bs):
      chunk = x[s : s + bs]
      if len(chunk) < bs:  # pad with copies of the first row: one compiled shape
        chunk = np.concatenate([chunk, np.repeat(chunk[:1], bs - len(chunk), 0)])
      outs.append(np.asarray(fn(self.params, chunk))[: min(bs, n - s)])
      if time.time() - last_log > 30:
        last_log = time.time()
        logging.info('embedded %d/%d %s (%.0fs)', s + bs, n, what, last_log - start)
    if not outs:
      return np.zeros((0, self.model.out_dim), np.float32)
    return np.concatenate(outs).astype(np.float32)

  def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
    """Embeds each distinct text once per encoder: evaluations of one run share class
    names (zero-shot on a concept subset, retrieval on the same names)."""
    texts = list(texts)
    new = list(dict.fromkeys(t for t in texts if t not in self._text_memo))
    if new:
      if len(self._text_memo) + len(new) > self.text_memo_size:
        self._text_memo.clear()
        new = list(dict.fromkeys(texts))
      embs = self._batched(self._text_fn, self.tokenizer(new), 'texts')
      self._text_memo.update(zip(new, embs))
    if not texts:
      return np.zeros((0, self.model.out_dim), np.float32)
    return np.stack([self._text_memo[t] for t in texts])

  def embed_images(self, x: np.ndarray, kind: str) -> np.ndarray:
    if kind == 'image':
      return self._batched(self._image_fn, np.asarray(x, np.float32), 'images')
    if kind == 'embedding':
      return self._batched(self._emb_fn, np.asarray(x, np.float32), 'image embeddings')
    raise ValueError(f'unknown image kind {kind!r} (image | embedding)')

  def describe(self) -> dict:
    return {
      'name': self.name,
      'fingerprint': self.fingerprint,
      'vocabulary': self.tokenizer.vocab_path,
      'text_length': self.tokenizer.length,
      'out_dim': self.model.out_dim,
      'load_report': self.load_report,
    }


def init_params(model, image_size: int, seed: int = 0, image_embedding_dim: int | None = None):
  """Initial (unboxed) params of a TwoTower, for shapes and for what no file provides."""
  text = jnp.ones((1, 4), jnp.int32)
  if model.image is not None:
    variables = model.init(
      jax.random.PRNGKey(seed),
      text=text,
      image=jnp.zeros((1, image_size, image_size, 3), jnp.float32),
    )
  else:
    variables = model.init(
      jax.random.PRNGKey(seed),
      text=text,
      image_embedding=jnp.zeros((1, image_embedding_dim or 1), jnp.float32),
    )
  return nn.unbox(variables['params'])


def restore_params(checkpoint_dir: str, step: int | None = None) -> tuple[Any, int]:
  """Params of an mlit training checkpoint: (params, step), the latest step by default.

  `checkpoint_dir` is MODEL_DIR or its checkpoints/ directory (mlit.checkpoints.run_state's layout).
  """
  from mlit.checkpoints import run_state as checkpointing  # pylint: disable=g-import-not-at-top

  if os.path.isdir(os.path.join(checkpoint_dir, 'checkpoints')):
    checkpoint_dir = os.path.join(checkpoint_dir, 'checkpoints')  # given MODEL_DIR
  if not os.path.isdir(checkpoint_dir):
    raise FileNotFoundError(f'no checkpoint directory {checkpoint_dir!r}')
  return checkpointing.read_params(checkpoint_dir, step)


def from_mlit_checkpoint(
  model,
  checkpoint_dir: str,
  vocabulary,
  text_length: int = 16,
  batch_size: int = 256,
  step: int | None = None,
  image_tower: dict | None = None,
  image_checkpoint_path: str | None = None,
  image_size: int = 224,
) -> TwoTowerEncoder:
  """A TwoTower with the params of an mlit training checkpoint (MODEL_DIR or its
  checkpoints/ directory; the latest step unless `step` is given).

  A model tuned on pre-computed embeddings (model.image is None) has no ViT in its
  checkpoint; given `image_tower` (ViT kwargs) and `image_checkpoint_path` (the
  locked tower's big_vision .npz that made the embeddings), the encoder runs that
  tower on pixels of `image_size`, so evaluation sees images, not stored vectors.
  """
  params, step = restore_params(checkpoint_dir, step)
  name, report = f'mlit:{checkpoint_dir}@{step}', ''
  if (image_tower is None) != (image_checkpoint_path is None):
    raise ValueError(
      'from_mlit_checkpoint: give both image_tower and image_checkpoint_path, or neither'
    )
  if image_tower is not None:
    if model.image is not None:
      raise ValueError(
        'from_mlit_checkpoint: image_tower is for models tuned on pre-computed '
        'embeddings, but this model has its own image tower'
      )
    from mlit.checkpoints import big_vision_npz as vit_checkpoint  # pylint: disable=g-import-not-at-top

    model = model.clone(image=dict(image_tower), lock_image=True)
    params = dict(nn.unbox(params))
    params['img'], vit_report = vit_checkpoint.load_big_vision_npz(
      image_checkpoint_path,
      init_params(model, image_size)['img'],
      strict=True,
      image_size=image_size,
    )
    name += f'+npz:{image_checkpoint_path}'
    report = f'img: {vit_report.summary()}'
  return TwoTowerEncoder(
    model, params, Tokenizer(vocabulary, text_length), batch_size, name=name, load_report=report
  )


def from_t5x_and_npz(
  model,
  t5x_path: str,
  vit_npz: str | None,
  vocabulary,
  text_length: int = 16,
  image_size: int = 224,
  batch_size: int = 256,
  image_embedding_dim: int | None = None,
  seed: int = 0,
) -> TwoTowerEncoder:
  """Text tower from a T5X checkpoint, image tower from a big_vision .npz (ablations)."""
  from mlit.checkpoints import big_vision_npz as vit_checkpoint
  from mlit.checkpoints import t5x as t5x_checkpoint  # pylint: disable=g-import-not-at-top

  params = dict(init_params(model, image_size, seed, image_embedding_dim))
  params['txt'], txt_report = t5x_checkpoint.load_text_tower_from_t5x(
    t5x_path, params['txt'], strict=True
  )
  report = f'txt: {txt_report}'
  if vit_npz is not None:
    if model.image is None:
      raise ValueError('vit_npz given but the TwoTower has no image tower (image=None)')
    params['img'], img_report = vit_checkpoint.load_big_vision_npz(
      vit_npz, params['img'], image_size=image_size
    )
    report += f'; img: {img_report.summary()}'
  return TwoTowerEncoder(
    model,
    params,
    Tokenizer(vocabulary, text_length),
    batch_size,
    name=f't5x:{t5x_path}+npz:{vit_npz}',
    load_report=report,
  )
