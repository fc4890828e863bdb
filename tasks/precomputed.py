"""Tasks over pre-computed image embeddings (written by `python -m mlit.commands.precompute`).

An embeddings directory holds TFRecord shards `embeddings-<i>-of-<n>.tfrecord` of
tf.train.Examples: 'image_embedding' (float list [D]) plus every string feature of
the source example (example_id, title/description/tags or text, languages), so the
image-text join by example id is done once, at pre-computation. `manifest.json`
records the source task, the shards done and which image tower produced them;
directories from two towers cannot be mixed in one task.
"""

import json
import os
from typing import Optional, Sequence

import seqio
import tensorflow as tf

import gin
from tasks import signals, task_builder, yfcc
from tasks.user_error import UserError

MANIFEST = 'manifest.json'
SHARD_PATTERN = 'embeddings-*-of-*.tfrecord'
_TOWERS: dict[str, dict] = {}  # registered task name -> the manifests' tower


def read_manifest(directory: str) -> dict:
  path = os.path.join(directory, MANIFEST)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'{path}: no manifest; run `python -m mlit.commands.precompute`')
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def check_same_tower(manifests: Sequence[dict], directories: Sequence[str]) -> dict:
  """Raises unless every manifest names the same tower (checkpoint hash + config)."""
  towers = {json.dumps(m['tower'], sort_keys=True): d for m, d in zip(manifests, directories)}
  if len(towers) > 1:
    raise ValueError(
      'embeddings from different image towers cannot be mixed: '
      + '; '.join(f'{d}: {t}' for t, d in towers.items())
    )
  return manifests[0]['tower']


def embedding_source(
  directories: Sequence[str], manifests: Optional[Sequence[dict]] = None
) -> seqio.TFExampleDataSource:
  """The embeddings' source; `manifests`: the directories' manifests, when the caller read them."""
  manifests = manifests or [read_manifest(d) for d in directories]
  check_same_tower(manifests, directories)
  incomplete = [d for d, m in zip(directories, manifests) if not m.get('complete')]
  if incomplete:
    raise ValueError(
      f'pre-computation not finished in {incomplete}; rerun '
      '`python -m mlit.commands.precompute` to resume'
    )
  empty = [d for d, m in zip(directories, manifests) if 'embedding_dim' not in m]
  if empty:
    raise UserError(
      f'register_precomputed.embedding_dirs: {empty[0]} holds no embedding (its pre-computation '
      'kept no row: manifest.json has the skipped rows per shard)'
    )
  dims = {m['embedding_dim'] for m in manifests}
  keys = set.intersection(*(set(m['string_features']) for m in manifests))
  if len(dims) != 1:
    raise ValueError(f'embedding sizes differ across {directories}: {sorted(dims)}')
  spec = {
    'image_embedding': tf.io.FixedLenFeature([dims.pop()], tf.float32),
    **{k: tf.io.FixedLenFeature([], tf.string) for k in sorted(keys)},
  }
  files = [os.path.join(d, SHARD_PATTERN) for d in directories]
  return seqio.TFExampleDataSource({'train': files}, feature_description=spec)


@gin.configurable
def register_precomputed(
  embedding_dirs: Sequence[str] = gin.REQUIRED,
  *,
  name: str = 'yfcc100m_full_precomputed',
  mode: str = 'joint',
  language: Optional[str] = None,
) -> list:
  """A YFCC-style (mode as in tasks.yfcc) or single-'text' task over embeddings."""
  manifests = [read_manifest(d) for d in embedding_dirs]
  source = embedding_source(list(embedding_dirs), manifests)
  _TOWERS[name] = manifests[0]['tower']  # the same in all: embedding_source checked
  texts = set.intersection(*(set(m['string_features']) for m in manifests))
  if mode != 'text' and not set(signals.SIGNALS) <= texts:
    raise UserError(
      f'tasks.precomputed.register_precomputed: the embeddings in {list(embedding_dirs)} carry '
      f"{sorted(texts)}, not YFCC's {list(signals.SIGNALS)} that mode {mode!r} reads: set "
      "tasks.precomputed.register_precomputed.mode = 'text' (image shards, CC12M, WIT)"
    )
  if mode == 'text':  # CC12M/WIT embeddings: the text is already one feature
    text_names, post, cached_texts = ('text',), [], ('text',)
  else:
    text_names, post = yfcc.mode_preprocessors(mode)
    cached_texts = signals.SIGNALS
  pre = [task_builder.filter_equal('language', language)] if language else []
  task_builder.add_task(
    name,
    source,
    text_names=text_names,
    image='image_embedding',
    pre_cache=pre,
    post_cache=post,
    backtranslate_features=cached_texts,
  )
  return [name]


def tower_of(task_or_mixture: str) -> Optional[dict]:
  """The locked tower that made a registered `*_precomputed` task's embeddings, as its manifest
  records it (kind, 'vit' config, image_size, checkpoint path and sha256); for a mixture, its
  tasks' tower when they all name the same one; None otherwise."""
  try:
    provider = seqio.get_mixture_or_task(task_or_mixture)
  except ValueError:
    return None
  names = [t.name for t in getattr(provider, 'tasks', [provider])]
  towers = {json.dumps(_TOWERS.get(n), sort_keys=True) for n in names}
  return json.loads(towers.pop()) if len(towers) == 1 else None
