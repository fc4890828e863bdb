"""Global loss/gradients on a 4x2 mesh equal the single-device ones, with pairs of one image or
one text left out (found across the batch's shards); a 4x2 checkpoint restores into 8x1
shardings.

The check runs in a subprocess with 8 forced CPU devices (this file run as a
script), so the rest of the test session keeps seeing one device.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest


def _check() -> dict:
  """Runs in the 8-device subprocess; returns max relative differences."""
  import tempfile

  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax
  import optax
  from jax.sharding import PartitionSpec as P

  from mlit.checkpoints import run_state as checkpointing
  from mlit.models import duplicate_pairs, losses, text_tower, two_tower
  from mlit.training import input_pipeline, optimizer, partitioning, state

  assert jax.device_count() == 8, jax.devices()
  cfg = text_tower.T5Config(
    vocab_size=64, emb_dim=16, num_heads=4, num_encoder_layers=2, head_dim=4, mlp_dim=32
  )
  model = two_tower.TwoTower(
    text=cfg,
    out_dim=8,
    image_head=True,
    bias_init=-5.0,
    image=dict(width=16, depth=1, mlp_dim=32, num_heads=2, patch_size=(8, 8), pool_type='tok'),
  )
  rng = np.random.default_rng(0)
  batch = {
    'image': rng.uniform(-1, 1, (16, 16, 16, 3)).astype(np.float32),
    'text': np.concatenate(
      [rng.integers(2, 64, (16, 5)), np.ones((16, 1)), np.zeros((16, 2))], axis=1
    ).astype(np.int32),
  }
  # Duplicates in other shards of the 'data' axis (4 rows each): row 13 holds row 2's image,
  # row 9 row 0's text.
  batch['image'][13] = batch['image'][2]
  batch['text'][9] = batch['text'][0]
  info = input_pipeline.InputInfo(
    text_keys=('text',),
    image_key='image',
    shapes={k: v.shape[1:] for k, v in batch.items()},
    dtypes={k: v.dtype for k, v in batch.items()},
  )
  # Reference init on one device, unsharded (jitted: eager init compiles each of its ~250 ops
  # separately, 20 s here).
  dev0 = jax.devices()[0]
  params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), **batch))['params']

  def loss_fn(p, b):
    zimg, ztxt, ex = model.apply({'params': p}, **b)
    dup = duplicate_pairs.duplicate_pairs(b['image'], {'text': b['text']})['text']
    soft, _ = losses.softmax_contrastive_loss(zimg, ztxt, ex['t'], duplicates=dup)
    sig, _ = losses.sigmoid_contrastive_loss(zimg, ztxt, ex['t'], ex['b'], duplicates=dup)
    return soft + sig

  tx, _ = optimizer.make_optimizer(params, total_steps=4, name='adafactor')

  def step(p, b):
    loss, g = jax.value_and_grad(loss_fn)(p, b)
    upd, _ = tx.update(g, tx.init(p), p)
    return loss, g, optax.apply_updates(p, upd)

  ref = jax.jit(step)(jax.device_put(params, dev0), jax.device_put(batch, dev0))
  out = {}
  rules = partitioning.axis_rules()
  abstract = state.abstract_params(model, info, 0)
  # 8x1 through the trainer: tests/test_train_run.py (8x1 and 4x2 runs equal one device's)
  data, model_par = 4, 2
  mesh = partitioning.make_mesh(model_par)
  assert dict(mesh.shape) == {'data': data, 'model': model_par}
  # The trainer's path: abstract params -> shardings -> jit-compiled init into them.
  p_sh = partitioning.param_shardings(abstract, mesh, rules)
  sharded = state.init_params(model, info, mesh, rules, p_sh, 0)
  emb = sharded['txt']['token_embedder']['embedding']
  assert emb.sharding.spec == P('model', None), emb.sharding
  b = partitioning.shard_batch(batch, mesh)
  assert b['text'].sharding.spec == P('data', None)
  found = np.asarray(
    jax.jit(duplicate_pairs.duplicate_pairs)(b['image'], {'text': b['text']})['text']
  )
  out['duplicates'] = sorted([int(i), int(j)] for i, j in zip(*np.nonzero(found)))
  fn = jax.jit(
    step, in_shardings=(p_sh, None), out_shardings=(partitioning.replicated(mesh), p_sh, p_sh)
  )
  loss, g, new = fn(sharded, b)
  n_shards = len({str(s.index) for s in g['txt']['token_embedder']['embedding'].addressable_shards})
  assert n_shards == model_par, n_shards
  diffs = {'loss': abs(float(loss) - float(ref[0])) / abs(float(ref[0]))}
  for name, tree, ref_tree in [
    ('init', sharded, params),
    ('grad', g, ref[1]),
    ('step', new, ref[2]),
  ]:
    worst = 0.0
    for x, y in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(ref_tree)):
      x, y = np.asarray(x), np.asarray(y)
      scale = max(float(np.abs(y).max()), 1e-6)
      worst = max(worst, float(np.abs(x - y).max()) / scale)
    diffs[name] = worst
  out[f'{data}x{model_par}'] = diffs
  # Save on the 4x2 mesh, restore straight into the 8x1 shardings (resume on
  # another topology).
  with tempfile.TemporaryDirectory() as tmp:
    ckpt = checkpointing.Checkpoints(tmp, async_save=False)
    ckpt.save(1, {'params': new}, force=True)
    sh_8x1 = partitioning.param_shardings(abstract, partitioning.make_mesh(1), rules)
    target = jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), new, sh_8x1
    )
    restored, _, _ = ckpt.restore({'params': target})
    ckpt.close()
  worst = 0.0
  for x, y, s in zip(
    jax.tree_util.tree_leaves(restored['params']),
    jax.tree_util.tree_leaves(new),
    jax.tree_util.tree_leaves(sh_8x1, is_leaf=lambda v: isinstance(v, jax.sharding.Sharding)),
  ):
    assert x.sharding == s, (x.sharding, s)
    worst = max(worst, float(np.abs(np.asarray(x) - np.asarray(y)).max()))
  out['restore_4x2_to_8x1'] = worst
  return out


def test_a_num_partitions_that_does_not_divide_the_heads_is_one_line():
  """6 heads over 4 model devices: one line naming the gin key and the dimension, before any
  placement or restore (XLA's IndivisibleError was a traceback; on resume it read as a model
  change)."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import linen as nn  # pylint: disable=g-import-not-at-top

  from mlit.training import partitioning  # pylint: disable=g-import-not-at-top
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  leaf = lambda shape, names: nn.Partitioned(jax.ShapeDtypeStruct(shape, np.float32), names)  # noqa: E731
  params = {
    'relpos_bias': leaf((32, 6), ('relpos_buckets', 'heads')),
    'query': leaf((48, 48), ('embed', 'joined_kv')),
    'scale': jax.ShapeDtypeStruct((48,), np.float32),
  }
  partitioning.check_divisible(params, jax.sharding.AbstractMesh((4, 2), ('data', 'model')))
  with pytest.raises(UserError) as e:
    partitioning.check_divisible(params, jax.sharding.AbstractMesh((2, 4), ('data', 'model')))
  assert str(e.value) == (
    "train.train.num_partitions = 4 does not divide the model's heads (6): 1 parameter "
    "dimension, e.g. relpos_bias's heads dimension of 6; choose a num_partitions that divides "
    "them (and the devices' count), or 1"
  )


@pytest.mark.slow
def test_mesh_matches_single_device():
  env = dict(os.environ)
  env['XLA_FLAGS'] = (
    env.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8'
  ).strip()
  env['JAX_PLATFORMS'] = 'cpu'
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env['PYTHONPATH'] = repo + os.pathsep + env.get('PYTHONPATH', '')
  proc = subprocess.run(
    [sys.executable, os.path.abspath(__file__)],
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  print(result)
  assert result.pop('restore_4x2_to_8x1') == 0.0
  assert result.pop('duplicates') == [[0, 9], [2, 13], [9, 0], [13, 2]]
  assert set(result) == {'4x2'}
  for mesh, diffs in result.items():
    # sharded init vs one-device init: same values up to rounding.
    assert diffs['init'] < 1e-6, (mesh, diffs)
    for what in ('loss', 'grad'):
      assert diffs[what] < 1e-5, (mesh, what, diffs)
    assert diffs['step'] < 1e-5, (mesh, diffs)


if __name__ == '__main__':
  print(json.dumps(_check()))
