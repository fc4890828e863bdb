r"""LiT tuning: `python -m mlit.training.train --gin_file=... --gin.MODEL_DIR=\"/dir\"`.

The gin-configurable `train()` builds the two-tower model, the data (a seqio
task through LiTFeatureConverter, each process reading its own shard), the
initial parameters (T5X checkpoint -> text tower, big_vision .npz -> image
tower, per the lock setup), and runs a jit-compiled step on a ('data',
'model') mesh with the global contrastive loss. It resumes from the latest
Orbax checkpoint in MODEL_DIR; data order depends only on (seed, step), so a
killed and resumed run ends with the same parameters as an uninterrupted one.
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'train')  # `python -m`: the command, before the heavy imports

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import sys
import threading
from typing import Any, Callable, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

import gin
from mlit import run_layout
from mlit.checkpoints import run_state as checkpointing
from mlit.commands import gin_flags, gin_unread, process_temp
from mlit.inference import run_spec
from mlit.models import duplicate_pairs, losses, two_tower
from mlit.training import dry_run as dry_run_lib
from mlit.training import input_pipeline as train_data
from mlit.training import optimizer as optimizer_lib
from mlit.training import partitioning, preemption
from mlit.training import progress_log as train_log
from mlit.training import state as state_lib
from tasks import backtranslation, data_stats, file_io, precomputed
from tasks.user_error import UserError


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the run stops, checkpoints stay."""


class ProcessLost(RuntimeError):
  """A collective with the other processes failed: one of them was killed or stopped on an error of
  its own; the message says which checkpoint the same commands resume from."""


# Exit status when another process of the run was lost.
LOST = 1


class TrainingInterrupted(KeyboardInterrupt):
  """Ctrl-C during training, after the checkpoint writes in flight finished; the message says
  which checkpoint the same command resumes from."""


def _check_setup(
  image_init: str,
  image_locked: bool,
  text_init: str,
  text_locked: bool,
  model: two_tower.TwoTower,
  image_key: Optional[str],
  task_name: str = '',
) -> None:
  for name, init in (('image_init', image_init), ('text_init', text_init)):
    if init not in ('pretrained', 'random'):
      raise UserError(f"train.{name} must be 'pretrained' or 'random', got {init!r}")
  if image_key == 'image_embedding':
    if model.image is not None:
      raise UserError(
        "the task gives pre-computed 'image_embedding' but the "
        'model has an image tower: set IMAGE_TOWER = None'
      )
    if not (image_locked and image_init == 'pretrained'):
      raise UserError(
        'pre-computed image embeddings come from a locked '
        'pre-trained tower: only setups L* (image_init='
        "'pretrained', image_locked=True) can use them"
      )
  elif image_key == 'image' and model.image is None:
    raise UserError(
      "the task gives raw 'image' but the model has no image "
      'tower (IMAGE_TOWER = None): set IMAGE_TOWER to ViT '
      'arguments, or use a pre-computed embedding task'
    )
  elif image_key is None:
    raise UserError(
      f"task {task_name!r} gives neither 'image' nor 'image_embedding': give its registration "
      "image_dir= or image_shards= (live images), or train a '*_precomputed' task of "
      '`mlit precompute` embeddings'
    )
  if model.image is not None and model.image_kind == 'efficientnet_lite':
    if not (image_locked and image_init == 'pretrained'):
      raise UserError(
        'the EfficientNet-Lite tower runs in inference mode (stored batch-norm statistics): '
        "use it locked and pre-trained (setups L*: image_init='pretrained', image_locked=True)"
      )


