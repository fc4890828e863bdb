"""`mlit.load(RUN_DIR)`: a trained run as a model that embeds texts and images and classifies.

Everything comes from the run directory (MODEL_DIR/mlit_model.json, its checkpoint and the
vocabulary copy beside it), so it works from any working directory:

  model = mlit.load('runs/demo')                # or MODEL_DIR, or .../checkpoints/<step>
  model.encode_text(['pizza', 'piza'])          # [N, D], L2-normalised
  model.encode_text_and_cuts(texts)             # ([N, D], positions of the texts cut to length)
  model.encode_image(['a.png', pil_image, uint8_array])   # the run's size and range
  model.classify(images, ['cat', 'dog'], templates=['a photo of a {}.'])  # [N, C] probabilities
"""

import os
import warnings
from typing import Any, Optional, Sequence

import numpy as np

from mlit import run_layout
from mlit.inference import encoder as encoder_lib
from mlit.inference import preprocess, run_spec, user_text
from tasks.user_error import UserError

PLACEHOLDER = '{}'


def _l2_normalize(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Model:
  """A trained two-tower run. Attributes: model_dir, step, spec (mlit_model.json), encoder
  (mlit.inference.encoder.TwoTowerEncoder), fingerprint, image_size, text_length (tokens per
  text, with the end-of-text token), logit_scale."""

  def __init__(self, model_dir: str, spec: dict, encoder, step: int):
    self.model_dir, self.spec, self.encoder, self.step = model_dir, spec, encoder, step
    self.fingerprint = encoder.fingerprint
    image = spec.get('image')
    self.image_size = image['size'] if image else None
    self.text_length = encoder.tokenizer.length
    self.logit_scale = float(np.exp(np.asarray(encoder.params['t'])))

  def encode_text(self, texts: Sequence[str]) -> np.ndarray:
    """Texts -> [N, D] L2-normalised embeddings.

    A text is cut to the run's text length (`text_length` tokens with the end-of-text token), as
    in training; texts that are cut are counted in a warning. An empty or blank text, or one that
    is not a str (bytes: decode it first), is a UserError naming its position."""
    embeddings, cut = self.encode_text_and_cuts(texts)
    if cut:
      warnings.warn(
        f"encode_text: {len(cut)} of {len(embeddings)} texts are longer than the run's "
        f'{self.text_length} tokens (EOS included) and were cut, as in training (first: '
        f'texts[{cut[0]}])',
        stacklevel=2,
      )
    return embeddings

  def encode_text_and_cuts(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """encode_text's embeddings and the positions of the texts it cut, without the warning
    (`mlit embed` names the cut lines itself). Each text is tokenized once."""
    if isinstance(texts, (str, bytes)):
      texts = [texts]
    texts = list(texts)
    for i, text in enumerate(texts):
      if not isinstance(text, str):
        raise UserError(
          f'encode_text: text {i} is {type(text).__name__}, not str'
          + (' (decode it first, e.g. .decode("utf-8"))' if isinstance(text, bytes) else '')
        )
      if user_text.is_blank(text):  # zero-width characters too: they look empty
        raise UserError(
          f'encode_text: text {i} is {"empty" if not text else "blank"}: its embedding would be '
          "the end-of-text token's alone; leave it out"
        )
    tokenizer, keep = self.encoder.tokenizer, self.text_length - 1  # and the end-of-text token
    chunk = self.encoder.text_memo_size  # untruncated ids as Python lists: a chunk's at a time
    padded, cut = [np.zeros((0, tokenizer.length), np.int32)], []
    for s in range(0, len(texts), chunk):
      ids = tokenizer.encode(texts[s : s + chunk])
      cut += [s + i for i, row in enumerate(ids) if len(row) > keep]
      padded.append(tokenizer.pad(ids))
    return self.encoder.embed_texts(texts, token_ids=np.concatenate(padded)), cut

  def encode_image(self, images: Sequence[Any]) -> np.ndarray:
    """PIL images, uint8 arrays [H, W, 3] or file paths -> [N, D] L2-normalised embeddings.

    Decoded a batch at a time: a long list of paths never holds all its pixels at once. Pixels
    are read as stored, as in training and the evaluation (mlit/inference/preprocess.py): alpha
    dropped, EXIF orientation not applied, an animation's first frame."""
    if self.image_size is None:
      raise UserError(
        f'{self.model_dir}: the run was tuned on pre-computed image embeddings and records no '
        'image tower to run on pixels (set train.inference_image); use encode_image_embedding'
      )
    if not isinstance(images, (list, tuple)) and not (
      isinstance(images, np.ndarray) and images.ndim == 4
    ):
      images = [images]  # one path, PIL image or [H, W, 3] array
    batch = self.encoder.batch_size
    parts = [
      self.encoder.embed_images(
        preprocess.load_images(images[s : s + batch], self.image_size), 'image'
      )
      for s in range(0, max(len(images), 1), batch)
    ]
    return np.concatenate(parts)

  def encode_image_embedding(self, embeddings: np.ndarray) -> np.ndarray:
    """Pre-computed image-tower embeddings [N, D_img] -> [N, D] (the run's image head)."""
    embeddings = np.asarray(embeddings, np.float32)
    head = self.encoder.params.get('img_head')
    width = head['kernel'].shape[0] if head else self.spec['two_tower']['out_dim']
    if embeddings.ndim != 2 or embeddings.shape[1] != width:
      raise UserError(
        f'encode_image_embedding: embeddings of shape {embeddings.shape}; the run takes '
        f"[N, {width}], the locked image tower's output width"
      )
    return self.encoder.embed_images(embeddings, 'embedding')

  def class_embeddings(self, labels: Sequence[Any], templates: Optional[Sequence[str]] = None):
    """[C, D]: per class, every alias in every template, normalised, averaged, renormalised
    (as the zero-shot evaluation). A label is a name or a list of aliases; `templates` a list or
    one template string."""
    if isinstance(labels, str):  # would be read as one label per character
      raise UserError(
        f"classify: labels is one string {labels!r}; give a list, e.g. ['cat', 'dog']"
      )
    labels = [[lab] if isinstance(lab, str) else list(lab) for lab in labels]
    if not labels or any(not aliases or not all(a.strip() for a in aliases) for aliases in labels):
      raise UserError('classify: the label list is empty or holds an empty label')
    first: dict[tuple, int] = {}
    for i, aliases in enumerate(labels):
      key = tuple(a.strip() for a in aliases)
      if key in first:  # as `mlit predict` refuses it
        raise UserError(
          f'classify: label {i} {" / ".join(key)!r} is label {first[key]} again; the '
          'probabilities are a softmax over the labels, so each label goes in once'
        )
      first[key] = i
    templates = [templates] if isinstance(templates, str) else list(templates or [PLACEHOLDER])
    for t in templates:
      if t.count(PLACEHOLDER) != 1:
        raise UserError(f"classify: template {t!r} needs exactly one '{PLACEHOLDER}'")
    texts = [
      t.replace(PLACEHOLDER, a.strip()) for aliases in labels for a in aliases for t in templates
    ]
    emb = _l2_normalize(self.encode_text(texts))
    out, i = [], 0
    for aliases in labels:
      n = len(aliases) * len(templates)
      out.append(emb[i : i + n].reshape(len(aliases), len(templates), -1).mean(1).mean(0))
      i += n
    return _l2_normalize(np.stack(out))

  def classify(self, images: Sequence[Any], labels: Sequence[Any], templates=None) -> np.ndarray:
    """Zero-shot probabilities [N, C]: softmax over classes of the run's learned logit scale
    times the cosine similarity of each image to each class embedding."""
    weights = self.class_embeddings(labels, templates)
    logits = self.logit_scale * (_l2_normalize(self.encode_image(images)) @ weights.T)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def load(path: str, step: Optional[int] = None, batch_size: int = 256) -> Model:
  """Loads a trained run: MODEL_DIR, a run root holding train/ (`mlit demo`), or a checkpoint
  directory inside MODEL_DIR. `step`: a checkpoint step (default: the latest)."""
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise UserError(f'mlit.load: batch_size {batch_size!r}: give an int of 1 or more')
  if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
    raise UserError(f'mlit.load: step {step!r}: give an int (a checkpoint step) or None')
  model_dir = run_spec.find_model_dir(path)
  ckpts = run_layout.checkpoints(model_dir)
  where, named = os.path.split(os.path.abspath(path))
  if where == ckpts and named.isdigit():  # a checkpoints/<step> directory
    if step is not None and step != int(named):
      raise UserError(f'mlit.load: step={step}, but {path} is the checkpoint of step {named}')
    step = int(named)
  steps = sorted(int(d) for d in os.listdir(ckpts) if d.isdigit()) if os.path.isdir(ckpts) else []
  if not steps:
    raise UserError(
      f'{model_dir}: no checkpoint yet (mlit train writes {ckpts}/<step> every '
      'train.checkpoint_period steps and at the end)'
    )
  if step is not None and step not in steps:
    raise UserError(f'{model_dir}: no checkpoint for step {step} (have {steps})')
  spec = run_spec.read(model_dir)
  model = run_spec.build_model(spec)
  vocabulary = run_spec.vocabulary_path(model_dir, spec)
  image, tower = spec.get('image'), {}
  if image and image['route'] == 'locked':
    tower = dict(
      image_tower=image['config'],
      image_checkpoint_path=run_spec.image_checkpoint_path(model_dir, spec),
      image_size=image['size'],
      image_tower_kind=image['kind'],
    )
  encoder = encoder_lib.from_mlit_checkpoint(
    model, model_dir, vocabulary, spec['text_length'], batch_size, step, **tower
  )
  return Model(model_dir, spec, encoder, encoder.step)
