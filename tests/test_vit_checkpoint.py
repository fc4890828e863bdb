"""Tests of mlit.checkpoints.big_vision_npz, with timm's big_vision .npz loader as reference."""

import io
import os
import zipfile

import flax
import jax
import numpy as np
import pytest
import torch

from mlit.checkpoints import big_vision_npz as vit_checkpoint
from mlit.models import image_tower

WIDTH, DEPTH, HEADS, MLP, PATCH = 64, 2, 4, 128, 16


@pytest.fixture(scope='module')
def timm_vit():
  # The Makefile installs a torchvision whose import works beside the CPU torch (timm imports it).
  from timm.models import vision_transformer  # pylint: disable=g-import-not-at-top

  return vision_transformer


def _model(pool='tok', **kw):
  return image_tower.ViT(
    width=WIDTH, depth=DEPTH, mlp_dim=MLP, num_heads=HEADS, patch_size=PATCH, pool_type=pool, **kw
  )


def _init(model, size=32, seed=0):
  """Random params with the model's names and shapes.

  Shapes come from jax.eval_shape (no compilation); values from numpy, since
  compiling jax's RNG for every test would dominate the test time.
  """
  hw = (size, size) if isinstance(size, int) else size
  shapes = jax.eval_shape(
    model.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, *hw, 3), np.float32)
  )
  rng = np.random.default_rng(seed)
  flat = flax.traverse_util.flatten_dict(shapes['params'])
  return flax.traverse_util.unflatten_dict(
    {
      k: ((k[-1] == 'scale') + 0.1 * rng.standard_normal(v.shape)).astype(np.float32)
      for k, v in flat.items()
    }
  )


def _images(size=32, n=2, seed=1):
  rng = np.random.default_rng(seed)
  return rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def _features(model, params, images):
  return np.asarray(model.apply({'params': params}, images)[0])


def _flat(params):
  return {'/'.join(k): v for k, v in flax.traverse_util.flatten_dict(params).items()}


def _write_pre_linen(path, params, rng):
  """Writes params under the names of AugReg/original ViT .npz files."""
  flat = _flat(params)
  old = {}
  for k, v in flat.items():
    if k.startswith('Transformer/encoderblock_'):
      k = (
        k.replace('MultiHeadDotProductAttention_0', 'MultiHeadDotProductAttention_1')
        .replace('LayerNorm_1', 'LayerNorm_2')
        .replace('MlpBlock_0', 'MlpBlock_3')
      )
    old[k] = v
  # Old layout: cls is prepended before the posemb is added, so the table has
  # an extra first row that acts on the cls token.
  pe = old.pop('pos_embedding')
  first = rng.standard_normal((1, 1, pe.shape[2])).astype(np.float32)
  old['Transformer/posembed_input/pos_embedding'] = np.concatenate([first, pe], 1)
  old['cls'] = old['cls'] - first
  np.savez(path, **old)


def _timm_features(timm_vit, path, images, pool='tok', size=32, no_embed_class=True):
  kw = dict(
    img_size=size,
    patch_size=PATCH,
    embed_dim=WIDTH,
    depth=DEPTH,
    num_heads=HEADS,
    mlp_ratio=MLP / WIDTH,
    num_classes=0,
    act_layer='gelu_tanh',
    fc_norm=False,
  )
  if pool == 'tok':
    kw.update(global_pool='token', class_token=True, no_embed_class=no_embed_class)
  else:
    kw.update(global_pool={'gap': 'avg', 'map': 'map'}[pool], class_token=False)
  model = timm_vit.VisionTransformer(**kw).eval()
  timm_vit._load_weights(model, str(path))  # pylint: disable=protected-access
  with torch.no_grad():
    x = torch.from_numpy(images.transpose(0, 3, 1, 2))
    return model.forward_head(model.forward_features(x), pre_logits=True).numpy()


