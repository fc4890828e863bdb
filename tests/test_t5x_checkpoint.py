"""T5X checkpoint reading, and parity of the text tower with `transformers`."""

import functools
import gc
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import t5x_checkpoint_writer as writer
from flax import serialization, traverse_util

from mlit.checkpoints import t5x as t5x_checkpoint
from mlit.models import text_tower


def _transformers():
  import transformers  # pylint: disable=g-import-not-at-top

  return transformers


# (model class, feed_forward_proj, layers): MT5 and T5, gated and plain MLP.
VARIANTS = [
  ('MT5EncoderModel', 'gated-gelu', 2),
  ('T5EncoderModel', 'relu', 3),
  ('T5EncoderModel', 'gated-gelu', 2),
]
D_MODEL, HEADS, D_KV, D_FF, VOCAB = 64, 4, 16, 128, 300


def _hf_model(cls_name, ff_proj, layers):
  import torch  # pylint: disable=g-import-not-at-top

  tf = _transformers()
  config_cls = tf.MT5Config if cls_name.startswith('MT5') else tf.T5Config
  config = config_cls(
    vocab_size=VOCAB,
    d_model=D_MODEL,
    d_kv=D_KV,
    d_ff=D_FF,
    num_layers=layers,
    num_heads=HEADS,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    dropout_rate=0.0,
    layer_norm_epsilon=1e-6,
    feed_forward_proj=ff_proj,
  )
  torch.manual_seed(0)
  model = getattr(tf, cls_name)(config).eval()
  with torch.no_grad():  # move layer-norm scales etc. away from their inits
    for p in model.parameters():
      p.add_(0.2 * torch.randn_like(p))
  return model


def _tokens():
  rng = np.random.default_rng(0)
  # Length 40 reaches the logarithmic relative-position buckets (16, 32).
  lengths = [40, 23, 5]
  tokens = np.zeros((3, 40), np.int32)
  for i, n in enumerate(lengths):
    tokens[i, : n - 1] = rng.integers(2, VOCAB, n - 1)
    tokens[i, n - 1] = 1  # EOS
  return tokens


def _mlit_config(ff_proj, layers):
  acts = ('gelu', 'linear') if ff_proj == 'gated-gelu' else ('relu',)
  return text_tower.T5Config(
    vocab_size=VOCAB,
    emb_dim=D_MODEL,
    num_heads=HEADS,
    num_encoder_layers=layers,
    head_dim=D_KV,
    mlp_dim=D_FF,
    mlp_activations=acts,
  )


@pytest.mark.parametrize('cls_name,ff_proj,layers', VARIANTS)
def test_parity_with_transformers(tmp_path, cls_name, ff_proj, layers):
  import torch  # pylint: disable=g-import-not-at-top

  hf = _hf_model(cls_name, ff_proj, layers)
  sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
  target = writer.hf_t5_encoder_to_t5x(sd, layers)
  target.update(
    writer.fake_decoder(np.random.default_rng(1), D_MODEL, HEADS * D_KV, D_FF, HEADS, VOCAB)
  )
  ckpt = str(tmp_path / 'checkpoint_1000')
  # Layer-norm scales (64 values) stay inline, the rest go to TensorStore.
  writer.write_legacy_checkpoint(ckpt, target, inline_max_size=64)

  tokens = _tokens()
  mask = tokens > 0
  with torch.no_grad():
    want = hf(
      input_ids=torch.tensor(tokens, dtype=torch.long),
      attention_mask=torch.tensor(mask, dtype=torch.long),
    ).last_hidden_state.numpy()

  model = text_tower.TextTower(_mlit_config(ff_proj, layers), pooling='mean')
  init = model.init(jax.random.PRNGKey(0), tokens)['params']
  params, report = t5x_checkpoint.load_text_tower_from_t5x(ckpt, init)
  assert not report.missing and not report.unused
  assert len(report.loaded) == len(jax.tree_util.tree_leaves(init))
  pooled, extras = model.apply({'params': params}, tokens)
  got = np.asarray(extras['hidden'])
  diff = np.abs(got - want)[mask].max()
  print(f'{cls_name} {ff_proj}: max abs diff {diff:.2e}')
  assert diff < 1e-4
  # Mean pooling over the real tokens only.
  want_pooled = (want * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
  np.testing.assert_allclose(np.asarray(pooled), want_pooled, atol=1e-4)


@functools.lru_cache(maxsize=None)
def _small_model(gated):
  cfg = text_tower.T5Config(
    vocab_size=40,
    emb_dim=16,
    num_heads=2,
    num_encoder_layers=1,
    head_dim=8,
    mlp_dim=32,
    mlp_activations=('gelu', 'linear') if gated else ('relu',),
  )
  model = text_tower.TextTower(cfg, out_dim=8)
  init = model.init(jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32))
  return model, init['params']


