"""Train state of the LiT trainer: sharded init, pre-trained weights, batches.

The state is {'step': int32 scalar, 'params': unboxed params, 'opt_state':
optax state}, placed on the ('data', 'model') mesh with the logical axis rules
of mlit.partitioning.
"""

import sys
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

from mlit import partitioning
from mlit import train_data


def make_mesh(num_partitions: int, rules: Optional[Sequence] = None):
  mesh = partitioning.make_mesh(num_partitions)
  rules = [tuple(r) for r in (rules or partitioning.LOGICAL_AXIS_RULES)]
  return mesh, rules


def _dummy_inputs(info: train_data.InputInfo, batch: int = 2) -> dict:
  out = {"text": {k: jnp.ones((batch,) + info.shapes[k], jnp.int32)
                  for k in info.text_keys}}
  out[info.image_key] = jnp.zeros((batch,) + info.shapes[info.image_key],
                                  jnp.float32)
  return out


def _init_fn(model, info):
  return lambda rng: model.init(rng, **_dummy_inputs(info))["params"]


def param_shardings(model, info, mesh, rules, seed: int):
  """(abstract boxed params, NamedSharding tree of the unboxed params)."""
  abstract = jax.eval_shape(_init_fn(model, info), jax.random.PRNGKey(seed))
  shardings = partitioning.param_shardings(abstract, mesh, rules)
  return abstract, shardings


def init_params(model, info, mesh, rules, shardings, seed: int):
  """Random init directly into sharded arrays (same values on any mesh)."""
  init = _init_fn(model, info)
  with mesh, nn.logical_axis_rules(rules):
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


def load_pretrained(params, shardings, *, text_path: Optional[str],
                    image_path: Optional[str], image_dont_load: Sequence[str],
                    info: train_data.InputInfo):
  """Replaces params['txt'] / params['img'] with pre-trained weights."""
  if not text_path and not image_path:
    return params
  params = dict(params)
  if text_path:
    from mlit import t5x_checkpoint  # pylint: disable=g-import-not-at-top
    host = _to_host(params["txt"])
    txt, report = t5x_checkpoint.load_text_tower_from_t5x(text_path, host)
    _log(f"text tower from {text_path}: {report}")
    params["txt"] = _place(jax.device_get(txt), shardings["txt"])
  if image_path:
    from mlit import vit_checkpoint  # pylint: disable=g-import-not-at-top
    host = _to_host(params["img"])
    size = info.shapes.get("image", (None,))[:2]
    img, report = vit_checkpoint.load_big_vision_npz(
        image_path, host, dont_load=image_dont_load,
        image_size=tuple(size) if None not in size else None)
    _log(f"image tower from {image_path}: {report.summary()}")
    params["img"] = _place(img, shardings["img"])
  return params


def state_shardings(tx: optax.GradientTransformation, abstract_boxed,
                    param_sh, mesh):
  """Shardings of the whole state; optimizer moments follow their params."""
  abstract = nn.unbox(abstract_boxed)
  opt_abstract = jax.eval_shape(tx.init, abstract)
  rep = partitioning.replicated(mesh)

  def like_param(x, s):
    # Full-size moments (Adam mu/nu) share the parameter's sharding; factored
    # Adafactor statistics have other shapes and are replicated.
    return s if len(x.shape) == len(s.spec) or not s.spec else rep

  opt_sh = optax.tree_map_params(
      tx, like_param, opt_abstract, param_sh,
      transform_non_params=lambda _: rep)
  return {"step": rep, "params": param_sh, "opt_state": opt_sh}


def abstract_state(tx, abstract_boxed, state_sh):
  abstract = nn.unbox(abstract_boxed)
  shapes = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": abstract,
            "opt_state": jax.eval_shape(tx.init, abstract)}
  return jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      shapes, state_sh)


def init_state(tx, params, state_sh):
  fn = jax.jit(lambda p: {"step": jnp.zeros((), jnp.int32), "params": p,
                          "opt_state": tx.init(p)}, out_shardings=state_sh)
  return fn(params)


def batch_shardings(mesh, info: train_data.InputInfo) -> dict:
  return {k: partitioning.batch_sharding(mesh, 1 + len(shape))
          for k, shape in info.shapes.items()}


def global_batch(local, mesh) -> dict:
  return partitioning.shard_batch(local, mesh)


def _log(msg: str) -> None:
  if jax.process_index() == 0:
    print(msg, file=sys.stderr, flush=True)


class Checkpointer:
  """Orbax checkpoints of the train state in MODEL_DIR/checkpoints.

  Saves are asynchronous; a checkpoint only becomes visible (latest_step)
  once complete, so a run killed mid-save resumes from the previous one.
  The data position is the step itself (the input skips that many batches).
  """

  def __init__(self, directory: str, keep: int):
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    self._ocp = ocp
    self.directory = directory
    self._mgr = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=True))

  def latest_step(self) -> Optional[int]:
    return self._mgr.latest_step()

  def save(self, step: int, state) -> None:
    self._mgr.save(step, args=self._ocp.args.StandardSave(state))

  def restore(self, step: int, abstract):
    return self._mgr.restore(step, args=self._ocp.args.StandardRestore(abstract))

  def wait(self) -> None:
    self._mgr.wait_until_finished()
