"""One tiny run trained by mlit's own trainer, shared by the inference tests (built once).

Setup Lu on pre-computed embeddings, as the demo: a locked random tiny ViT (saved as a
big_vision .npz) embeds 16x16 images of four colours; the text side learns the colours' names in
six scripts, from a SentencePiece model trained here. The run's config names the tower with a
relative path (the trainer runs in its own working directory), like the demo's.
"""

import functools
import os

import jax
import numpy as np
import seqio
import tensorflow as tf
from spm_fixture import train_tiny_spm

from mlit.checkpoints import big_vision_npz
from mlit.models import image_tower
from mlit.training import train

TASK = 'mlit_inference_colours'
SIZE = 16
COLOURS = {  # name in en, de, ru, el, ja, ar -> RGB
  ('red', 'rot', 'красный', 'κόκκινο', '赤', 'أحمر'): (220, 30, 30),
  ('green', 'grün', 'зелёный', 'πράσινο', '緑', 'أخضر'): (30, 200, 40),
  ('blue', 'blau', 'синий', 'μπλε', '青', 'أزرق'): (30, 40, 220),
  ('yellow', 'gelb', 'жёлтый', 'κίτρινο', '黄色', 'أصفر'): (230, 220, 30),
}
NAMES = [names for names in COLOURS]
TOWER = {'width': 16, 'depth': 1, 'num_heads': 2, 'mlp_dim': 32, 'patch_size': 8}
STEPS = 80

GIN = """
from __gin__ import dynamic_registration
import seqio
from mlit.models import text_tower
from mlit.training import train

include 'local_tiny.gin'
MIXTURE_OR_TASK_NAME = '%(task)s'
TASK_FEATURE_LENGTHS = {'text': 8}
TRAIN_STEPS = %(steps)d
BATCH_SIZE = 16
OUT_DIM = 16
LEARNING_RATE = 1e-2
IMAGE_CHECKPOINT_PATH = 'tower.npz'
seqio.SentencePieceVocabulary.sentencepiece_model_file = '%(spm)s'
seqio.SentencePieceVocabulary.extra_ids = 0
text_tower.T5Config.num_encoder_layers = 1
EVAL_IMAGE_TOWER = %(tower)r
train.train.inference_image = {'kind': 'vit', 'config': %%EVAL_IMAGE_TOWER, 'size': %(size)d}
train.train.checkpoint_period = %(steps)d
train.train.log_period = 50
"""


def colour_image(rgb, rng=None) -> np.ndarray:
  """uint8 [SIZE, SIZE, 3]: the colour, with pixel noise when rng is given."""
  img = np.ones((SIZE, SIZE, 3)) * np.asarray(rgb, np.float64)
  if rng is not None:
    img = img + rng.normal(scale=20, size=img.shape)
  return np.clip(img, 0, 255).astype(np.uint8)


def _tower_embeddings(tower_path, images_uint8):
  vit = image_tower.ViT(**TOWER)
  params = big_vision_npz.load_big_vision_npz(
    tower_path, vit.init(jax.random.PRNGKey(0), np.zeros((1, SIZE, SIZE, 3), np.float32))['params']
  )[0]
  x = images_uint8.astype(np.float32) * (2.0 / 255.0) - 1.0
  return np.asarray(vit.apply({'params': params}, x)[0])


def _register(spm_path, embeddings, labels, name_choice):
  texts = [NAMES[c][k] for c, k in zip(labels, name_choice)]
  vocab = seqio.SentencePieceVocabulary(spm_path)

  def dataset_fn(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices({'text': texts, 'image_embedding': embeddings})

  if TASK in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(TASK)
  seqio.TaskRegistry.add(
    TASK,
    source=seqio.FunctionDataSource(dataset_fn, splits=['train']),
    preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
    output_features={
      'text': seqio.Feature(vocab, add_eos=True, dtype=tf.int32),
      'image_embedding': seqio.Feature(
        seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.float32, rank=1
      ),
    },
    shuffle_buffer_size=256,
  )


@functools.lru_cache(maxsize=None)
def build(root: str) -> str:
  """Trains the run under root (once per process); returns its MODEL_DIR."""
  os.makedirs(root, exist_ok=True)
  words = [w for names in NAMES for w in names]
  spm_path = train_tiny_spm(os.path.join(root, 'spm'), sentences=words * 20)
  work = os.path.join(root, 'work')
  os.makedirs(work, exist_ok=True)
  vit = image_tower.ViT(**TOWER)
  params = vit.init(jax.random.PRNGKey(7), np.zeros((1, SIZE, SIZE, 3), np.float32))['params']
  big_vision_npz.save_big_vision_npz(os.path.join(work, 'tower.npz'), params)
  rng = np.random.default_rng(0)
  n = 1024
  labels = rng.integers(0, len(NAMES), n)
  images = np.stack([colour_image(list(COLOURS.values())[c], rng) for c in labels])
  embeddings = _tower_embeddings(os.path.join(work, 'tower.npz'), images)
  _register(spm_path, embeddings, labels, rng.integers(0, len(NAMES[0]), n))
  gin_path = os.path.join(root, 'colours.gin')
  with open(gin_path, 'w', encoding='utf-8') as f:
    f.write(GIN % {'task': TASK, 'steps': STEPS, 'spm': spm_path, 'tower': TOWER, 'size': SIZE})
  model_dir = os.path.join(root, 'run', 'train')
  cwd = os.getcwd()
  os.chdir(work)  # IMAGE_CHECKPOINT_PATH is relative to it
  try:
    assert train.main([f'--gin_file={gin_path}', f'--gin.MODEL_DIR="{model_dir}"']) == 0
  finally:
    os.chdir(cwd)
  return model_dir
