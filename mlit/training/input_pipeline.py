"""Input pipeline of the trainer: a seqio task -> per-process LiT batches.

The task is read as `num_data_shards` shards (default: one per process).
Every global batch is the concatenation, in shard order, of one batch of
global_batch / num_data_shards examples from each shard; each process reads
only its own consecutive block of shards. So the data of step s depends on
(seed, num_data_shards, s) only, not on the number of processes: a run on one
process with num_data_shards=2 sees the same batches as a two-process run,
and a run resumed at step s skips exactly the s batches it consumed before.
"""

import atexit
import dataclasses
import difflib
import logging
import re
import threading
import weakref
from typing import Callable, Iterator, Mapping, Optional, Sequence

import jax
import numpy as np
import seqio
import tensorflow as tf

import gin
from tasks import backtranslation, data_stats, feature_converter, tf_host, token_preprocessors
from tasks import length_buckets as length_buckets_lib
from tasks.user_error import UserError

IMAGE_KEYS = feature_converter.IMAGE_KEYS


class _ExactResume(logging.Filter):
  """seqio warns that an uncached FunctionDataSource reshuffles on restarts; the trainer's
  restarts skip exactly the batches consumed from a seeded stream, so it does not apply."""

  def filter(self, record):
    return not str(record.msg).startswith('Using an uncached FunctionDataset for training')


logging.getLogger('absl').addFilter(_ExactResume())
_TRUNCATED = token_preprocessors.TRUNCATED_PREFIX


@dataclasses.dataclass
class InputInfo:
  text_keys: tuple[str, ...]
  image_key: Optional[str]
  shapes: dict[str, tuple[int, ...]]  # per-example shapes
  dtypes: dict[str, np.dtype]


def mixture_or_task(name: str):
  """The registered seqio task or mixture; UserError naming MIXTURE_OR_TASK_NAME otherwise.

  A name not registered yet is looked for once more after the gin file's own registrations
  (tasks.registration.register_tasks.registrations) have run, as `mlit precompute` and `mlit
  cache-tasks` run them: MIXTURE_OR_TASK_NAME may be the plain name of a task they register."""
  try:
    return seqio.get_mixture_or_task(name)
  except ValueError:
    pass
  # Its modules define configurables: new to a config that gin has locked (the trainer's, parsed
  # without them) unless unlocked for the import.
  with gin.unlock_config():
    from tasks import registration  # pylint: disable=g-import-not-at-top

  registered = registration.register_tasks()
  try:
    return seqio.get_mixture_or_task(name)
  except ValueError as e:
    if registered:
      shown = ', '.join(repr(n) for n in registered[:10])
      raise UserError(
        f'MIXTURE_OR_TASK_NAME {name!r} is not a registered seqio task or mixture: the gin '
        f"file's tasks.registration.register_tasks.registrations register {shown}"
      ) from e
    raise UserError(
      f'MIXTURE_OR_TASK_NAME {name!r} is not a registered seqio task or mixture'
      f'{close_task_names(name)}; import the module that registers it in a gin file (or '
      '--module_import), or bind tasks.registration.register_tasks.registrations'
    ) from e


def close_task_names(name: str) -> str:
  """' (did you mean 'a', 'b'?)' over the registered tasks and mixtures, or ''."""
  known = [*seqio.TaskRegistry.names(), *seqio.MixtureRegistry.names()]
  # Failing close ones, the closest at 0.7: one swapped pair in a short name ('mien' for 'mine').
  close = difflib.get_close_matches(name, known, n=3, cutoff=0.8) or difflib.get_close_matches(
    name, known, n=1, cutoff=0.7
  )
  return f' (did you mean {", ".join(map(repr, close))}?)' if close else ''