def _check_vocabulary(model: two_tower.TwoTower, task_name: str, text_features) -> None:
  """A vocabulary larger than the token embedding would be read wrongly without a word: XLA's
  gather clamps ids past the last row to it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (the input pipeline has it loaded)

  rows = model.text.vocab_size
  features = train_data.mixture_or_task(task_name).output_features
  for name in text_features:
    vocab = features[name].vocabulary if name in features else None
    try:
      size = vocab.vocab_size if vocab is not None else 0
    except tf.errors.OpError as e:  # seqio reads a remote model lazily, here
      where = getattr(vocab, 'sentencepiece_model_file', '') or type(vocab).__name__
      raise UserError(
        f"{task_name} feature '{name}': cannot read its vocabulary {where} "
        f'({cli.one_line(e)}); bind VOCABULARY to a readable SentencePiece .model '
        "(--gin.seqio.SentencePieceVocabulary.sentencepiece_model_file, or the tasks' own "
        'tasks.vocabularies.vocabulary.path)'
      ) from e
    if size > rows:
      need = -(-size // 128) * 128
      where = getattr(vocab, 'sentencepiece_model_file', '') or type(vocab).__name__
      raise UserError(
        f"{task_name} feature '{name}': its vocabulary ({where}) has {size} ids but "
        f'the text tower embeds {rows} (text_tower.T5Config.vocab_size); set '
        f'--gin.text_tower.T5Config.vocab_size={need}'
      )


def _write_initialization(model_dir: str, record: dict, seed: int, has_image_tower: bool) -> None:
  """MODEL_DIR/initialization.json: what step 0 started from, the load reports printed at set-up
  kept beside the run (which T5X keys were loaded, dropped or left at init)."""
  if 'run' not in record:
    record = {
      'text': f'random (SEED {seed})',
      'image': f'random (SEED {seed})' if has_image_tower else 'none: pre-computed embeddings',
      **record,
    }
  path = run_layout.initialization(model_dir)
  with file_io.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    json.dump({'seed': seed, **record}, f, indent=1)


def _inference_tower(model, task_name, image_checkpoint_path, inference_image):
  """(checkpoint path, inference_image) for MODEL_DIR/mlit_model.json. A run on embeddings that
  `mlit precompute` wrote, with no train.train.inference_image bound, records the locked tower
  its manifest names (kind, config, size, checkpoint), when that file is still the one that made
  them (sha256), so that `mlit.load` and `mlit predict` run it on pixels."""
  if model.image is not None or inference_image is not None:
    return image_checkpoint_path, inference_image
  tower = precomputed.tower_of(task_name)
  path = (tower or {}).get('checkpoint')
  if not path:
    return image_checkpoint_path, inference_image
  if not os.path.isfile(path) or file_io.file_sha256(path) != tower.get('checkpoint_sha256'):
    train_log.log(
      f'warning: {task_name} was pre-computed with the image tower {path}, which is no longer '
      'there as it was (sha256): mlit_model.json records no tower to run on pixels (bind '
      "IMAGE_CHECKPOINT_PATH and train.train.inference_image = {'kind': ..., 'config': ..., "
      "'size': ...})"
    )
    return image_checkpoint_path, inference_image
  image = {'kind': tower.get('kind', 'vit'), 'config': tower['vit'], 'size': tower['image_size']}
  return path, image


def _check_model_dir_of_run_config(model_dir: str) -> None:
  """A run's own config.gin given to resume it from another folder: its relative MODEL_DIR would
  start a new run from step 0 under this folder."""
  where = gin_unread.macro_bound_in('MODEL_DIR')  # 'FILE:LINE', or a --gin flag
  config = where.rsplit(':', 1)[0] if where else ''
  if os.path.isabs(model_dir) or os.path.basename(config) != run_layout.CONFIG:
    return
  run_dir = os.path.dirname(os.path.realpath(config))
  if os.path.realpath(model_dir) != run_dir:
    raise UserError(
      f"MODEL_DIR {model_dir!r}, relative in {config}, is not that run's directory from this "
      f'folder ({os.path.realpath(model_dir)}, not {run_dir}): run from the folder the run '
      f'started in, or give --gin.MODEL_DIR=\\"{run_dir}\\" to resume it'
    )


def _check_unread_settings(
  model, init_from_run, keep_optimizer, image_dont_load, image_init, image_path, inference_image
) -> None:
  """Settings this run would not read: an error or a warning, not a silent no-op."""
  if keep_optimizer and not init_from_run:
    raise UserError(
      'train.train.init_from_run_optimizer = True continues the optimizer of the run that '
      'CONTINUE_FROM names, but CONTINUE_FROM is None: set it, or drop init_from_run_optimizer'
    )
  if image_dont_load and (model.image is None or image_init != 'pretrained' or init_from_run):
    raise UserError(
      f'train.train.image_dont_load = {list(image_dont_load)} but this run loads no image '
      'checkpoint (it needs a live image tower, image_init = pretrained and no CONTINUE_FROM)'
    )
  if image_path and model.image is None and inference_image is None:
    train_log.log(
      f'warning: IMAGE_CHECKPOINT_PATH = {image_path!r} is not loaded: the task gives '
      'pre-computed embeddings (IMAGE_TOWER = None); it is recorded in mlit_model.json only with '
      'train.train.inference_image, the tower that made them'
    )


def _check_per_batch_signal(name: str, batch_transform) -> None:
  """register_yfcc.mode = 'per_batch' without the batch transform that picks the signal would
  train the three signals summed (joint), silently."""
  import seqio  # pylint: disable=g-import-not-at-top

  from tasks import yfcc  # pylint: disable=g-import-not-at-top

  provider = train_data.mixture_or_task(name)
  names = [t.name for t in provider.tasks] if isinstance(provider, seqio.Mixture) else [name]
  per_batch = yfcc.per_batch_tasks(names)
  if per_batch and batch_transform is None:
    raise UserError(
      f"register_yfcc.mode = 'per_batch' ({', '.join(per_batch)}) picks one signal per batch "
      'through train.train.batch_transform, which is not set: include yfcc_per_batch.gin '
      '(--gin_file=yfcc_per_batch.gin after the run file), or the run trains the three signals '
      'summed (joint)'
    )


def _check_inference_image(model, info, model_dir, checkpoint_path, image) -> None:
  """The locked tower mlit_model.json records, checked before any work (and by --dry_run):
  run_spec.write reads it only once the run's directory exists."""
  if model.image is not None or image is None:
    return
  if checkpoint_path and '://' not in checkpoint_path and not os.path.isfile(checkpoint_path):
    raise UserError(
      f'IMAGE_CHECKPOINT_PATH {checkpoint_path!r}: no such file (train.train.inference_image '
      'records it in mlit_model.json as the tower that made the embeddings)'
    )
  run_spec.image_record(model, info, checkpoint_path, image, model_dir)


def _freeze_rules(image_locked: bool, text_locked: bool, has_image_tower: bool) -> list[str]:
  rules = []
  if image_locked and has_image_tower:
    rules.append(r'^img/')  # the optional img_head stays trainable
  if text_locked:
    rules.append(r'^txt/(token_embedder|encoder)/')  # the text head trains
  return rules


def _loss_fn(kind: str):
  if kind == 'softmax':
    return losses.softmax_contrastive_loss
  if kind == 'sigmoid':
    return losses.sigmoid_contrastive_loss
  raise UserError(f"train.loss must be 'softmax' or 'sigmoid', got {kind!r}")


# Said once at set-up: a training task's random crops (tasks/image_preprocessors.py) make one
# image's rows differ, so duplicates_as_negatives=False finds only its repeated texts there.
DUPLICATES_ON_LIVE_IMAGES = (
  'train.train.duplicates_as_negatives=False on live images: rows are compared bit for bit, '
  "and the training crops make one image's rows differ, so only repeated texts (and images "
  'fed uncropped) are left out of the loss; on pre-computed embeddings (the *_precomputed '
  'tasks) every repeat of an image is'
)