def _small_target(gated=True):
  """(model, boxed init params, T5X target with random weights + decoder)."""
  model, init = _small_model(gated)
  rng = np.random.default_rng(2)
  plain = traverse_util.flatten_dict(nn.unbox(init), sep='/')
  target = {
    k: rng.normal(size=v.shape).astype(np.float32)
    for k, v in plain.items()
    if not k.startswith('head/')
  }
  target.update(writer.fake_decoder(rng, 16, 16, 32, 2, 40))
  return model, init, target


def test_full_read_reports_dropped_decoder(tmp_path):
  _, init, target = _small_target()
  ckpt = str(tmp_path / 'checkpoint_7')
  writer.write_legacy_checkpoint(ckpt, target, inline_max_size=16, driver='gcs')
  flat = t5x_checkpoint.read_t5x_checkpoint(ckpt)
  assert set(flat) == set(target)
  for k, v in target.items():
    np.testing.assert_array_equal(flat[k], v, err_msg=k)
  params, report = t5x_checkpoint.text_tower_params_from_t5x(flat, init)
  assert sorted(report.dropped) == sorted(k for k in target if k.startswith('decoder/'))
  assert report.fresh == ['head/bias', 'head/kernel']
  # Boxes (logical axes) survive the load.
  specs = nn.get_partition_spec(params)
  assert tuple(specs['token_embedder']['embedding']) == ('vocab', 'embed')
  np.testing.assert_array_equal(
    nn.unbox(params)['encoder']['layers_0']['mlp']['wo']['kernel'],
    target['encoder/layers_0/mlp/wo/kernel'],
  )


@pytest.mark.parametrize('driver', ['file', 'gfile'])
def test_reads_checkpoint_file_path_and_drivers(tmp_path, driver):
  _, _, target = _small_target()
  ckpt = str(tmp_path / 'checkpoint_1')
  writer.write_legacy_checkpoint(ckpt, target, driver=driver)
  flat = t5x_checkpoint.read_t5x_checkpoint(os.path.join(ckpt, 'checkpoint'), include='^encoder/')
  assert flat and all(k.startswith('encoder/') for k in flat)


def test_orbax_checkpoint(tmp_path, monkeypatch):
  model, init, target = _small_target(gated=False)
  ckpt = str(tmp_path / 'checkpoint_3')
  writer.write_orbax_checkpoint(ckpt, target)
  # A relative path, as INITIAL_CHECKPOINT_PATH often is (Orbax itself takes absolute ones only).
  monkeypatch.chdir(tmp_path)
  params, report = t5x_checkpoint.load_text_tower_from_t5x('checkpoint_3', init)
  # The decoder is not read, but the report names it (it said "dropped 0").
  assert report.dropped == sorted(k for k in target if k.startswith('decoder/')) != []
  np.testing.assert_array_equal(
    nn.unbox(params)['encoder']['layers_0']['mlp']['wi']['kernel'],
    target['encoder/layers_0/mlp/wi/kernel'],
  )
  flat = t5x_checkpoint.read_t5x_checkpoint(ckpt)
  assert set(flat) == set(target)
  model.apply({'params': params}, jnp.ones((1, 4), jnp.int32))


