"""Embeds texts and images with an mlit TwoTower: the one implementation behind `mlit.load`
and the evaluation (eval_multilingual.encoders).

An encoder has `embed_texts(list[str]) -> [N, D]`, `embed_images(x, kind) -> [N, D]`
(kind 'image': float [N, H, W, 3] in [-1, 1]; 'embedding': pre-computed [N, D_img]) and
a `fingerprint` naming the model weights, tokenizer and text length (for caches).
Work is done in jitted batches of `batch_size`; a shorter last batch is padded to the next
power of two (at least 8), so a handful of shapes is compiled once each. Texts are grouped by
token count and each group cut to the multiple of WIDTH_STEP tokens it needs: a text's
embedding does not depend on its padding (masked attention, relative positions, masked
pooling), and prompts are mostly far shorter than the text length.
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

import gin
from mlit import run_layout
from mlit.inference import image_towers, run_spec
from mlit.inference.tokenizer import Tokenizer
from tasks import file_io
from tasks.user_error import UserError

MIN_BATCH = 8
WIDTH_STEP = 8  # text widths compiled: multiples of this, up to the text length


def params_fingerprint(params: Any, extra: str = '') -> str:
  """Hash of every parameter's name, shape, dtype and bytes."""
  h = hashlib.blake2b(extra.encode('utf-8'), digest_size=12)
  for path, leaf in jax.tree_util.tree_flatten_with_path(nn.unbox(params))[0]:
    arr = np.asarray(leaf)
    h.update(f'{jax.tree_util.keystr(path)}{arr.shape}{arr.dtype}'.encode())
    h.update(np.ascontiguousarray(arr).tobytes())
  return h.hexdigest()