def make_train_step(
  model: two_tower.TwoTower,
  tx: optax.GradientTransformation,
  text_keys: Sequence[str],
  image_key: str,
  loss: str,
  seed: int,
  lr_fn,
  duplicates_as_negatives: bool = True,
):
  """The per-step function (state, batch) -> (state, metrics), not yet jitted."""
  contrastive = _loss_fn(loss)

  def step_fn(state, batch):
    rng = jax.random.fold_in(jax.random.PRNGKey(seed), state['step'])

    def loss_of(params):
      zimg, ztxt, extras = model.apply(
        {'params': params},
        **{image_key: batch[image_key]},
        text={k: batch[k] for k in text_keys},
        deterministic=False,
        rngs={'dropout': rng},
      )
      # An empty text (only PAD/EOS: e.g. a YFCC photo without description)
      # carries no signal: it is masked out of its loss.
      masks = {k: losses.text_signal_mask(batch[k]) for k in text_keys}
      duplicates = None
      if not duplicates_as_negatives:  # the same image or text in two rows: no negative pair
        duplicates = duplicate_pairs.duplicate_pairs(
          batch[image_key], {k: batch[k] for k in text_keys}
        )
      kwargs = {'temperature': extras['t']}
      if loss == 'sigmoid':
        kwargs['bias'] = extras['b']
      value, metrics = losses.multi_signal_loss(
        contrastive, zimg, ztxt, masks, duplicates, **kwargs
      )
      metrics['temperature'] = extras['t']
      return value, metrics

    (value, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(state['params'])
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    metrics['loss'] = value
    metrics['grad_norm'] = optax.tree.norm(grads)
    # A finite loss can still give an infinite update (e.g. lr = inf).
    metrics['update_norm'] = optax.tree.norm(updates)
    metrics['lr'] = lr_fn(state['step'])
    if 'bt_fired' in batch:  # share of texts replaced by a backtranslation
      fired = jnp.sum(batch['bt_fired'].astype(jnp.float32))
      texts = (
        jnp.sum(batch['bt_texts'].astype(jnp.float32))
        if 'bt_texts' in batch
        else batch['bt_fired'].size
      )
      metrics['bt_fired_rate'] = fired / jnp.maximum(texts, 1.0)
    new_state = {'step': state['step'] + 1, 'params': params, 'opt_state': opt_state}
    return new_state, metrics

  return step_fn


def train(
  model_dir: str = gin.REQUIRED,
  model: two_tower.TwoTower = gin.REQUIRED,
  mixture_or_task_name: str = gin.REQUIRED,
  task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
  train_steps: int = gin.REQUIRED,
  batch_size: int = gin.REQUIRED,
  image_init: str = 'pretrained',
  image_locked: bool = True,
  text_init: str = 'random',
  text_locked: bool = False,
  initial_checkpoint_path: Optional[str] = None,
  image_checkpoint_path: Optional[str] = None,
  init_from_run: Optional[str] = None,
  init_from_run_optimizer: bool = False,
  image_dont_load: Sequence[str] = (),
  freeze: Sequence[str] = (),
  loss: str = 'softmax',
  duplicates_as_negatives: bool = True,
  split: str = 'train',
  seed: int = 0,
  shuffle: bool = True,
  use_cached: bool = False,
  task_cache_dirs: Sequence[str] = (),
  num_data_shards: Optional[int] = None,
  batch_transform: Optional[Callable[[Any], Any]] = None,
  length_buckets: Optional[Sequence[int]] = None,
  num_partitions: int = 1,
  logical_axis_rules: Optional[Sequence[tuple[str, Any]]] = None,
  checkpoint_period: int = 1000,
  keep_checkpoints: Optional[int] = 3,
  log_period: int = 50,
  inference_image: Optional[Mapping[str, Any]] = None,
  dry_run: bool = False,
  argv: Sequence[str] = (),
) -> dict[str, Any]:
  """Runs LiT tuning; returns the final state (params, opt_state, step).

  Args:
    model_dir: run directory (config.gin, checkpoints/, metrics.jsonl, train/).
    model: the TwoTower (gin: MODEL).
    mixture_or_task_name: seqio task or mixture (MIXTURE_OR_TASK_NAME).
    task_feature_lengths: text feature -> length, e.g. {'text': 16}; several
      text features (YFCC 'title', 'description', 'tags') sum their losses.
    train_steps: total steps (TRAIN_STEPS); the cosine ends here.
    batch_size: GLOBAL batch (BATCH_SIZE), split over processes and devices.
    image_init / text_init: 'pretrained' or 'random' (the lock setup).
    image_locked / text_locked: locked towers get no update and no optimizer
      state; a locked live image tower also carries no gradient.
    initial_checkpoint_path: T5X checkpoint for a pre-trained text tower.
    image_checkpoint_path: big_vision/AugReg .npz for a pre-trained ViT.
    init_from_run: continue tuning an mlit run (gin: CONTINUE_FROM): its
      MODEL_DIR, checkpoints/ dir, or `mlit add-language extend-vocab --out`.
      Every param of its latest checkpoint (text tower, heads, temperature, a
      live image tower) replaces the init; text_init/image_init and the
      pre-trained paths are then unused (a set INITIAL_CHECKPOINT_PATH is an
      error). This run counts its own steps from 0.
    init_from_run_optimizer: also continue that run's Adam moments (needs the
      same optimizer; step counts restart, so this run's warm-up and schedule
      apply). Default: a fresh optimizer.
    image_dont_load: regexes of ViT params not to load from the .npz.
    freeze: extra lock regexes over parameter names ('txt/encoder/...').
    loss: 'softmax' (LiT) or 'sigmoid' (SigLIP; model needs bias_init).
    duplicates_as_negatives: True (LiT, CLIP) takes every other row of the batch as a
      negative; False leaves out the pairs whose rows hold the same image or the same text
      (bit for bit: mlit/models/duplicate_pairs.py), e.g. one image's texts in several
      languages. metrics.jsonl then counts the rows that had one (duplicate_rows).
    split, seed, shuffle, use_cached: seqio data options; task_cache_dirs: where `mlit
      cache-tasks` wrote the cached tasks (with use_cached).
    num_data_shards: the task is read as this many shards (default: one per
      process); fixing it makes the data independent of the process count.
    batch_transform: optional tf.data transform of the batched data, e.g.
      @tasks.signals.select_signal_per_batch for YFCC's one-signal-per-batch
      mode (include gin/yfcc_per_batch.gin).
    length_buckets: text length bounds, e.g. (8, 16): each batch is padded only
      to the bound its texts need (tasks/length_buckets.py); one compile per bound.
    num_partitions: size of the 'model' mesh axis (rest is 'data').
    logical_axis_rules: T5X-style (logical, mesh axis) rules; None = default.
    checkpoint_period: save every this many steps (and at the end).
    keep_checkpoints: how many checkpoints Orbax keeps (None: all).
    log_period: progress line / metrics every this many steps.
    inference_image: for runs on pre-computed embeddings, the locked tower that made them, as
      `mlit.load` runs it on pixels: {'kind': 'vit', 'config': ViT kwargs, 'size': pixels};
      its weights are image_checkpoint_path. Recorded in MODEL_DIR/mlit_model.json.
    dry_run: set up (data, weights or the checkpoint to resume, mesh), compile the step, print
      what it holds per device (mlit/training/dry_run.py), and stop before training; nothing is
      written. `mlit train --dry_run`.
    argv: unused; the command line, recorded in the log.
  """
  del argv
  gin_flags.check_positive(
    BATCH_SIZE=batch_size,
    TRAIN_STEPS=train_steps,
    **{'train.train.checkpoint_period': checkpoint_period, 'train.train.log_period': log_period},
  )
  if keep_checkpoints is not None:  # None keeps every checkpoint
    # 0 would have Orbax keep none: the run would end without a checkpoint to resume or evaluate.
    gin_flags.check_positive(**{'train.train.keep_checkpoints': keep_checkpoints})
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):  # found after set-up otherwise
    raise UserError(f'MODEL_DIR {model_dir!r} is a file, not a directory')
  _check_model_dir_of_run_config(model_dir)
  _loss_fn(loss)  # a wrong name stops before any data is read
  if init_from_run:
    _check_init_from_run(init_from_run, initial_checkpoint_path)
  else:
    _check_pretrained(
      text_init, initial_checkpoint_path, image_init, image_checkpoint_path, model.image is not None
    )
  _check_unread_settings(
    model,
    init_from_run,
    init_from_run_optimizer,
    image_dont_load,
    image_init,
    image_checkpoint_path,
    inference_image,
  )
  _check_vocabulary(model, mixture_or_task_name, task_feature_lengths)  # registers the task
  inference_tower = _inference_tower(
    model, mixture_or_task_name, image_checkpoint_path, inference_image
  )
  train_data.use_task_cache(mixture_or_task_name, use_cached, task_cache_dirs)
  mesh = partitioning.make_mesh(num_partitions)
  rules = partitioning.axis_rules(logical_axis_rules)
  data_size = mesh.shape['data']
  if batch_size % data_size:
    raise UserError(
      f"BATCH_SIZE={batch_size} must be divisible by the 'data' mesh axis size {data_size}"
    )
  ckpt = checkpointing.Checkpoints(
    run_layout.checkpoints(model_dir),
    keep=keep_checkpoints,
    save_every=checkpoint_period,
    create=False,  # made once the set-up succeeded: a mistake found there leaves no directory
  )
  if not dry_run and jax.process_index() == 0:
    unfinished = ckpt.discard_unfinished_writes()
    if unfinished:
      train_log.log(
        f'removed the unfinished checkpoint write{"s" if len(unfinished) > 1 else ""} an '
        f'interrupted run left in {ckpt.directory}: {", ".join(unfinished)}'
      )
  start_step = ckpt.latest_step() or 0
  # MODEL_DIR/data_stats.json counts this run's input only (not, e.g., rows
  # read while registering tasks).
  data_stats.reset()
  data_stats.set_consumed(start_step, batch_size)

  _check_per_batch_signal(mixture_or_task_name, batch_transform)

  def input_from(step):
    return train_data.make_input(
      mixture_or_task_name,
      task_feature_lengths,
      batch_size,
      split=split,
      seed=seed,
      shuffle=shuffle,
      use_cached=use_cached,
      start_step=step,
      num_data_shards=num_data_shards,
      batch_transform=batch_transform,
      length_buckets=length_buckets,
    )

  batches, info = input_from(start_step)
  bt_settings = backtranslation.settings()
  if bt_settings:
    train_log.log(backtranslation.describe(*bt_settings))
  elif backtranslation.switched_off():
    train_log.log(
      'backtranslation: off (BT_PROBABILITY = 0 with augment/backtranslation.gin): no text '
      'is replaced'
    )
  _check_setup(
    image_init, image_locked, text_init, text_locked, model, info.image_key, mixture_or_task_name
  )
  if not duplicates_as_negatives and info.image_key == 'image':
    train_log.log(DUPLICATES_ON_LIVE_IMAGES)
  _check_inference_image(model, info, model_dir, *inference_tower)
  has_image_tower = model.image is not None
  model = model.clone(lock_image=bool(image_locked and has_image_tower))

  abstract = state_lib.abstract_params(model, info, seed)
  partitioning.check_divisible(abstract, mesh, rules)
  shardings = partitioning.param_shardings(abstract, mesh, rules)
  freeze_rules = _freeze_rules(image_locked, text_locked, has_image_tower)
  tx, lr_fn = optimizer_lib.make_optimizer(
    abstract, total_steps=train_steps, freeze=freeze_rules + list(freeze)
  )
  state_sh = state_lib.state_shardings(tx, abstract, shardings, mesh)
  init_record = None  # what the run starts from; a resumed run keeps its initialization.json
  if start_step:
    state, data_state, _, restored = _restore(
      ckpt, state_lib.abstract_state(tx, abstract, state_sh), model_dir
    )
    if restored != start_step:  # the newest was unreadable: resume the data where this one did
      batches.close()
      start_step = restored
      data_stats.set_consumed(start_step, batch_size)
      batches, _ = input_from(start_step)
    consumed = data_state.get('batches_consumed', start_step)
    if consumed != start_step:
      raise UserError(
        f'checkpoint {start_step} in {ckpt.directory} consumed '
        f'{consumed} batches; expected {start_step}'
      )
    finished = start_step >= train_steps  # nothing will be counted: no warning
    _restore_batch_counts(data_state, start_step, ckpt.directory, quiet=dry_run or finished)
    if not dry_run:  # the dry run says what the run would do, last
      train_log.log(f'resumed from step {start_step} in {ckpt.directory}')
      if start_step >= train_steps:
        train_log.log(
          f'the run has finished: step {start_step} of {train_steps}; nothing to train '
          '(a larger TRAIN_STEPS continues it)'
        )
  elif init_from_run:
    image_tower = None
    if has_image_tower and image_init == 'pretrained' and image_checkpoint_path:

      def image_tower():
        _check_embeddings_tower(init_from_run, model, image_checkpoint_path)
        params = state_lib.init_params(model, info, mesh, rules, shardings, seed)
        params, record = state_lib.load_pretrained(
          params,
          shardings,
          text_path=None,
          image_path=image_checkpoint_path,
          image_dont_load=(),
          info=info,
          image_kind=model.image_kind,
          image_config=dict(model.image),
        )
        return params['img'], record['image']

    state, init_record = state_lib.state_from_run(
      init_from_run,
      tx,
      abstract,
      state_sh,
      keep_optimizer=init_from_run_optimizer,
      image_tower=image_tower,
    )
  else:
    params = state_lib.init_params(model, info, mesh, rules, shardings, seed)
    params, init_record = state_lib.load_pretrained(
      params,
      shardings,
      text_path=initial_checkpoint_path if text_init == 'pretrained' else None,
      image_path=(
        image_checkpoint_path if image_init == 'pretrained' and has_image_tower else None
      ),
      image_dont_load=image_dont_load,
      info=info,
      image_kind=model.image_kind,
      image_config=dict(model.image) if has_image_tower else None,
    )
    state = state_lib.init_state(tx, params, state_sh)
  step_fn = make_train_step(
    model, tx, info.text_keys, info.image_key, loss, seed, lr_fn, duplicates_as_negatives
  )
  batch_sh = partitioning.batch_shardings(mesh, info.shapes)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    jit_step = jax.jit(
      step_fn,
      in_shardings=(state_sh, batch_sh),
      out_shardings=(state_sh, None),
      donate_argnums=(0,),
    )
  changes = []
  if jax.process_index() == 0:  # every configurable the run uses has been called by now
    unread = gin_unread.unread_warning(gin_flags.mlit_defines_macro)
    if unread:
      train_log.log(unread)
    changes = gin_flags.config_changes(model_dir) if start_step else []
  shown_changes = _changes_text(changes)
  if dry_run:
    if changes:  # what the run would warn about, before it replaces config.gin
      train_log.log(
        f"dry run: the config differs from the run's config.gin (the run would resume at step "
        f'{start_step} with this one and replace it): {shown_changes}'
      )
    try:
      dry_run_lib.run(
        jit_step,
        state,
        batches,
        mesh=mesh,
        rules=rules,
        batch_shardings=batch_sh,
        info=info,
        batch_size=batch_size,
        task=mixture_or_task_name,
        locked_rules=freeze_rules + list(freeze),
        start_step=start_step,
        train_steps=train_steps,
        checkpoint_dir=run_layout.checkpoints(model_dir),
      )
    finally:
      batches.close()
    return state
  if start_step >= train_steps:  # nothing trained: config.gin keeps the values the run ran with
    batches.close()
    return state
  os.makedirs(ckpt.directory, exist_ok=True)  # MODEL_DIR and its checkpoints/
  if jax.process_index() == 0:
    if changes:  # e.g. a longer TRAIN_STEPS moves the schedule under the resumed weights
      train_log.log(
        f"warning: resuming at step {start_step} with a config that differs from the run's "
        f'config.gin (now replaced by this one): {shown_changes}'
      )
    gin_flags.write_config(model_dir)
    if init_record is not None:
      _write_initialization(model_dir, init_record, seed, has_image_tower)
    run_spec.write(
      model_dir,
      model,
      task_feature_lengths,
      mixture_or_task_name,
      info,
      *inference_tower,
    )

  log = train_log.ProgressLog(model_dir, train_steps, batch_size, start_step)
  pending = None  # metrics of the last step, checked one step late
  bt_warned = False  # the coverage warning is printed once
  cut_warned = False  # and the truncation warning

  def check(step, metrics, counts=None):
    """`counts`: the run's batch counts (_run_counts), at a checkpoint step."""
    nonlocal bt_warned, cut_warned
    metrics = jax.device_get(metrics)
    value = float(metrics['loss'])
    update = float(metrics['update_norm'])
    if not (np.isfinite(value) and np.isfinite(update)):
      ckpt.wait()
      what = (
        f'loss is {value}' if not np.isfinite(value) else f'update norm is {update} (loss {value})'
      )
      latest = ckpt.latest_step()
      where = (
        f'The last good checkpoint is step {latest} in {ckpt.directory}'
        if latest is not None
        else f'No checkpoint was written before it ({ckpt.directory} is empty)'
      )
      raise NonFiniteLossError(f'{what} at step {step}; training stopped. {where}')
    if step % log_period == 0 or step == train_steps:
      record = {k: np.asarray(v).mean() for k, v in metrics.items() if np.asarray(v).size}
      bt = data_stats.backtranslation_counts()
      if bt:  # shares since the start: one step's rate is mostly 0 when p and coverage are small
        record.update(
          bt_replaced_share=bt['replaced_share'], bt_candidates_share=bt['candidates_share']
        )
        warning = backtranslation.coverage_warning(
          bt, bt_settings and bt_settings[0], final=step == train_steps
        )
        if warning and not bt_warned:
          train_log.log(warning)
          bt_warned = True
      # With several processes, this one's counts are its part of each batch (and process 0's
      # the steps before a resume too): the run's, added up at each checkpoint, are checked.
      if not cut_warned and (counts is not None or jax.process_count() < 2):
        warning = data_stats.truncation_warning(
          task_feature_lengths, final=step == train_steps, counts=counts
        )
        if warning:
          train_log.log(warning)
          cut_warned = True
      log.write(step, record)

  done = start_step  # steps whose update has been dispatched
  peer_lost = False  # a collective failed: pending saves can never finish, so none is waited for
  try:  # Ctrl-C anywhere from here, the final wait included, says where the run stands
    try:
      # XLA runs the step asynchronously: its out-of-memory error surfaces where a result is read.
      with _out_of_memory_line(batch_size), preemption.notice() as preempted:
        for step in range(start_step, train_steps):
          try:
            local = next(batches)
          except StopIteration as e:
            kept = data_stats.read_counts()['kept_rows']
            why = (
              '; its readers kept rows but none came out of its steps after them (a per-language '
              "task's filter: no row of that language?)"
              if step == 0 and sum(kept.values())
              else ''
            )
            raise UserError(
              f'task {mixture_or_task_name!r} ran out of data at step {step}: '
              f'{data_stats.rows_read_line()}{why} (MODEL_DIR/data_stats.json has them per source)'
            ) from e
          batch = partitioning.shard_batch(local, mesh)
          with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            state, metrics = jit_step(state, batch)
          done = step + 1
          data_stats.set_consumed(step + 1, batch_size)  # taken by training, not read ahead
          if pending is not None:
            check(*pending)
          pending = (step + 1, metrics)
          stop = preempted(step + 1)  # every process, every step (JAX's preemption service)
          if stop or (step + 1) % checkpoint_period == 0 or step + 1 == train_steps:
            counts, reads = _run_counts()
            check(*pending, counts)  # never save a state reached through a NaN step
            pending = None
            ckpt.save(
              step + 1,
              state,
              force=True,
              data_state={'batches_consumed': step + 1, 'batch_counts': counts},
              config_text=gin.config_str(),
            )
            _write_data_stats(model_dir, counts, reads)
          if stop and step + 1 < train_steps:
            ckpt.wait()
            raise preemption.TrainingPreempted(
              f'stopped by SIGTERM (a preemption notice) after step {step + 1}, saved as checkpoint '
              f'{step + 1} in {ckpt.directory}: the same command resumes from it'
            )
        if pending is not None:
          check(*pending)
      if jax.process_index() == 0:
        gin_flags.write_operative_config(model_dir)
    except Exception as e:
      peer_lost = _lost_peer(e)
      raise
    finally:
      if not peer_lost:
        ckpt.wait()
      log.close()
      # Stops reading ahead; can wait on TensorFlow for up to a minute (and says so), with the
      # checkpoints, logs and the last checkpoint's data_stats.json written.
      train_data.close_input(batches, train_log.log)
      # With several processes, adding up their counts is a collective that a failed process
      # never joins: the last checkpoint's save wrote the files.
      if jax.process_count() < 2:
        _write_data_stats(model_dir, *_run_counts())
  except KeyboardInterrupt as e:
    ckpt.wait()  # a checkpoint being written is finished, not left half-written
    raise TrainingInterrupted(_interrupted_text(done, ckpt.latest_step(), ckpt.directory)) from e
  except Exception as e:  # pylint: disable=broad-except
    if not _lost_peer(e):
      raise
    latest = ckpt.latest_on_disk()
    kept = (
      f'the last checkpoint is step {latest} in {ckpt.directory}: the same command on every '
      'process resumes from it'
      if latest is not None
      else f'no checkpoint was written ({ckpt.directory}): the same command starts the run again'
    )
    raise ProcessLost(
      f"process {jax.process_index()} lost the run's other processes after step {done} "
      f'({" ".join(str(e).split())[:300]}): one of them stopped (its own output says why); {kept}'
    ) from e
  return state