def test_damaged_orbax_checkpoint_is_one_line(tmp_path, capfd):
  _, _, target = _small_target(gated=False)
  ckpt = tmp_path / 'checkpoint_3'
  writer.write_orbax_checkpoint(str(ckpt), target)
  # Every data file cut in half, the merged index's (state/d/) too: which file holds `target`'s
  # arrays varies from write to write. A damaged index read as "no `target` entry".
  for data in (ckpt / 'state').glob('**/d/*'):
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
  with pytest.raises(t5x_checkpoint.CheckpointError, match='checkpoint unreadable') as e:
    t5x_checkpoint.read_t5x_checkpoint(str(ckpt))
  # TensorStore's cause (array, file, byte range), not orbax's wrapper with the store's spec.
  assert f'{ckpt}/state: checkpoint unreadable (' in str(e.value)
  assert 'TensorStore details' not in str(e.value) and len(str(e.value).splitlines()) == 1
  gc.collect()  # the abandoned reads' tasks, collected, log nothing either
  assert 'never retrieved' not in capfd.readouterr().err


def test_path_escaping_checkpoint_dir_is_refused(tmp_path):
  _, _, target = _small_target()
  outside = tmp_path / 'secret'
  outside.mkdir()
  ckpt = str(tmp_path / 'ckpts' / 'checkpoint_1')
  key = 'encoder/layers_0/attention/query/kernel'
  writer.write_legacy_checkpoint(ckpt, target, path_override={key: '../../secret'})
  with pytest.raises(t5x_checkpoint.CheckpointError, match='target/' + key + '.*outside'):
    t5x_checkpoint.read_t5x_checkpoint(ckpt)


def test_strict_mode_names_missing_and_unused(tmp_path, capsys):
  _, init, target = _small_target()
  del target['encoder/layers_0/mlp/wi_1/kernel']
  target['encoder/layers_0/mlp/extra/kernel'] = np.zeros((16, 4), np.float32)
  with pytest.raises(t5x_checkpoint.CheckpointError) as err:
    t5x_checkpoint.text_tower_params_from_t5x(target, init)
  assert 'encoder/layers_0/mlp/wi_1/kernel' in str(err.value)
  assert 'encoder/layers_0/mlp/extra/kernel' in str(err.value)
  params, report = t5x_checkpoint.text_tower_params_from_t5x(target, init, strict=False)
  assert report.missing == ['encoder/layers_0/mlp/wi_1/kernel']
  assert "missing: ['encoder/layers_0/mlp/wi_1/kernel']" in capsys.readouterr().err
  assert report.unused == ['encoder/layers_0/mlp/extra/kernel']
  # The missing kernel keeps its initial value.
  np.testing.assert_array_equal(
    nn.unbox(params)['encoder']['layers_0']['mlp']['wi_1']['kernel'],
    nn.unbox(init)['encoder']['layers_0']['mlp']['wi_1']['kernel'],
  )


def test_shape_mismatch_is_named(tmp_path):
  _, init, target = _small_target()
  target['token_embedder/embedding'] = np.zeros((41, 16), np.float32)
  with pytest.raises(
    t5x_checkpoint.CheckpointError, match=r'token_embedder/embedding: checkpoint \(41, 16\)'
  ):
    t5x_checkpoint.text_tower_params_from_t5x(target, init)
  # Through the loader: the path first, then the setting that differs, not every key.
  ckpt = str(tmp_path / 'checkpoint_1')
  writer.write_legacy_checkpoint(ckpt, target)
  with pytest.raises(t5x_checkpoint.CheckpointError) as err:
    t5x_checkpoint.load_text_tower_from_t5x(ckpt, init)
  assert str(err.value) == (
    f'{ckpt}: T5X checkpoint does not match the text tower: token_embedder/embedding: checkpoint '
    '(41, 16) vs model (40, 16) (text_tower.T5Config.vocab_size, emb_dim); shapes differ: '
    "['token_embedder/embedding: checkpoint (41, 16) vs model (40, 16)']"
  )
  # A checkpoint with a layer more: the layer counts, not its nine keys.
  _, init, target = _small_target()
  for k in [k for k in target if k.startswith('encoder/layers_0/')]:
    target[k.replace('layers_0', 'layers_1')] = target[k]
  writer.write_legacy_checkpoint(str(tmp_path / 'checkpoint_2'), target)
  with pytest.raises(t5x_checkpoint.CheckpointError) as err:
    t5x_checkpoint.load_text_tower_from_t5x(str(tmp_path / 'checkpoint_2'), init)
  assert str(err.value).endswith(
    'T5X checkpoint does not match the text tower: the checkpoint has 2 encoder layers, the '
    'model 1 (text_tower.T5Config.num_encoder_layers)'
  )


