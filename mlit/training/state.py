"""Train state of the LiT trainer: sharded init, pre-trained weights, resuming another run.

The state is {'step': int32 scalar, 'params': unboxed params, 'opt_state':
optax state}, placed on the ('data', 'model') mesh; the mesh, the logical axis
rules and the parameter and batch shardings come from mlit.training.partitioning.
"""

import dataclasses
import os
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from mlit.training import input_pipeline as train_data
from mlit.training import partitioning
from mlit.training import progress_log as train_log
from tasks.user_error import UserError


def _dummy_inputs(info: train_data.InputInfo, batch: int = 2) -> dict:
  out = {'text': {k: jnp.ones((batch,) + info.shapes[k], jnp.int32) for k in info.text_keys}}
  out[info.image_key] = jnp.zeros((batch,) + info.shapes[info.image_key], jnp.float32)
  return out


def _init_fn(model, info):
  return lambda rng: model.init(rng, **_dummy_inputs(info))['params']


def abstract_params(model, info: train_data.InputInfo, seed: int):
  """The boxed parameter tree's shapes (jax.eval_shape: nothing is allocated)."""
  return jax.eval_shape(_init_fn(model, info), jax.random.PRNGKey(seed))


def init_params(model, info, mesh, rules, shardings, seed: int):
  """Random init directly into sharded arrays (same values on any mesh)."""
  init = _init_fn(model, info)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    fn = jax.jit(lambda r: nn.unbox(init(r)), out_shardings=shardings)
    return fn(jax.random.PRNGKey(seed))