# How a collective with a process that is gone fails outside XLA's own (a JaxRuntimeError): in
# Orbax's checkpoint save, which syncs the processes (Gloo on CPU, a barrier elsewhere).
_LOST_PEER = re.compile(r'Gloo|Connection reset by peer|barrier|DEADLINE_EXCEEDED|UNAVAILABLE')


def _lost_peer(error: BaseException) -> bool:
  """Whether `error` says another process of the run is gone: any XLA runtime error with several
  processes (a step's collective), or a checkpoint save's sync failing."""
  if jax.process_count() < 2:
    return False
  if isinstance(error, jax.errors.JaxRuntimeError):
    return True
  return (
    isinstance(error, (ValueError, TimeoutError, RuntimeError))
    and not isinstance(error, UserError)
    and bool(_LOST_PEER.search(str(error)))
  )


def _changes_text(changes: Sequence[str], most: int = 12) -> str:
  return '; '.join(changes[:most]) + (
    f'; and {len(changes) - most} more' if len(changes) > most else ''
  )


def _restore(ckpt: checkpointing.Checkpoints, target, model_dir: str):
  """The newest readable checkpoint; when none restores into this config and the run's config.gin
  differs from it, MODEL_DIR is likely another config's run: said with the differences."""
  try:
    return ckpt.restore_newest_readable(target)
  except checkpointing.CheckpointUnreadableError as e:
    changes = gin_flags.config_changes(model_dir)
    if not changes:
      raise
    raise UserError(
      f'MODEL_DIR {model_dir}: no checkpoint restores into this config, which differs from the '
      f"run's config.gin ({_changes_text(changes, 6)}): another config's run? Give this run a new "
      f'MODEL_DIR, or resume that one with its own config ({cli.one_line(e)})'
    ) from e


