"""Lock setups: LU with a live ViT from a big_vision .npz and a text tower from
a T5X checkpoint; the locked tower stays bit-identical and holds no optimizer
state. Setup/data mismatches stop before any work."""

import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import t5x_checkpoint_writer
from flax import traverse_util

from mlit.checkpoints import big_vision_npz as vit_checkpoint
from mlit.commands import gin_flags
from mlit.models import image_tower, text_tower
from mlit.training import train

_VIT = {'width': 16, 'depth': 1, 'mlp_dim': 32, 'num_heads': 2, 'patch_size': 8, 'pool_type': 'tok'}
_TINY_T5 = dict(
  vocab_size=512, emb_dim=32, num_heads=2, num_encoder_layers=2, head_dim=16, mlp_dim=64
)


def _flat(tree):
  return traverse_util.flatten_dict(jax.device_get(tree), sep='/')


def _write_checkpoints(root: pathlib.Path):
  rng = jax.random.PRNGKey(42)
  vit = nn.unbox(image_tower.ViT(**_VIT).init(rng, jnp.zeros((1, 16, 16, 3)))['params'])
  npz = root / 'vit.npz'
  vit_checkpoint.save_big_vision_npz(str(npz), jax.device_get(vit))
  txt = nn.unbox(
    text_tower.TextTower(text_tower.T5Config(**_TINY_T5)).init(rng, jnp.ones((1, 8), jnp.int32))[
      'params'
    ]
  )
  target = {k: np.asarray(v) for k, v in _flat(txt).items()}
  t5x_checkpoint_writer.write_legacy_checkpoint(str(root / 't5x'), target)
  return npz, root / 't5x', _flat(vit), target


def _state(model_dir, step):
  path = pathlib.Path(model_dir) / 'checkpoints' / str(step) / 'state'
  ckptr = ocp.PyTreeCheckpointer()
  tree = ckptr.metadata(str(path)).item_metadata.tree
  args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  return ckptr.restore(str(path), restore_args=args)


def _gin(root, npz, t5x, setup='LU'):
  g = root / f'{setup}.gin'
  g.write_text(f"""
from __gin__ import dynamic_registration
from mlit.training import train
include 'local_tiny.gin'
include 'setups/{setup}.gin'
MIXTURE_OR_TASK_NAME = 'mlit_synthetic_images'
IMAGE_TOWER = {_VIT!r}
IMAGE_CHECKPOINT_PATH = '{npz}'
INITIAL_CHECKPOINT_PATH = '{t5x}'
TRAIN_STEPS = 3
WARMUP_STEPS = 1
BATCH_SIZE = 8
train.train.checkpoint_period = 3
""")
  return g