def use_task_cache(name: str, use_cached: bool, cache_dirs: Sequence[str]) -> None:
  """USE_CACHED_TASKS reads `mlit cache-tasks` output: its --output_cache_dir goes in
  TASK_CACHE_DIRS (seqio's global cache dirs). Checked before any work, each way round."""
  if cache_dirs and not use_cached:
    logging.warning(
      'TASK_CACHE_DIRS is set but USE_CACHED_TASKS is False: the cache is not read '
      '(set USE_CACHED_TASKS = True to train from it)'
    )
    return
  if not use_cached:
    return
  if not cache_dirs:
    raise UserError(
      'USE_CACHED_TASKS = True needs TASK_CACHE_DIRS: the --output_cache_dir that mlit '
      'cache-tasks wrote (e.g. --gin.TASK_CACHE_DIRS="[\'/data/cache\']")'
    )
  seqio.add_global_cache_dirs(list(cache_dirs))
  tasks = [name]
  provider = mixture_or_task(name)
  if isinstance(provider, seqio.Mixture):
    tasks = [t.name for t in provider.tasks]
  missing = [t for t in tasks if seqio.get_mixture_or_task(t).cache_dir is None]
  if missing:
    raise UserError(
      f'USE_CACHED_TASKS: {", ".join(missing)} not cached in TASK_CACHE_DIRS {list(cache_dirs)} '
      '(cache it with mlit cache-tasks --output_cache_dir=...)'
    )
  from tasks import cache_tasks  # pylint: disable=g-import-not-at-top  (Apache Beam)

  for t in tasks:
    why = cache_tasks.stale_cache(t, seqio.get_mixture_or_task(t).cache_dir)
    if why:
      raise UserError(
        f'USE_CACHED_TASKS: task {t}: {why}; cache it again with mlit cache-tasks --overwrite'
      )


def _task_examples(
  name: str,
  task_feature_lengths: Mapping[str, int],
  split: str,
  seed: int,
  shuffle: bool,
  use_cached: bool,
  shard: seqio.ShardInfo,
) -> tf.data.Dataset:
  """One shard of the task's (repeated) examples, before conversion."""
  provider = mixture_or_task(name)
  lengths = dict(task_feature_lengths)
  # A shard per process; single-process runs read the whole split.
  kwargs = dict(
    sequence_length=lengths,
    split=split,
    shuffle=shuffle,
    seed=seed,
    num_epochs=None,
    use_cached=use_cached,
  )
  if shard.num_shards > 1:
    kwargs['shard_info'] = shard
  if not isinstance(provider, seqio.Mixture):
    return provider.get_dataset(**kwargs)
  # A mixture keeps only its output features unless told otherwise.
  kwargs['passthrough_features'] = [
    *backtranslation.COUNTED_FEATURES,
    data_stats.LANGUAGE_KEY,
    *(token_preprocessors.truncated_key(k) for k in lengths),
  ]
  try:
    return provider.get_dataset(**kwargs)
  except TypeError as e:  # tf.data: the tasks' examples have different features
    if 'compatible element specs' not in str(e):
      raise
    kwargs['passthrough_features'] = _shared_passthrough(provider, kwargs)
  return provider.get_dataset(**kwargs)


_WARNED_MIXTURES = set()


def _shared_passthrough(mixture: seqio.Mixture, kwargs: dict) -> list[str]:
  """The passthrough features every task of `mixture` gives (a warning names those left out:
  CC12M rows carry no language, WIT rows do); a UserError naming the tasks when they differ in
  more than those."""
  own = {k: v for k, v in kwargs.items() if k != 'passthrough_features'}
  features = {t.name: set(t.get_dataset(**own).element_spec) for t in mixture.tasks}
  passthrough = set(kwargs['passthrough_features'])
  # What the mixture keeps of each task's examples: its output features, and the passthrough.
  outputs = set(mixture.output_features)
  cores = {name: f & outputs for name, f in features.items()}
  if len({frozenset(c) for c in cores.values()}) > 1:
    shown = '; '.join(f'{name}: {", ".join(sorted(c))}' for name, c in sorted(cores.items()))
    raise UserError(
      f'mixture {mixture.name!r}: its tasks give different features ({shown}): mix tasks of one '
      'kind (pre-computed embeddings, or images of the same size), e.g. one '
      'register_precomputed over several embedding folders'
    )
  shared = set.intersection(*features.values()) & passthrough
  left_out = sorted(passthrough & set.union(*features.values()) - shared)
  if left_out and mixture.name not in _WARNED_MIXTURES:
    _WARNED_MIXTURES.add(mixture.name)
    lacking = sorted(n for n, f in features.items() if not set(left_out) <= f)
    logging.warning(
      'mixture %r: %s not given by %s, so the mixture is read without it (%s counts none of '
      'its examples)',
      mixture.name,
      ', '.join(left_out),
      ', '.join(lacking),
      'language_stats.json' if data_stats.LANGUAGE_KEY in left_out else 'data_stats.json',
    )
  return [k for k in kwargs['passthrough_features'] if k in shared]