@contextlib.contextmanager
def _out_of_memory_line(batch_size: int):
  """XLA's out-of-memory error (a 50-line traceback) as one line saying what to change."""
  try:
    yield
  except jax.errors.JaxRuntimeError as e:
    if 'RESOURCE_EXHAUSTED' not in str(e):
      raise
    wanted = re.search(r'allocating (\d+) bytes', str(e))
    size = f' ({dry_run_lib.size_text(int(wanted.group(1)))} in one buffer)' if wanted else ''
    raise UserError(
      f'the train step ran out of memory on {dry_run_lib.device_name(jax.local_devices()[0])}{size} at '
      f'BATCH_SIZE={batch_size}: lower BATCH_SIZE, raise train.train.num_partitions, or use more '
      'devices (the same command with --dry_run prints what one device holds)'
    ) from e


def _interrupted_text(done: int, latest: Optional[int], directory: str) -> str:
  if latest is None:
    when = f'after step {done}' if done else 'before the first step'
    return (
      f'interrupted (Ctrl-C) {when}, with no checkpoint written: the same command starts the run '
      'again'
    )
  redone = f' (steps {latest + 1}-{done} run again)' if done > latest else ''
  return (
    f'interrupted (Ctrl-C) after step {done}; the last checkpoint is step {latest} in '
    f'{directory}: the same command resumes from it{redone}'
  )