def padded_size(n: int, batch_size: int) -> int:
  """Rows a chunk of n <= batch_size is padded to: a power of two >= MIN_BATCH, or batch_size."""
  size = MIN_BATCH
  while size < n:
    size *= 2
  return min(size, batch_size)


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
    self.step = None  # the checkpoint step, when made from one
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
      rows = padded_size(len(chunk), bs)
      if len(chunk) < rows:  # pad with copies of the first row: few compiled shapes
        chunk = np.concatenate([chunk, np.repeat(chunk[:1], rows - len(chunk), 0)])
      outs.append(np.asarray(fn(self.params, chunk))[: min(bs, n - s)])
      if time.time() - last_log > 30:
        last_log = time.time()
        logging.info('embedded %d/%d %s (%.0fs)', s + bs, n, what, last_log - start)
    if not outs:
      return np.zeros((0, self.model.out_dim), np.float32)
    return np.concatenate(outs).astype(np.float32)

  def embed_texts(self, texts: Sequence[str], token_ids: np.ndarray | None = None) -> np.ndarray:
    """Embeds each distinct text once per encoder: evaluations of one run share class
    names (zero-shot on a concept subset, retrieval on the same names). `token_ids`: the texts'
    ids as the tokenizer gives them ([N, length]), when the caller has them already."""
    texts = list(texts)
    if not texts:
      return np.zeros((0, self.model.out_dim), np.float32)
    row = None if token_ids is None else {t: i for i, t in enumerate(texts)}

    def padded(some: list[str]) -> np.ndarray:
      return self.tokenizer(some) if row is None else token_ids[[row[t] for t in some]]

    new = list(dict.fromkeys(t for t in texts if t not in self._text_memo))
    if new:
      if len(self._text_memo) + len(new) > self.text_memo_size:
        self._text_memo.clear()
        new = list(dict.fromkeys(texts))
      if len(new) > self.text_memo_size:  # more than the memo holds: a chunk at a time, not kept
        return self._embed_unremembered(new, texts, padded)
      self._text_memo.update(zip(new, self._embed_token_ids(padded(new))))
    return np.stack([self._text_memo[t] for t in texts])

  def _embed_unremembered(self, distinct: list[str], texts: list[str], padded) -> np.ndarray:
    """A call with more distinct texts than the memo holds (a corpus embedded through the API):
    tokenized and embedded a memo's worth at a time, so memory holds the embeddings, not also
    every text's token ids and a second copy in the memo."""
    step = self.text_memo_size
    out = np.concatenate(
      [self._embed_token_ids(padded(distinct[s : s + step])) for s in range(0, len(distinct), step)]
    )
    if len(distinct) == len(texts):  # no repeats: already in order
      return out
    row = {t: i for i, t in enumerate(distinct)}
    return out[[row[t] for t in texts]]

  def _embed_token_ids(self, ids: np.ndarray) -> np.ndarray:
    """[N, L] padded token ids -> [N, D]; each width group at its own width (module doc)."""
    length = ids.shape[1]
    used = np.where(ids != 0, np.arange(1, length + 1), 0).max(axis=1, initial=0)
    widths = np.minimum(-(-np.maximum(used, 1) // WIDTH_STEP) * WIDTH_STEP, length)
    out = np.zeros((len(ids), self.model.out_dim), np.float32)
    for width in np.unique(widths):
      rows = np.flatnonzero(widths == width)
      out[rows] = self._batched(self._text_fn, ids[rows, :width], 'texts')
    return out

  def embed_images(self, x: np.ndarray, kind: str) -> np.ndarray:
    if kind == 'image' and self.model.image is None:
      raise UserError(
        f'{self.name}: the model was tuned on pre-computed image embeddings and has no image '
        'tower to embed pixels: bind encoders.from_mlit_checkpoint.image_tower and '
        'image_checkpoint_path (the locked tower; read from MODEL_DIR/mlit_model.json when it '
        'records one), or give the evaluation pre-computed embeddings'
      )
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
  # One compiled init: run eagerly, every initializer of a new shape compiles on its own
  # (37 s of CPU for EfficientNet-Lite0's ~250 parameters).
  init = jax.jit(model.init)
  if model.image is not None:
    variables = init(
      jax.random.PRNGKey(seed),
      text=text,
      image=jnp.zeros((1, image_size, image_size, 3), jnp.float32),
    )
  else:
    variables = init(
      jax.random.PRNGKey(seed),
      text=text,
      image_embedding=jnp.zeros((1, image_embedding_dim or 1), jnp.float32),
    )
  return nn.unbox(variables['params'])


def zero_params(model, image_size: int):
  """Zeros in the shapes and dtypes of a TwoTower's params, without running its init: for
  strict loads, which replace every value (a missing one is an error, never a zero)."""
  shapes = jax.eval_shape(lambda: init_params(model, image_size))
  return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def restore_params(checkpoint_dir: str, step: int | None = None) -> tuple[Any, int]:
  """Params of an mlit training checkpoint: (params, step), the latest step by default.

  `checkpoint_dir` is MODEL_DIR or its checkpoints/ directory (mlit.checkpoints.run_state's layout).
  """
  from mlit.checkpoints import run_state  # pylint: disable=g-import-not-at-top

  if os.path.isdir(run_layout.checkpoints(checkpoint_dir)):
    checkpoint_dir = run_layout.checkpoints(checkpoint_dir)  # given MODEL_DIR
  if not os.path.isdir(checkpoint_dir):
    where = ''
    if not os.path.isabs(checkpoint_dir):  # e.g. a run's config.gin, written with relative paths
      where = (
        f' (relative to the working directory {os.getcwd()}; a config.gin names paths as the run '
        'was given them: run from the directory it was trained in)'
      )
    raise FileNotFoundError(f'no checkpoint directory {checkpoint_dir!r}{where}')
  return run_state.read_params(checkpoint_dir, step)


def _run_of_config_gin(checkpoint_dir: str) -> str:
  """The run whose config.gin bound MODEL_DIR, when `checkpoint_dir` (that MODEL_DIR) is not
  here: a config.gin names MODEL_DIR as the training command was given it (relative to where
  it ran, or another machine's path), and the trainer writes config.gin into MODEL_DIR, so a
  config.gin beside mlit_model.json is that run's, wherever it is now."""
  from mlit.commands import gin_unread  # pylint: disable=g-import-not-at-top

  try:
    bound = gin.query_parameter('%MODEL_DIR')
  except ValueError:  # no MODEL_DIR macro: not a run's config
    return checkpoint_dir
  where = gin_unread.macro_bound_in('MODEL_DIR')
  if bound != checkpoint_dir or not where or where.startswith('--gin'):
    return checkpoint_dir  # bound by a flag: what the user typed is what they meant
  config = where.rsplit(':', 1)[0]
  if not run_spec.is_run_config(config):
    return checkpoint_dir
  run = os.path.dirname(os.path.abspath(config))
  logging.warning(
    'MODEL_DIR %r (as %s names it) is not here; evaluating %s, the run that config.gin belongs to',
    checkpoint_dir,
    config,
    run,
  )
  return run


def from_mlit_checkpoint(
  model,
  checkpoint_dir: str,
  vocabulary,
  text_length: int | None = None,
  batch_size: int = 256,
  step: int | None = None,
  image_tower: dict | None = None,
  image_checkpoint_path: str | None = None,
  image_size: int | None = None,
  image_tower_kind: str = 'vit',
) -> TwoTowerEncoder:
  """A TwoTower with the params of an mlit training checkpoint (MODEL_DIR or its
  checkpoints/ directory; the latest step unless `step` is given).

  A model tuned on pre-computed embeddings (model.image is None) has no image tower in its
  checkpoint; given `image_tower` (the tower's config, of kind `image_tower_kind`, see
  mlit.inference.image_towers) and `image_checkpoint_path` (the locked tower that made the
  embeddings), the encoder runs that tower on pixels of `image_size`, so evaluation sees
  images, not stored vectors.

  What is not bound comes from the run's mlit_model.json (written by the trainer, read by
  mlit.load): `text_length` the model's, and for a model without a tower the locked tower
  recorded there (at its recorded size unless `image_size` is given), so a generic evaluation
  gin (eval/common.gin) scores a run as mlit.load embeds it. A bound text length or image
  size other than the recorded one is used, with a warning. A bound vocabulary or locked tower
  that is not there (a config.gin read from another folder names the folder the run trained in)
  is replaced by the run's own, with a warning; so is a bound vocabulary that is not the one the
  run trained with (a locked tower that is not is used, with a warning; `_run_file`).
  """
  if '://' not in checkpoint_dir and not os.path.isdir(checkpoint_dir):
    checkpoint_dir = _run_of_config_gin(checkpoint_dir)
  if '://' not in checkpoint_dir and not os.path.isdir(checkpoint_dir):
    # e.g. a run's config.gin read from a copy elsewhere: its MODEL_DIR names where it trained
    where = '' if os.path.isabs(checkpoint_dir) else f', relative to {os.getcwd()}'
    raise UserError(
      f'{checkpoint_dir}: no such directory (MODEL_DIR{where}); bind --gin.MODEL_DIR to the '
      'trained run (the directory of its config.gin and mlit_model.json)'
    )
  spec_dir, spec = _run_spec(checkpoint_dir)
  if text_length is None:
    if spec is None:
      raise UserError(
        f'{checkpoint_dir}: no {run_spec.FILENAME} to give the text length; bind '
        'encoders.from_mlit_checkpoint.text_length (the tokens per text the model was trained with)'
      )
    text_length = int(spec['text_length'])
  elif spec is not None and text_length != spec['text_length']:
    logging.warning(
      'evaluating at text_length %d; the model was trained at %d (%s)',
      text_length,
      spec['text_length'],
      run_spec.FILENAME,
    )
  recorded = (spec or {}).get('image') or {}
  if image_checkpoint_path is not None and recorded.get('checkpoint'):
    image_checkpoint_path = _run_file(
      image_checkpoint_path,
      'the locked image tower (image_checkpoint_path)',
      recorded['checkpoint'],
      lambda: run_spec.image_checkpoint_path(spec_dir, spec),
      checkpoint_dir,
      model_part=False,
    )
  if image_tower is None and model.image is None and recorded.get('route') == 'locked':
    image_tower, image_tower_kind = recorded['config'], recorded['kind']
    image_checkpoint_path = run_spec.image_checkpoint_path(spec_dir, spec)
    logging.info(
      'image tower: the locked %s %s of %s (%s)',
      image_tower_kind,
      image_checkpoint_path,
      checkpoint_dir,
      run_spec.FILENAME,
    )
  if recorded.get('size') and image_size is not None and image_size != recorded['size']:
    logging.warning(
      'evaluating images at %d px; the model saw %d px (%s in %s): image_size %d '
      '(--gin.EVAL_IMAGE_SIZE=%d with eval/common.gin) evaluates as mlit.load embeds',
      image_size,
      recorded['size'],
      run_spec.FILENAME,
      checkpoint_dir,
      recorded['size'],
      recorded['size'],
    )
  if image_size is None:
    image_size = int(recorded.get('size') or 224)
  if spec is not None and not spec.get('vocabulary'):
    # Tuned on token ids (tasks.synthetic): no text can be encoded, and the gin's VOCABULARY
    # (mT5's, on gs://) is not worth a network read to find that out.
    run_spec.vocabulary_path(spec_dir, spec)
  if spec is not None and spec.get('vocabulary'):
    vocabulary = _run_file(
      vocabulary,
      'the vocabulary (VOCABULARY)',
      spec['vocabulary'],
      lambda: run_spec.vocabulary_path(spec_dir, spec),
      checkpoint_dir,
      model_part=True,
    )
  tokenizer = Tokenizer(vocabulary, text_length)
  pieces, rows = tokenizer.processor.GetPieceSize(), model.text.vocab_size
  if pieces > rows:  # XLA's gather would read every id past the last row as that row
    raise UserError(
      f'the vocabulary {tokenizer.vocab_path} (VOCABULARY) has {pieces} pieces but the model '
      f'embeds {rows} (text_tower.T5Config.vocab_size): not the vocabulary it was trained with; '
      'bind VOCABULARY (seqio.SentencePieceVocabulary.sentencepiece_model_file) to that one'
    )
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
    model, params, tower_report = image_towers.graft(
      image_tower_kind,
      model,
      params,
      image_tower,
      image_checkpoint_path,
      image_size,
      lambda m: zero_params(m, image_size)['img'],
    )
    name += f'+{image_tower_kind}:{image_checkpoint_path}'
    report = f'img: {tower_report}'
  encoder = TwoTowerEncoder(model, params, tokenizer, batch_size, name=name, load_report=report)
  encoder.step = step
  encoder.model_dir = checkpoint_dir  # the run evaluated (found beside config.gin when moved)
  return encoder


def _run_file(bound, what: str, recorded: dict, run_copy, checkpoint_dir: str, model_part: bool):
  """A bound file the run also records (`recorded`: its sha256, and for the vocabulary the
  `source` it was copied from): the run's own when the bound local path is not there (a
  config.gin read from another folder names the folder the run trained in). Another file than
  the run trained with is used with a warning, unless it is `model_part` (the vocabulary: its ids
  are the embedding's rows), which is always the run's own; a warning says the bound one is not.

  `bound` is a path or a seqio vocabulary; `run_copy()` gives the run's file, sha256 checked."""
  path = bound if isinstance(bound, (str, os.PathLike)) else bound.sentencepiece_model_file
  path = os.fspath(path)
  if '://' in path:  # a remote store: not read when the run has its own copy
    if not model_part:
      return bound
    own = run_copy()
    if path != recorded.get('source'):
      logging.warning(
        "%s, bound as %s, is not read: %s trained with %s; tokenizing with the run's own, %s",
        path,
        what,
        checkpoint_dir,
        recorded.get('source') or 'another vocabulary',
        own,
      )
    return own
  if not os.path.isfile(path):
    own = run_copy()
    where = '' if os.path.isabs(path) else f' (relative to {os.getcwd()})'
    logging.warning(
      "%s: no such file%s, for %s; using the run's own, %s (the file it trained with)",
      path,
      where,
      what,
      own,
    )
    return own
  sha256 = file_io.file_sha256(path)
  if sha256 == recorded['sha256']:
    return bound
  own = run_copy() if model_part else None
  logging.warning(
    '%s (sha256 %s...), bound as %s, is not the file %s trained with (sha256 %s..., %s): %s',
    path,
    sha256[:12],
    what,
    checkpoint_dir,
    recorded['sha256'][:12],
    run_spec.FILENAME,
    f"tokenizing with the run's own, {own}" if model_part else 'evaluating with it',
  )
  return own if model_part else bound


def _run_spec(checkpoint_dir: str) -> tuple[str, dict | None]:
  """(MODEL_DIR, its mlit_model.json): in checkpoint_dir or above its checkpoints/ directory;
  (checkpoint_dir, None) without one."""
  for d in (checkpoint_dir, os.path.dirname(os.path.normpath(checkpoint_dir))):
    if os.path.isfile(os.path.join(d, run_spec.FILENAME)):
      return d, run_spec.read(d)
  return checkpoint_dir, None