def _length_bounds(
  bounds: Optional[Sequence[int]], task_feature_lengths: Mapping[str, int]
) -> Optional[tuple[int, ...]]:
  if not bounds:
    return None
  text = {k: n for k, n in task_feature_lengths.items() if k not in IMAGE_KEYS}
  if len(text) != 1:
    raise UserError(f'length_buckets needs exactly one text feature; TASK_FEATURE_LENGTHS={text}')
  if jax.process_count() > 1:
    # Each process would pick its own widths; the global batch needs one.
    raise UserError('length_buckets runs on one process only (got %d)' % jax.process_count())
  try:
    return length_buckets_lib.check_bounds(bounds, *text.values())
  except ValueError as e:  # the library's words, with the gin keys they are about
    raise UserError(f'train.train.{e} (TASK_FEATURE_LENGTHS={text})') from e


def _concat(*batches):
  """Joins shards' batches; texts of length-bucketed parts are padded to the widest part."""
  out = {}
  for k in batches[0]:
    parts = [b[k] for b in batches]
    if parts[0].shape.rank == 2 and parts[0].dtype.is_integer:
      width = tf.reduce_max([tf.shape(p)[1] for p in parts])
      parts = [tf.pad(p, [[0, 0], [0, width - tf.shape(p)[1]]]) for p in parts]
    out[k] = tf.concat(parts, axis=0)
  return out


def _counted_only(key: str) -> bool:
  """Features the input counts (truncation marks, languages, backtranslation candidates) and the
  model never sees."""
  return key.startswith(_TRUNCATED) or key in (
    data_stats.LANGUAGE_KEY,
    backtranslation.CANDIDATES_FEATURE,
    backtranslation.OTHER_TEXT_FEATURE,
    backtranslation.OTHER_LANGUAGE_FEATURE,
  )


def _count_and_strip(batches):
  """Adds the batches' truncation marks to tasks.data_stats; the model never
  sees them. The host running out of memory in tf.data (a 50-line traceback, then an abort at
  exit) is one line saying what to change."""
  try:
    for batch in batches:
      data_stats.count_batch(batch)
      yield {k: v for k, v in batch.items() if not _counted_only(k)}
  except tf.errors.ResourceExhaustedError as e:
    what = re.search(r'OOM when allocating tensor with shape\[[\d,]*\] and type \w+', str(e))
    raise UserError(
      f'the input pipeline ran out of host memory ({what.group(0) if what else e.message}): '
      'lower BATCH_SIZE, or the image size (tasks.image_preprocessors.decode_image.size)'
    ) from e


# A tf.data iterator over a Python-generator source (the TSV row sources) that
# is still alive at interpreter exit blocks the exit. Closing the input
# generators first (atexit runs before teardown) releases their iterators.
_open_inputs = weakref.WeakSet()


@atexit.register
def _close_open_inputs() -> None:
  for batches in list(_open_inputs):
    try:
      batches.close()
    except ValueError:  # running in another thread: nothing safe to do
      pass


# Deleting a tf.data iterator joins its autotuning thread, which (TF 2.21) can go on sleeping
# through its optimisation period, up to a minute, before it sees the deletion: measured 2-45 s
# at the end of two-process YFCC runs, 0 s with autotuning off (kept on: it bounds the
# pipeline's RAM and parallelism on large hosts).
AUTOTUNE_STOP_NOTE = (
  "stopping the input pipeline: TensorFlow's tf.data autotuning thread can take up to a minute "
  'to notice (checkpoints, logs and data_stats.json are written; Ctrl-C here loses nothing)'
)


