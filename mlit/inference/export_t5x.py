"""`mlit export --format t5x`: the tuned text tower as a T5X legacy checkpoint.

OUT/checkpoint_<step>/ holds token_embedder/ and encoder/ under T5X's names (what a T5X
encoder-decoder's `target` has for them; mlit.checkpoints.t5x reads it back bit-exactly); the
text head, which T5X models do not have, goes beside it (mlit.inference.text_head), and so does
the run's SentencePiece model, `vocabulary.model` (a T5X checkpoint names no vocabulary: the ids
of its embedding rows mean something only with this one).
"""

import os
import shutil

import numpy as np
from flax import traverse_util

from mlit.checkpoints import t5x_writer
from mlit.inference import run_spec, text_head

TEXT_PREFIXES = ('token_embedder/', 'encoder/')
VOCABULARY_FILE = 'vocabulary.model'


def text_tower_target(params) -> dict:
  flat = traverse_util.flatten_dict(params['txt'], sep='/')
  return {k: np.asarray(v) for k, v in flat.items() if k.startswith(TEXT_PREFIXES)}


def export(model, out_dir: str) -> str:
  """model: mlit.inference.model.Model. Returns the checkpoint directory."""
  enc = model.encoder
  ckpt_dir = os.path.join(out_dir, f'checkpoint_{model.step}')
  t5x_writer.write_legacy_checkpoint(ckpt_dir, text_tower_target(enc.params), step=model.step)
  text_head.write(out_dir, enc.model, enc.params, enc.tokenizer.length, model.logit_scale)
  vocabulary = run_spec.vocabulary_path(model.model_dir, model.spec)
  shutil.copyfile(vocabulary, os.path.join(out_dir, VOCABULARY_FILE))
  return ckpt_dir