def _to_host(tree):
  """Full NumPy copy of a (possibly multi-process) array tree."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def _place(tree, shardings):
  """Host NumPy tree -> global arrays with the given shardings."""

  def put(x, s):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])

  return jax.tree_util.tree_map(put, tree, shardings)


def load_pretrained(
  params,
  shardings,
  *,
  text_path: Optional[str],
  image_path: Optional[str],
  image_dont_load: Sequence[str],
  info: train_data.InputInfo,
  image_kind: str = 'vit',
  image_config: Optional[dict] = None,
):
  """(params with params['txt'] / params['img'] replaced by pre-trained weights, the image
  tower's format by its kind: mlit.checkpoints.image_weights; a record of what was loaded)."""
  record = {}  # what was loaded, for MODEL_DIR/initialization.json
  if not text_path and not image_path:
    return params, record
  params = dict(params)
  if text_path:
    from mlit.checkpoints import t5x as t5x_checkpoint  # pylint: disable=g-import-not-at-top

    host = _to_host(params['txt'])
    txt, report = t5x_checkpoint.load_text_tower_from_t5x(text_path, host)
    train_log.log(f'text tower from {text_path}: {report}')
    record['text'] = {
      'path': os.path.abspath(text_path),
      'summary': str(report),
      **dataclasses.asdict(report),
    }
    params['txt'] = _place(jax.device_get(txt), shardings['txt'])
  if image_path:
    from mlit.checkpoints import image_weights  # pylint: disable=g-import-not-at-top

    host = _to_host(params['img'])
    size = info.shapes.get('image', (None,))[:2]
    img, summary = image_weights.load(
      image_kind,
      image_path,
      host,
      config=image_config,
      dont_load=image_dont_load,
      image_size=tuple(size) if None not in size else None,
      strict=False,  # the report below (and a warning) names what stays at init
    )
    train_log.log(f'image tower from {image_path}: {summary}')
    record['image'] = {'path': os.path.abspath(image_path), 'summary': summary}
    params['img'] = _place(img, shardings['img'])
  return params, record


def _check_same_params(params, abstract, where: str) -> None:
  """Every param of the model is in the checkpoint with its shape (and nothing else)."""
  from flax import traverse_util  # pylint: disable=g-import-not-at-top

  have = {'/'.join(k): np.shape(v) for k, v in traverse_util.flatten_dict(params).items()}
  want = {'/'.join(k): tuple(v.shape) for k, v in traverse_util.flatten_dict(abstract).items()}
  problems = [f'missing {k}' for k in sorted(set(want) - set(have))]
  problems += [f'unexpected {k}' for k in sorted(set(have) - set(want))]
  problems += [
    f'{k}: checkpoint {have[k]} vs model {want[k]}'
    for k in sorted(set(have) & set(want))
    if have[k] != want[k]
  ]
  if problems:
    hint = ''
    emb = 'txt/token_embedder/embedding'
    if emb in have and emb in want and have[emb] != want[emb]:
      hint = f' (set text_tower.T5Config.vocab_size = {have[emb][0]})'
    raise UserError(
      f'{where}: the checkpoint does not fit the model{hint}: ' + '; '.join(problems[:6])
    )


def state_from_run(
  run: str, tx, abstract_boxed, state_sh, *, keep_optimizer: bool = False, image_tower=None
):
  """(a step-0 train state from the latest checkpoint of an mlit run, train.init_from_run;
  a record of what was loaded).

  Params come over exactly; the optimizer state is fresh unless `keep_optimizer`: then the run's
  Adam moments continue (same optimizer needed) and every step count in it restarts at 0, so this
  run's warm-up and schedule apply (the base run's count would put the new schedule at its end).

  `image_tower`: for a run that tuned on pre-computed embeddings (its checkpoint has no 'img')
  continued with the live locked tower that made them, a function giving (the tower's params,
  a record of their load) from IMAGE_CHECKPOINT_PATH; the rest, image head included, is the run's.
  """
  from mlit.checkpoints import run_state  # pylint: disable=g-import-not-at-top

  directory = run_state.checkpoints_dir(run)
  abstract = nn.unbox(abstract_boxed)
  params, step = run_state.read_params(directory)
  image_record = None
  if image_tower is not None and 'img' in abstract and 'img' not in params:
    if keep_optimizer:
      raise UserError(
        f'{directory}/{step} tuned on pre-computed embeddings (no image tower in its checkpoint), '
        'so its optimizer state has no moments for the live tower this run adds: drop '
        'train.train.init_from_run_optimizer'
      )
    img, image_record = image_tower()
    params = {**params, 'img': _to_host(img)}
  _check_same_params(params, abstract, f'{directory}/{step}')
  if keep_optimizer:
    target = abstract_state(tx, abstract_boxed, state_sh)
    state, _, _ = run_state.Checkpoints(directory, keep=None, async_save=False).restore(
      target, step
    )
    state = dict(state)
    state['step'] = jax.device_put(jnp.zeros((), jnp.int32), state_sh['step'])
    state['opt_state'] = jax.tree_util.tree_map_with_path(
      lambda path, x: x * 0 if _key_names(path)[-1:] == ('count',) else x,
      state['opt_state'],
    )
    what = 'params and optimizer moments (step counts restarted)'
  else:
    cast = jax.tree_util.tree_map(lambda x, a: np.asarray(x, a.dtype), params, abstract)
    state = init_state(tx, _place(cast, state_sh['params']), state_sh)
    what = 'params (fresh optimizer)'
  if image_record is not None:
    what += (
      ', the locked image tower from IMAGE_CHECKPOINT_PATH (the run had pre-computed embeddings)'
    )
  train_log.log(f'continuing from {directory} step {step}: {what}')
  record = {'run': {'path': os.path.abspath(directory), 'step': step, 'loaded': what}}
  return state, record | ({'image': image_record} if image_record is not None else {})


def _key_names(path) -> tuple[str, ...]:
  return tuple(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in path)


def state_shardings(tx: optax.GradientTransformation, abstract_boxed, param_sh, mesh):
  """Shardings of the whole state; optimizer moments follow their params.

  A state leaf whose key path ends with a parameter's path and has its shape
  (Adam mu/nu, Adafactor momentum) gets the parameter's sharding; factored
  statistics, counts and masked (locked) entries are replicated.
  """
  abstract = nn.unbox(abstract_boxed)
  opt_abstract = jax.eval_shape(tx.init, abstract)
  rep = partitioning.replicated(mesh)
  by_path = {}
  for (path, x), s in zip(
    jax.tree_util.tree_flatten_with_path(abstract)[0],
    jax.tree_util.tree_leaves(param_sh, is_leaf=lambda v: isinstance(v, jax.sharding.Sharding)),
  ):
    by_path[_key_names(path)] = (tuple(x.shape), s)

  def pick(path, x):
    names = _key_names(path)
    for i in range(len(names)):
      hit = by_path.get(names[i:])
      if hit is not None:
        return hit[1] if hit[0] == tuple(x.shape) else rep
    return rep

  opt_sh = jax.tree_util.tree_map_with_path(pick, opt_abstract)
  return {'step': rep, 'params': param_sh, 'opt_state': opt_sh}


def abstract_state(tx, abstract_boxed, state_sh):
  abstract = nn.unbox(abstract_boxed)
  shapes = {
    'step': jax.ShapeDtypeStruct((), jnp.int32),
    'params': abstract,
    'opt_state': jax.eval_shape(tx.init, abstract),
  }
  return jax.tree_util.tree_map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, state_sh
  )


def init_state(tx, params, state_sh):
  fn = jax.jit(
    lambda p: {'step': jnp.zeros((), jnp.int32), 'params': p, 'opt_state': tx.init(p)},
    out_shardings=state_sh,
  )
  return fn(params)