@pytest.mark.parametrize('pool', ['tok', 'gap', 'map'])
def test_parity_with_timm_modern_names(tmp_path, timm_vit, pool):
  model = _model(pool)
  params = _init(model, seed=3)
  path = tmp_path / 'vit.npz'
  vit_checkpoint.save_big_vision_npz(str(path), params)

  loaded, report = vit_checkpoint.load_big_vision_npz(str(path), _init(model, seed=7), strict=True)
  images = _images()
  ours = _features(model, loaded, images)
  ref = _timm_features(timm_vit, path, images, pool)
  assert ours.shape == ref.shape == (2, WIDTH)
  assert np.max(np.abs(ours - ref)) < 1e-4
  # Loading mattered: a fresh init gives other features.
  assert np.max(np.abs(_features(model, _init(model, seed=7), images) - ref)) > 1e-2
  assert report.ok and not report.renamed


def test_parity_with_timm_pre_linen_names(tmp_path, timm_vit):
  model = _model('tok')
  params = _init(model, seed=4)
  path = tmp_path / 'augreg.npz'
  _write_pre_linen(path, params, np.random.default_rng(0))

  loaded, report = vit_checkpoint.load_big_vision_npz(str(path), _init(model, seed=8), strict=True)
  assert report.renamed['Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel'] == (
    'Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel'
  )
  assert report.renamed['Transformer/posembed_input/pos_embedding'] == 'pos_embedding'
  images = _images()
  ours = _features(model, loaded, images)
  ref = _timm_features(timm_vit, path, images, 'tok', no_embed_class=False)
  assert np.max(np.abs(ours - ref)) < 1e-4
  # The cls row folded into cls gives back the original function.
  assert np.max(np.abs(ours - _features(model, params, images))) < 1e-4


def test_resampled_posemb_matches_timm_at_new_resolution(tmp_path, timm_vit):
  """Checkpoint at 32px (2x2 grid) into a 64px (4x4 grid) model, cls kept."""
  params = _init(_model('tok'), size=32, seed=5)
  path = tmp_path / 'augreg32.npz'
  _write_pre_linen(path, params, np.random.default_rng(1))
  model = _model('tok')
  loaded, report = vit_checkpoint.load_big_vision_npz(str(path), _init(model, size=64), strict=True)
  assert loaded['pos_embedding'].shape == (1, 16, WIDTH)
  assert report.resampled['pos_embedding'] == ((1, 4, WIDTH), (1, 16, WIDTH))
  images = _images(size=64)
  ref = _timm_features(timm_vit, path, images, 'tok', size=64, no_embed_class=False)
  assert np.max(np.abs(_features(model, loaded, images) - ref)) < 1e-4


@pytest.mark.parametrize('old,new', [((4, 4), (7, 5)), ((6, 6), (3, 3)), ((3, 3), (3, 3))])
def test_resample_posemb_equals_torch_bilinear(old, new):
  rng = np.random.default_rng(0)
  pe = rng.standard_normal((1, old[0] * old[1], 8)).astype(np.float32)
  ours = vit_checkpoint.resample_posemb(pe, old, new)
  grid = torch.from_numpy(pe.reshape(1, *old, 8)).permute(0, 3, 1, 2)
  ref = torch.nn.functional.interpolate(
    grid, size=new, mode='bilinear', align_corners=False, antialias=False
  )
  ref = ref.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], 8).numpy()
  assert ours.shape == (1, new[0] * new[1], 8)
  np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_non_square_target_needs_image_size(tmp_path):
  model = _model('gap')
  path = tmp_path / 'vit.npz'
  vit_checkpoint.save_big_vision_npz(str(path), _init(model, size=32))
  init = _init(model, size=(48, 32))
  with pytest.raises(vit_checkpoint.CheckpointError, match='image_size'):
    vit_checkpoint.load_big_vision_npz(str(path), init)
  loaded, _ = vit_checkpoint.load_big_vision_npz(str(path), init, image_size=(48, 32))
  assert loaded['pos_embedding'].shape == (1, 6, WIDTH)