def _check_embeddings_tower(run: str, model, image_path: str) -> None:
  """A run on pre-computed embeddings continued with a live tower: its image head was tuned on
  the embeddings of the tower its mlit_model.json records; another tower is said in a warning."""
  try:
    spec = run_spec.read(run_spec.find_model_dir(run))
  except UserError as e:
    train_log.log(f"warning: the locked tower that made {run}'s embeddings is not known ({e})")
    return
  made = spec.get('image') or {}
  recorded = (made.get('checkpoint') or {}).get('sha256')
  if not recorded:
    train_log.log(
      f"warning: {run}'s mlit_model.json records no locked tower for its embeddings: its image "
      f'head may not fit {image_path}'
    )
    return
  if file_io.file_sha256(image_path) != recorded:
    train_log.log(
      f'warning: IMAGE_CHECKPOINT_PATH {image_path} is not the locked tower whose embeddings '
      f'{run} tuned on ({made["checkpoint"].get("path")}, sha256 {recorded[:12]}...): its image '
      'head was tuned to that one'
    )
  if (made.get('kind'), made.get('config')) != (model.image_kind, dict(model.image)):
    train_log.log(
      f'warning: the live image tower ({model.image_kind} {dict(model.image)}) is not the one '
      f'whose embeddings {run} tuned on ({made.get("kind")} {made.get("config")})'
    )


