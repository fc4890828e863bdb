"""Tiny generated LiT tasks so that `gin/local_tiny.gin` trains out of the box.

Each example belongs to one of `num_classes` hidden classes. Its image (or
pre-computed image embedding) is the class prototype plus noise; its text is
the class token followed by a few random filler tokens. A text tower that
learns to read the class token aligns with the image side, so the contrastive
loss falls quickly: a learnable relation, not noise.

Registered tasks (ids < VOCAB_SIZE, EOS 1, PAD 0):
  mlit_synthetic_embeddings  'text' + 'image_embedding' float32 [EMBED_DIM]
  mlit_synthetic_images      'text' + 'image' float32 [IMAGE_SIZE, IMAGE_SIZE, 3]
"""

import functools

import numpy as np
import seqio
import tensorflow as tf

VOCAB_SIZE = 64
NUM_CLASSES = 32
EMBED_DIM = 32
IMAGE_SIZE = 16
_FIRST_CLASS_TOKEN = 2  # 0 PAD, 1 EOS
_SPLIT_SIZES = {'train': 4096, 'validation': 512}
_SPLIT_SEEDS = {'train': 0, 'validation': 1}


def generate(split: str, kind: str) -> dict[str, np.ndarray]:
  """The whole split as NumPy arrays; same output on every call."""
  if split not in _SPLIT_SIZES:
    raise ValueError(f'unknown split {split!r}; have {sorted(_SPLIT_SIZES)}')
  n = _SPLIT_SIZES[split]
  protos = np.random.default_rng(1234)  # shared by the splits: same relation
  if kind == 'embeddings':
    proto = protos.normal(size=(NUM_CLASSES, EMBED_DIM)).astype(np.float32)
  else:
    proto = protos.uniform(-0.8, 0.8, size=(NUM_CLASSES, 1, 1, 3)).astype(np.float32) * np.ones(
      (1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32
    )
  rng = np.random.default_rng(_SPLIT_SEEDS[split])
  cls = rng.integers(0, NUM_CLASSES, size=n)
  noise = rng.normal(scale=0.3, size=(n,) + proto.shape[1:]).astype(np.float32)
  image = proto[cls] + noise
  if kind == 'images':
    image = np.clip(image, -1.0, 1.0)
  # Texts: class token then 1..5 fillers, ragged (EOS is appended by seqio).
  lengths = rng.integers(1, 6, size=n)
  filler = rng.integers(_FIRST_CLASS_TOKEN + NUM_CLASSES, VOCAB_SIZE, size=(n, 5))
  texts = [
    np.concatenate([[_FIRST_CLASS_TOKEN + c], f[:k]]).astype(np.int32)
    for c, f, k in zip(cls, filler, lengths)
  ]
  key = 'image_embedding' if kind == 'embeddings' else 'image'
  return {'text': texts, key: image, 'example_id': np.array([f'{split}-{i}' for i in range(n)])}


def _dataset_fn(split: str, shuffle_files: bool, seed=None, *, kind: str):
  del shuffle_files, seed  # A single in-memory "file": nothing to shuffle.
  data = generate(split, kind)
  texts = tf.ragged.constant(data.pop('text'), dtype=tf.int32)
  ds = tf.data.Dataset.from_tensor_slices({'text': texts, **data})
  return ds.map(lambda ex: {**ex, 'text': ex['text']})


def _register(name: str, kind: str) -> None:
  if name in seqio.TaskRegistry.names():
    return
  image_key = 'image_embedding' if kind == 'embeddings' else 'image'
  rank = 1 if kind == 'embeddings' else 3
  seqio.TaskRegistry.add(
    name,
    source=seqio.FunctionDataSource(
      functools.partial(_dataset_fn, kind=kind),
      splits=list(_SPLIT_SIZES),
      num_input_examples=dict(_SPLIT_SIZES),
    ),
    preprocessors=[seqio.preprocessors.append_eos_after_trim],
    output_features={
      'text': seqio.Feature(
        seqio.PassThroughVocabulary(size=VOCAB_SIZE, eos_id=1), add_eos=True, dtype=tf.int32
      ),
      image_key: seqio.Feature(
        seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.float32, rank=rank
      ),
    },
    shuffle_buffer_size=1024,
  )


_register('mlit_synthetic_embeddings', 'embeddings')
_register('mlit_synthetic_images', 'images')