def test_dont_load_keeps_init_values(tmp_path):
  model = _model('tok')
  path = tmp_path / 'vit.npz'
  ckpt = _init(model, seed=1)
  vit_checkpoint.save_big_vision_npz(str(path), ckpt)
  init = _init(model, seed=2)
  loaded, report = vit_checkpoint.load_big_vision_npz(
    str(path), init, dont_load=[r'Transformer/encoderblock_1/.*', 'cls', r'nothing/.*']
  )
  flat_l, flat_i, flat_c = _flat(loaded), _flat(init), _flat(ckpt)
  kept = sorted(k for k in flat_l if k.startswith('Transformer/encoderblock_1/') or k == 'cls')
  assert sorted(report.kept_init) == kept and len(kept) == 17
  for k in flat_l:
    expected = flat_i[k] if k in kept else flat_c[k]
    np.testing.assert_array_equal(flat_l[k], expected, err_msg=k)
  assert report.unmatched_dont_load == [r'nothing/.*']
  assert report.ok
  with pytest.raises(ValueError, match=r"dont_load pattern 'head/\('"):
    vit_checkpoint.load_big_vision_npz(str(path), init, dont_load=['head/('])


def test_head_dropped_unless_keep_head(tmp_path):
  path = tmp_path / 'cls.npz'
  vit_checkpoint.save_big_vision_npz(str(path), _init(_model('tok', num_classes=10), seed=1))
  # Default: the head keeps its init values, even for another class count.
  init5 = _init(_model('tok', num_classes=5))
  loaded, report = vit_checkpoint.load_big_vision_npz(str(path), init5, strict=True)
  assert sorted(report.dropped_head) == ['head/bias', 'head/kernel']
  np.testing.assert_array_equal(loaded['head']['kernel'], init5['head']['kernel'])
  # A model without head: dropped as well, nothing unused.
  _, report = vit_checkpoint.load_big_vision_npz(str(path), _init(_model('tok')), strict=True)
  assert report.ok and len(report.dropped_head) == 2
  # keep_head loads it when the shape fits, and names the key when not.
  ckpt = np.load(path)
  loaded, report = vit_checkpoint.load_big_vision_npz(
    str(path), _init(_model('tok', num_classes=10)), keep_head=True
  )
  np.testing.assert_array_equal(loaded['head']['kernel'], ckpt['head/kernel'])
  assert 'head/kernel' in report.loaded and not report.dropped_head
  with pytest.raises(vit_checkpoint.CheckpointError, match="'head/(kernel|bias)' has shape"):
    vit_checkpoint.load_big_vision_npz(str(path), init5, keep_head=True)


def test_unused_and_missing_keys_reported(tmp_path, capsys):
  model = _model('tok')
  flat = _flat(_init(model))
  del flat['Transformer/encoder_norm/scale']
  flat['Transformer/extra_norm/scale'] = np.ones(WIDTH, np.float32)
  path = tmp_path / 'partial.npz'
  np.savez(path, **flat)
  init = _init(model)
  loaded, report = vit_checkpoint.load_big_vision_npz(str(path), init, strict=False)
  # A non-strict load says what stays at init.
  assert 'missing (1): Transformer/encoder_norm/scale' in capsys.readouterr().err
  assert report.missing == ['Transformer/encoder_norm/scale']
  assert report.unused == ['Transformer/extra_norm/scale']
  np.testing.assert_array_equal(
    loaded['Transformer']['encoder_norm']['scale'], init['Transformer']['encoder_norm']['scale']
  )
  assert 'missing (1): Transformer/encoder_norm/scale' in report.summary()
  # Strict is the default: a missing array never silently stays random.
  with pytest.raises(
    vit_checkpoint.CheckpointError, match='(?s)encoder_norm/scale.*extra_norm/scale'
  ):
    vit_checkpoint.load_big_vision_npz(str(path), init)


def test_shape_mismatch_names_key(tmp_path):
  path = tmp_path / 'wide.npz'
  wide = image_tower.ViT(
    width=32, depth=1, mlp_dim=MLP, num_heads=HEADS, patch_size=PATCH, pool_type='gap'
  )
  vit_checkpoint.save_big_vision_npz(str(path), _init(wide))
  narrow = image_tower.ViT(
    width=32, depth=1, mlp_dim=64, num_heads=HEADS, patch_size=PATCH, pool_type='gap'
  )
  with pytest.raises(
    vit_checkpoint.CheckpointError, match=r"MlpBlock_0/Dense_0/bias'.*\(128,\).*\(64,\)"
  ):
    vit_checkpoint.load_big_vision_npz(str(path), _init(narrow))