@pytest.mark.slow
def test_lu_live_images_pretrained_towers(tmp_path, capsys):
  npz, t5x, vit_init, txt_init = _write_checkpoints(tmp_path)
  g = _gin(tmp_path, npz, t5x)
  # Duplicates left out on live pixels: said at set-up (crops make one image's rows differ).
  flags = [f'--gin_file={g}', f'--gin.MODEL_DIR="{tmp_path / "run"}"']
  assert train.main(flags + ['--gin.train.train.duplicates_as_negatives=False']) == 0
  assert train.DUPLICATES_ON_LIVE_IMAGES in capsys.readouterr().err
  records = (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()
  assert 'text/duplicate_rows' in json.loads(records[-1])
  state = _state(tmp_path / 'run', 3)
  params = traverse_util.flatten_dict(state['params'], sep='/')
  for k, v in vit_init.items():  # locked: exactly the .npz weights
    np.testing.assert_array_equal(params[f'img/{k}'], v, err_msg=k)
  moved = [
    np.max(np.abs(params[f'txt/{k}'] - v)) for k, v in txt_init.items() if not k.startswith('head/')
  ]
  # Loaded from T5X, then 3 Adam steps of lr <= 3e-3 each: close, but trained.
  assert max(moved) < 0.02 and max(moved) > 0
  opt_leaves = jax.tree_util.tree_leaves(state['opt_state'])
  trainable = sum(v.size for k, v in params.items() if not k.startswith('img/'))
  assert sum(np.size(x) for x in opt_leaves) <= 2 * trainable + 16
  # The load reports printed at set-up are kept with the run.
  init = json.loads((tmp_path / 'run' / 'initialization.json').read_text())
  assert init['text']['path'] == str(t5x) and init['image']['path'] == str(npz)
  assert sorted(init['text']['loaded']) == sorted(k for k in txt_init if not k.startswith('head/'))
  assert init['text']['missing'] == init['text']['shape_mismatch'] == []
  assert init['image']['summary'].startswith(f'{npz}: loaded {len(vit_init)} arrays')


def test_setup_mismatches_stop_before_work(tmp_path):
  g = _gin(tmp_path, tmp_path / 'none.npz', tmp_path / 'none', setup='Uu')
  gin_flags.parse_flags(
    [
      f'--gin_file={g}',
      '--gin.MODEL_DIR="/x"',
      "--gin.MIXTURE_OR_TASK_NAME='mlit_synthetic_embeddings'",
      '--gin.IMAGE_TOWER=None',
      '--gin.INITIAL_CHECKPOINT_PATH=None',
    ],
    'test',
  )
  with pytest.raises(ValueError, match='only setups L'):
    train.gin.get_configurable(train.train)(model_dir=str(tmp_path / 'a'))
  # A T5X path with a random-init text setup is not silently ignored: it names the setups to use.
  gin_flags.parse_flags(
    [f'--gin_file={_gin(tmp_path, tmp_path / "none.npz", tmp_path / "t5x", setup="Lu")}']
    + ['--gin.MODEL_DIR="/x"'],
    'test',
  )
  with pytest.raises(ValueError, match=r'setups/LU.gin .*CONTINUE_FROM'):
    train.gin.get_configurable(train.train)(model_dir=str(tmp_path / 'c'))
  g = _gin(tmp_path, tmp_path / 'none.npz', tmp_path / 'none', setup='LU')
  gin_flags.parse_flags(
    [f'--gin_file={g}', '--gin.MODEL_DIR="/x"', '--gin.INITIAL_CHECKPOINT_PATH=None'], 'test'
  )
  with pytest.raises(ValueError, match='INITIAL_CHECKPOINT_PATH'):
    train.gin.get_configurable(train.train)(model_dir=str(tmp_path / 'b'))


@pytest.mark.slow
def test_multi_signal_loss_is_the_sum_over_signals(tmp_path):
  import json  # pylint: disable=g-import-not-at-top

  import lit_test_tasks  # pylint: disable=g-import-not-at-top

  lit_test_tasks.write_data(str(tmp_path / 'data'))
  lit_test_tasks.register(str(tmp_path / 'data'))
  g = tmp_path / 'multi.gin'
  g.write_text("""
from __gin__ import dynamic_registration
from mlit.training import train
include 'local_tiny.gin'
MIXTURE_OR_TASK_NAME = 'lit_test_multi_signal'
TASK_FEATURE_LENGTHS = {'title': 8, 'description': 8, 'tags': 8}
TRAIN_STEPS = 2
WARMUP_STEPS = 1
BATCH_SIZE = 16
train.train.log_period = 1
""")
  model_dir = tmp_path / 'run'
  assert train.main([f'--gin_file={g}', f'--gin.MODEL_DIR="{model_dir}"']) == 0
  for line in (model_dir / 'metrics.jsonl').read_text().splitlines():
    r = json.loads(line)
    parts = [r[f'{s}/loss'] for s in ('title', 'description', 'tags')]
    assert r['loss'] == pytest.approx(sum(parts), rel=1e-5)
    # Empty signals (the test data has some) are masked out of their loss.
    assert min(r[f'{s}/n_valid'] for s in ('title', 'description', 'tags')) < 16


def test_a_vocabulary_larger_than_the_embedding_stops_with_one_line(tmp_path, capsys):
  # XLA's gather would clamp ids 32..63 of the synthetic task's 64 to row 31 without a word.
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  code = cli.main(
    [
      'train',
      '--gin_file=local_tiny.gin',
      '--gin_file=setups/Lu.gin',
      "--gin.MIXTURE_OR_TASK_NAME='mlit_synthetic_embeddings'",
      '--gin.IMAGE_TOWER=None',
      '--gin.text_tower.T5Config.vocab_size=32',
      f'--gin.MODEL_DIR="{tmp_path / "run"}"',
    ]
  )
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1, err
  assert "mlit_synthetic_embeddings feature 'text'" in err[0]
  assert 'has 64 ids but the text tower embeds 32' in err[0]
  assert '--gin.text_tower.T5Config.vocab_size=128' in err[0]
  assert not (tmp_path / 'run').exists()  # before any work