def test_a_directory_that_holds_checkpoints_or_an_mlit_run_says_so(tmp_path):
  _, _, target = _small_target()
  writer.write_legacy_checkpoint(str(tmp_path / 'export' / 'checkpoint_30'), target)
  with pytest.raises(t5x_checkpoint.CheckpointError) as err:
    t5x_checkpoint.read_t5x_checkpoint(str(tmp_path / 'export'))
  assert str(err.value).endswith(
    f'it holds checkpoint_30: give {tmp_path / "export" / "checkpoint_30"}'
  )
  (tmp_path / 'run' / 'checkpoints' / '30').mkdir(parents=True)
  for where in ('run', 'run/checkpoints/30'):
    with pytest.raises(t5x_checkpoint.CheckpointError, match='this is an mlit run.*CONTINUE_FROM'):
      t5x_checkpoint.read_t5x_checkpoint(str(tmp_path / where))
  (tmp_path / 'spm.model').write_bytes(b'x')
  with pytest.raises(t5x_checkpoint.CheckpointError, match='a file, not a T5X checkpoint'):
    t5x_checkpoint.read_t5x_checkpoint(str(tmp_path / 'spm.model'))


def test_malformed_checkpoint_file_is_named(tmp_path):
  ckpt = tmp_path / 'checkpoint_2'
  ckpt.mkdir()
  (ckpt / 'checkpoint').write_bytes(b'\x81\xa7version\x03')  # no optimizer
  with pytest.raises(t5x_checkpoint.CheckpointError, match='optimizer/target'):
    t5x_checkpoint.read_t5x_checkpoint(str(ckpt))
  with pytest.raises(t5x_checkpoint.CheckpointError, match='no such'):
    t5x_checkpoint.read_t5x_checkpoint(str(tmp_path / 'nope'))


def _rewrite_specs(ckpt, change):
  """Applies `change(spec)` to every TensorStore spec of a legacy checkpoint file."""
  path = os.path.join(ckpt, 'checkpoint')
  with open(path, 'rb') as f:
    contents = serialization.msgpack_restore(f.read())
  flat = traverse_util.flatten_dict(
    contents['optimizer']['target'], is_leaf=lambda _, v: isinstance(v, dict) and 'kvstore' in v
  )
  for key, value in flat.items():
    if isinstance(value, dict):
      change(value)
  contents['optimizer']['target'] = traverse_util.unflatten_dict(flat)
  with open(path, 'wb') as f:
    f.write(serialization.msgpack_serialize(contents))


def test_older_spec_form_with_top_level_path(tmp_path):
  """{"kvstore": {"driver": "gcs", "bucket": ...}, "path": "target..."}: older tensorstore."""
  _, _, target = _small_target()
  ckpt = str(tmp_path / 'checkpoint_5')
  writer.write_legacy_checkpoint(ckpt, target, driver='gcs')

  def to_old_form(spec):
    spec['path'] = spec['kvstore'].pop('path')

  _rewrite_specs(ckpt, to_old_form)
  flat = t5x_checkpoint.read_t5x_checkpoint(ckpt)
  for k, v in target.items():
    np.testing.assert_array_equal(flat[k], v, err_msg=k)

  def escape(spec):
    spec['path'] = '../../secret'

  _rewrite_specs(ckpt, escape)
  with pytest.raises(t5x_checkpoint.CheckpointError, match='outside'):
    t5x_checkpoint.read_t5x_checkpoint(ckpt)


def test_chunk_symlinked_out_of_the_checkpoint_is_refused(tmp_path):
  _, _, target = _small_target()
  ckpt = tmp_path / 'ckpts' / 'checkpoint_1'
  writer.write_legacy_checkpoint(str(ckpt), target)
  array_dir = ckpt / 'target.encoder.layers_0.attention.query.kernel'
  chunk = next(p for p in array_dir.rglob('*') if p.is_file() and not p.name.startswith('.'))
  outside = tmp_path / 'secret_chunk'
  outside.write_bytes(chunk.read_bytes())
  chunk.unlink()
  chunk.symlink_to(outside)
  with pytest.raises(t5x_checkpoint.CheckpointError, match='secret_chunk.*outside'):
    t5x_checkpoint.read_t5x_checkpoint(str(ckpt))