class _Trap:
  """Unpickling this object would create the marker file."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, 'w'))


def test_pickled_arrays_are_refused(tmp_path):
  marker = tmp_path / 'unpickled'
  path = tmp_path / 'evil.npz'
  trap = np.empty(1, dtype=object)
  trap[0] = _Trap(str(marker))
  np.savez(path, **{'embedding/kernel': np.zeros(3, np.float32), 'cls': trap})
  with pytest.raises(
    vit_checkpoint.CheckpointError, match=r"evil.npz: array 'cls' is a pickled object array"
  ):
    vit_checkpoint.load_big_vision_npz(str(path), _init(_model('tok')))
  assert not marker.exists()


def test_unreadable_files_are_clear_errors(tmp_path):
  npy = tmp_path / 'single.npy'
  np.save(npy, np.zeros(3))
  with pytest.raises(vit_checkpoint.CheckpointError, match='single array'):
    vit_checkpoint.read_npz(str(npy))
  junk = tmp_path / 'junk.npz'
  junk.write_bytes(b'PK\x03\x04 not really a zip')
  with pytest.raises(vit_checkpoint.CheckpointError, match='junk.npz'):
    vit_checkpoint.read_npz(str(junk))
  text = tmp_path / 'text.npz'
  np.savez(text, names=np.array(['a', 'b']))
  with pytest.raises(vit_checkpoint.CheckpointError, match="'names'.*non-numeric"):
    vit_checkpoint.read_npz(str(text))


def test_scanned_layout_and_prefix(tmp_path):
  """A scanned encoder (blocks stacked on axis 0) under 'params/img/'."""
  model = _model('map')
  params = _init(model, seed=6)
  flat = _flat(params)
  out = {}
  for k, v in flat.items():
    if k.startswith('Transformer/encoderblock_'):
      rest = k.split('/', 2)[2]
      out[f'params/img/Transformer/encoderblock/{rest}'] = np.stack(
        [flat[f'Transformer/encoderblock_{i}/{rest}'] for i in range(DEPTH)]
      )
    else:
      out[f'params/img/{k}'] = v
  out['params/txt/other'] = np.zeros(2, np.float32)
  path = tmp_path / 'lit.npz'
  np.savez(path, **out)
  loaded, report = vit_checkpoint.load_big_vision_npz(
    str(path), _init(model), prefix='params/img/', strict=True
  )
  for k, v in _flat(loaded).items():
    np.testing.assert_array_equal(v, flat[k], err_msg=k)
  assert report.ok


def test_save_writes_modern_flat_names(tmp_path):
  path = tmp_path / 'out.npz'
  params = _init(_model('map', rep_size=True, num_classes=3))
  vit_checkpoint.save_big_vision_npz(str(path), params)
  with np.load(path, allow_pickle=False) as z:
    names = set(z.files)
  assert names == set(_flat(params))
  assert {
    'pos_embedding',
    'MAPHead_0/probe',
    'pre_logits/kernel',
    'head/bias',
    'Transformer/encoderblock_1/MultiHeadDotProductAttention_0/out/kernel',
  } <= names
  assert sorted(os.listdir(tmp_path)) == ['out.npz']


def _npz_member(path, name, raw):
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr(name, raw)


def test_corrupt_array_data_names_file_and_array(tmp_path):
  good = tmp_path / 'good.npz'
  np.savez(good, **{'cls': np.arange(1000, dtype=np.float32)})
  data = bytearray(good.read_bytes())
  data[len(data) // 2] ^= 0xFF  # inside the array data: the zip is intact, its CRC is not
  crc = tmp_path / 'crc.npz'
  crc.write_bytes(bytes(data))
  with pytest.raises(vit_checkpoint.CheckpointError, match=r"crc.npz: array 'cls' is corrupt"):
    vit_checkpoint.read_npz(str(crc))
  buf = io.BytesIO()
  np.lib.format.write_array(buf, np.arange(1000, dtype=np.float32))
  short = tmp_path / 'short.npz'
  _npz_member(short, 'cls.npy', buf.getvalue()[:-2000])  # data shorter than its header says
  with pytest.raises(
    vit_checkpoint.CheckpointError, match=r"short.npz: array 'cls' is unreadable \(.*expected"
  ):
    vit_checkpoint.read_npz(str(short))