def close_input(batches, say: Callable[[str], None], patience_s: float = 5.0) -> None:
  """Closes `make_input`'s batches; says so once if that takes longer than `patience_s`."""
  errors = []

  def close():
    try:
      batches.close()
    except BaseException as e:  # pylint: disable=broad-except  # re-raised in the caller
      errors.append(e)

  closer = threading.Thread(target=close, name='mlit-close-input', daemon=True)
  closer.start()
  closer.join(patience_s)
  if closer.is_alive():
    say(AUTOTUNE_STOP_NOTE)
    closer.join()
  if errors:
    raise errors[0]


def make_input(
  name: str,
  task_feature_lengths: Mapping[str, int],
  global_batch: int,
  *,
  split: str = 'train',
  seed: int = 0,
  shuffle: bool = True,
  use_cached: bool = False,
  start_step: int = 0,
  num_data_shards: Optional[int] = None,
  batch_transform: Optional[Callable[[tf.data.Dataset], tf.data.Dataset]] = None,
  length_buckets: Optional[Sequence[int]] = None,
) -> tuple[Iterator[dict[str, np.ndarray]], InputInfo]:
  """Per-process NumPy batches starting at `start_step`, and their layout.

  `length_buckets` (token bounds, e.g. (8, 16)): each batch padded only to the
  bound its texts need (tasks/length_buckets.py); InputInfo.shapes gives the
  longest. The step then compiles once per bound.

  `batch_transform` maps the batched dataset before the resume skip, e.g.
  tasks.signals.select_signal_per_batch (one YFCC signal per batch, chosen
  from the batch index, so the same on every process and after a resume).
  Per-example 'truncated/<feature>' marks are counted in tasks.data_stats as
  batches are taken, and removed from them.
  """
  tf_host.keep_tensorflow_on_host()
  nproc, pid = jax.process_count(), jax.process_index()
  shards = num_data_shards or nproc
  if shards % nproc:
    raise UserError(f'num_data_shards={shards} must be a multiple of the {nproc} processes')
  if global_batch % shards:
    raise UserError(f'BATCH_SIZE={global_batch} is not divisible by the {shards} data shards')
  per_process = shards // nproc
  lengths = dict(task_feature_lengths)

  def examples(i):
    shard = seqio.ShardInfo(index=i, num_shards=shards)
    return _task_examples(name, lengths, split, seed, shuffle, use_cached, shard)

  bounds = _length_bounds(length_buckets, lengths)
  converter = feature_converter.LiTFeatureConverter()
  # Converted a batch at a time: the same batches as converting each example.
  parts = [
    converter.batched(examples(i), lengths, global_batch // shards, True, bounds, seed)
    for i in range(pid * per_process, (pid + 1) * per_process)
  ]
  ds = parts[0] if len(parts) == 1 else tf.data.Dataset.zip(tuple(parts)).map(_concat)
  if batch_transform is not None:
    ds = batch_transform(ds)
  spec = {k: v for k, v in ds.element_spec.items() if not _counted_only(k)}
  # Text features: integer [B, L] tensors (a transform may rename them).
  text_keys = tuple(
    sorted(
      k for k, v in spec.items() if k not in IMAGE_KEYS and v.dtype.is_integer and len(v.shape) == 2
    )
  )
  if not text_keys:
    raise UserError(f'task {name!r} gives no text feature; its batches have {sorted(spec)}')
  backtranslation.check_applied(name, spec)
  image_keys = [k for k in IMAGE_KEYS if k in spec]
  info = InputInfo(
    text_keys=text_keys,
    image_key=image_keys[0] if image_keys else None,
    shapes={
      k: (lengths[k],) if k in text_keys and bounds else tuple(v.shape[1:]) for k, v in spec.items()
    },
    dtypes={k: np.dtype(v.dtype.as_numpy_dtype) for k, v in spec.items()},
  )
  # Skipping re-reads the consumed batches: exact, and cheap for pre-computed
  # embeddings (the usual LiT input).
  ds = ds.skip(start_step).prefetch(2)
  # seqio and the feature converter map each example several times; fused
  # maps cost ~30% less host CPU per example (measured on the emoji task),
  # which the train step shares on small hosts. Same elements, same order.
  options = tf.data.Options()
  options.experimental_optimization.map_fusion = True
  ds = ds.with_options(options)
  batches = _count_and_strip(ds.as_numpy_iterator())
  _open_inputs.add(batches)
  return batches, info