def _check_init_from_run(run: str, text_path: Optional[str]) -> None:
  if text_path:
    raise UserError(
      f'train.init_from_run (CONTINUE_FROM) = {run!r} and INITIAL_CHECKPOINT_PATH = '
      f'{text_path!r} are both set: continuing an mlit run takes its text tower; set one of them'
    )
  if not os.path.isdir(run):
    raise UserError(f'train.init_from_run (CONTINUE_FROM): {run!r} is not a directory')


def _check_pretrained(text_init, text_path, image_init, image_path, has_image_tower) -> None:
  if text_init == 'random' and text_path:
    raise UserError(
      f'INITIAL_CHECKPOINT_PATH = {text_path!r} is set, but the setup trains the text tower from '
      "random init (text_init='random', setups/Lu.gin, Uu.gin, uu.gin): use setups/LU.gin (or "
      'UU.gin) to start from that T5X checkpoint, or CONTINUE_FROM (train.init_from_run) to '
      'continue an mlit run'
    )
  if text_init == 'pretrained' and not text_path:
    raise UserError(
      "text_init='pretrained' (setup *U/*L) needs INITIAL_CHECKPOINT_PATH (a T5X checkpoint)"
    )
  if image_init == 'pretrained' and has_image_tower and not image_path:
    raise UserError(
      "image_init='pretrained' with a live image tower needs "
      'IMAGE_CHECKPOINT_PATH (a big_vision .npz)'
    )


def _write_data_stats(model_dir: str, counts: dict, reads: dict) -> None:
  """Skipped rows per reason and truncated texts so far -> data_stats.json; examples per
  language -> language_stats.json (what `mlit report` plots scores against). `counts`, `reads`:
  the run's (_run_counts)."""
  if jax.process_index() == 0:
    data_stats.write_json(run_layout.data_stats(model_dir), counts, reads)
    data_stats.write_language_stats(
      run_layout.language_stats(model_dir), _continued_run_stats(model_dir), counts
    )


def _restore_batch_counts(data_state: dict, step: int, directory: str, quiet: bool) -> None:
  """The batch counts of the steps before `step`, kept by its checkpoint, counted again on process
  0 (the run's total is every process's added up), so that the run's files count from step 0."""
  counts = data_state.get('batch_counts')
  if isinstance(counts, dict):
    if jax.process_index() == 0:
      data_stats.add_batch_counts(counts)
  elif not quiet:
    train_log.log(
      f'warning: checkpoint {step} in {directory} keeps no counts of the batches before it (an '
      'earlier mlit wrote it): data_stats.json and language_stats.json count the batches from '
      f'step {step} on'
    )


def _continued_run_stats(model_dir: str) -> str | None:
  """language_stats.json of the run this one continues (initialization.json's 'run'), if any."""
  try:
    with open(run_layout.initialization(model_dir), encoding='utf-8') as f:
      base = json.load(f).get('run')
  except (OSError, ValueError, AttributeError):
    return None
  if not isinstance(base, dict) or not base.get('path'):
    return None
  return run_layout.language_stats(run_layout.model_dir_of(base['path']))


def _add_train_flags(parser) -> None:
  parser.add_argument(
    '--dry_run',
    action='store_true',
    help='set the run up (data, weights, mesh), compile its step and print what one device '
    'holds; train nothing, write nothing',
  )
  parser.add_argument(
    '--multiprocess',
    action='store_true',
    help='call jax.distributed.initialize() (TPU VM pods and clusters find the topology '
    'themselves)',
  )
  parser.add_argument(
    '--coordinator_address', default=None, help='host:port of process 0, for explicit multi-process'
  )
  parser.add_argument(
    '--process_count',
    type=int,
    default=None,
    help='number of processes (with --coordinator_address)',
  )
  parser.add_argument(
    '--process_index',
    type=int,
    default=None,
    help="this process's index, 0-based (with --coordinator_address)",
  )


# How long the processes wait for each other to connect (jax.distributed's default): a pod's
# workers start minutes apart. A process that stopped before connecting (a mistake in its command)
# leaves the others waiting this long; jax.distributed then aborts with a C++ trace, so mlit's
# own clock, shorter than the one jax.distributed is given, ends the wait with one line.
CONNECT_TIMEOUT_S = 300


def _init_distributed(args) -> None:
  given = [f for f in ('process_count', 'process_index') if getattr(args, f) is not None]
  if given and not args.coordinator_address:  # they would be ignored without a word
    raise UserError(
      f'{" and ".join("--" + f for f in given)}: only with --coordinator_address (give it too; '
      '--multiprocess alone finds the topology itself)'
    )
  if args.coordinator_address:
    if args.process_count is None or args.process_index is None:
      raise UserError('--coordinator_address needs --process_count and --process_index')
    if args.process_count < 1:
      raise UserError(f'--process_count={args.process_count}: must be at least 1')
    if not 0 <= args.process_index < args.process_count:
      raise UserError(
        f'--process_index={args.process_index}: must be 0 to {args.process_count - 1} '
        f'(--process_count={args.process_count}; 0 is the coordinator)'
      )
    host, _, port = args.coordinator_address.rpartition(':')
    if not host or not port.isdigit():
      raise UserError(
        f'--coordinator_address={args.coordinator_address}: must be host:port (of process 0)'
      )
    kwargs = dict(
      coordinator_address=args.coordinator_address,
      num_processes=args.process_count,
      process_id=args.process_index,
    )
    where = f'--coordinator_address={args.coordinator_address}'
    if args.process_index == 0:
      _check_port_free(int(port), where)
  elif args.multiprocess:
    kwargs, where = {}, '--multiprocess'
  else:
    return
  timer = threading.Timer(CONNECT_TIMEOUT_S, _not_connected, (where,))
  timer.daemon = True
  timer.start()
  try:
    jax.distributed.initialize(**kwargs, initialization_timeout=CONNECT_TIMEOUT_S + 60)
  except ValueError as e:  # no cluster to detect: not on a TPU pod or a known scheduler
    if args.coordinator_address:
      raise
    raise UserError(
      f'--multiprocess: {" ".join(str(e).split())} (on a TPU VM pod it finds the topology by '
      'itself; elsewhere give --coordinator_address, --process_count and --process_index)'
    ) from e
  except jax.errors.JaxRuntimeError as e:
    if 'Failed to start RPC server' not in str(e):
      raise
    raise UserError(
      f'{where}: process 0 cannot start the coordinator there ({" ".join(str(e).split())}): '
      'is the port in use, by another run or program? Give every process another port'
    ) from e
  finally:
    timer.cancel()


def _check_port_free(port: int, where: str) -> None:
  """Process 0 serves the coordinator on `port` of all its addresses (as jax.distributed binds it).
  A port in use crashes jax.distributed (a segmentation fault, or 'Failed to start RPC server')."""
  if os.environ.get('JAX_COORDINATOR_BIND_ADDRESS'):
    return  # bound where that says
  for family, address in ((socket.AF_INET6, '::'), (socket.AF_INET, '')):
    try:
      with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC: TIME_WAIT is free
        probe.bind((address, port))
      return
    except OSError as e:
      if e.errno == errno.EADDRINUSE:
        raise UserError(
          f'{where}: port {port} is in use on this machine (another run, or another program): '
          'process 0 serves the coordinator there; give every process another port'
        ) from e
      # no IPv6 here: try IPv4


def _not_connected(where: str) -> None:
  print(
    f"mlit train: error: {where}: the run's processes did not all connect within "
    f'{CONNECT_TIMEOUT_S} s (is every process started, with the same --coordinator_address and '
    '--process_count? A process that stopped on an error of its own never connects: see its '
    'output); nothing was trained',
    file=sys.stderr,
    flush=True,
  )
  # jax.distributed's connect holds the main thread; it would abort with a C++ trace.
  process_temp.end_without_teardown(2)


def _allgather_texts(text: str) -> list[str]:
  """Every process's `text`, in process order (a collective: every process calls it)."""
  data = np.frombuffer(text.encode('utf-8'), np.uint8)
  sizes = np.asarray(multihost_utils.process_allgather(np.int64(data.size)))
  padded = np.zeros(int(sizes.max()), np.uint8)
  padded[: data.size] = data
  texts = np.asarray(multihost_utils.process_allgather(padded))
  return [bytes(texts[i][: sizes[i]]).decode('utf-8') for i in range(len(sizes))]


def _run_counts() -> tuple[dict, dict]:
  """The run's data_stats.batch_counts() (every process's part of each global batch) and
  read_counts() (every process's files), each process's added up (a collective: every process
  calls it)."""
  if jax.process_count() < 2:
    return data_stats.batch_counts(), data_stats.read_counts()
  mine = {'batches': data_stats.batch_counts(), 'reads': data_stats.read_counts()}
  parts = [json.loads(p) for p in _allgather_texts(json.dumps(mine))]
  return (
    data_stats.added_batch_counts(*(p['batches'] for p in parts)),
    data_stats.added_read_counts(*(p['reads'] for p in parts)),
  )


def _check_processes_agree(args) -> None:
  """Every process must run the same command. Processes with different configs (TRAIN_STEPS, a
  batch size, MODEL_DIR, --dry_run) wait for each other's different collectives for ever (seen:
  TRAIN_STEPS=8 on one process, 4 on the other); all of them stop here instead, with one line."""
  if jax.process_count() < 2:
    return
  text = f'--process_count = {args.process_count}\n--dry_run = {args.dry_run}\n{gin.config_str()}'
  data = np.frombuffer(text.encode('utf-8'), np.uint8)
  digest = np.frombuffer(hashlib.sha256(data.tobytes()).digest(), np.uint8)
  digests = np.asarray(multihost_utils.process_allgather(digest))
  if (digests == digests[0]).all():
    return
  texts = _allgather_texts(text)
  other = next(i for i in range(len(digests)) if (digests[i] != digests[0]).any())
  first, theirs = texts[0], texts[other]
  changes = gin_flags.binding_changes(first, theirs)
  shown = '; '.join(changes[:8]) + (f'; and {len(changes) - 8} more' if len(changes) > 8 else '')
  raise UserError(
    f"the processes' commands differ: process {other}'s config differs from process 0's "
    f'({shown}); every process of a run runs the same command (flags and gin files)'
  )


_EXAMPLE = (
  'mlit train --gin_file=models/mt5/small.gin --gin_file=runs/lit_tune.gin '
  '--gin_file=setups/Lu.gin --module_import=tasks.synthetic \\\n'
  '    --gin.MIXTURE_OR_TASK_NAME=\\"mlit_synthetic_embeddings\\" --gin.MODEL_DIR=\\"/tmp/lit\\" \\\n'
  '    --gin.TRAIN_STEPS=100 --gin.WARMUP_STEPS=10 --gin.BATCH_SIZE=32'
)


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = gin_flags.parse_flags(
    argv,
    'LiT tuning of a two-tower model (mlit).',
    _add_train_flags,
    prog='mlit train',
    example=_EXAMPLE,
  )
  _init_distributed(args)
  _check_processes_agree(args)
  try:
    # The gin files register train() (dynamic registration); call it via gin.
    kwargs = {'dry_run': True} if args.dry_run else {}
    gin.get_configurable(train)(argv=argv, **kwargs)
  except NonFiniteLossError as e:
    print(f'mlit train: error: {cli.one_line(e)}', file=sys.stderr)  # without gin's call chain
    return 3
  except preemption.TrainingPreempted as e:
    print(f'mlit train: {cli.one_line(e)}', file=sys.stderr)
    return preemption.PREEMPTED
  except ProcessLost as e:
    print(f'mlit train: error: {cli.one_line(e)}', file=sys.stderr, flush=True)
    # Not a return: at exit jax.distributed waits for every process at a shutdown barrier, which
    # a lost process never reaches: the wait runs out the heartbeat timeout (100 s) and aborts
    # with a C++ trace. The run's files were closed by train()'s finally blocks.
    process_temp.end_without_teardown(LOST)
  return 0
