"""Test helper: writes T5X-format checkpoints from NumPy weights.

Independent of mlit's reader: it writes what T5X's legacy Checkpointer writes
(msgpack `checkpoint` file with inline small arrays and TensorStore zarr specs
with paths relative to the checkpoint directory), and converts `transformers`
T5 encoder state dicts to T5X names.
"""

import os
from typing import Dict, Mapping

import numpy as np
import tensorstore as ts
from flax import serialization, traverse_util


def hf_t5_encoder_to_t5x(
  state_dict: Mapping[str, np.ndarray], num_layers: int
) -> Dict[str, np.ndarray]:
  """`transformers` T5/MT5 encoder weights -> flat T5X `target` names.

  torch Linear weights are [out, in]; T5X kernels are [in, out]. The relative
  attention bias lives in block 0 as an Embedding [buckets, heads]; T5X keeps
  one table [heads, buckets] per stack.
  """
  sd = {k: np.asarray(v, np.float32) for k, v in state_dict.items()}
  out = {'token_embedder/embedding': sd['shared.weight']}
  rel = 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'
  out['encoder/relpos_bias/rel_embedding'] = sd[rel].T
  for i in range(num_layers):
    hf = f'encoder.block.{i}.layer.'
    t5x = f'encoder/layers_{i}/'
    out[t5x + 'pre_attention_layer_norm/scale'] = sd[hf + '0.layer_norm.weight']
    for a, b in (('q', 'query'), ('k', 'key'), ('v', 'value'), ('o', 'out')):
      weight = sd[hf + f'0.SelfAttention.{a}.weight']
      out[t5x + f'attention/{b}/kernel'] = weight.T
    out[t5x + 'pre_mlp_layer_norm/scale'] = sd[hf + '1.layer_norm.weight']
    for name in ('wi', 'wi_0', 'wi_1', 'wo'):
      key = hf + f'1.DenseReluDense.{name}.weight'
      if key in sd:
        out[t5x + f'mlp/{name}/kernel'] = sd[key].T
  out['encoder/encoder_norm/scale'] = sd['encoder.final_layer_norm.weight']
  return out


def fake_decoder(
  rng: np.random.Generator, emb: int, inner: int, mlp: int, heads: int, vocab: int
) -> Dict[str, np.ndarray]:
  """Decoder + logits weights of the right T5X names (to be dropped)."""
  p = 'decoder/layers_0/'
  shapes = {
    'decoder/relpos_bias/rel_embedding': (heads, 32),
    p + 'pre_self_attention_layer_norm/scale': (emb,),
    p + 'self_attention/query/kernel': (emb, inner),
    p + 'encoder_decoder_attention/key/kernel': (emb, inner),
    p + 'mlp/wo/kernel': (mlp, emb),
    'decoder/decoder_norm/scale': (emb,),
    'decoder/logits_dense/kernel': (emb, vocab),
  }
  return {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}


def _spec(rel_path: str, arr: np.ndarray, driver: str) -> dict:
  kvstore = {'driver': driver, 'path': rel_path}
  if driver == 'gcs':
    kvstore['bucket'] = 't5x-dummy-bucket'
  return {
    'driver': 'zarr',
    'dtype': arr.dtype.name,
    'kvstore': kvstore,
    'metadata': {
      'chunks': [max(1, d // 2) for d in arr.shape],
      'compressor': {'id': 'gzip', 'level': 1},
      'shape': list(arr.shape),
    },
  }


def write_legacy_checkpoint(
  ckpt_dir: str,
  target: Mapping[str, np.ndarray],
  *,
  inline_max_size: int = 64,
  driver: str = 'file',
  path_override: Mapping[str, str] = None,
) -> None:
  """Writes checkpoint_dir/checkpoint (+ zarr arrays) like T5X's Checkpointer.

  Arrays with more than `inline_max_size` elements go to TensorStore; the
  rest are inline. `path_override` maps a key to the spec path to store
  instead of the real one (to write malicious checkpoints).
  """
  os.makedirs(ckpt_dir, exist_ok=True)
  leaves = {}
  for key, arr in target.items():
    arr = np.asarray(arr)
    if arr.size <= inline_max_size:
      leaves[key] = arr
      continue
    rel = 'target.' + key.replace('/', '.')
    spec = _spec(rel, arr, driver)
    local = dict(spec, kvstore={'driver': 'file', 'path': os.path.join(ckpt_dir, rel)})
    store = ts.open(local, create=True, delete_existing=True).result()
    store.write(arr).result()
    if path_override and key in path_override:
      spec['kvstore']['path'] = path_override[key]
    leaves[key] = spec
  nested = traverse_util.unflatten_dict({tuple(k.split('/')): v for k, v in leaves.items()})
  contents = {
    'version': 3,
    'optimizer': {
      'target': nested,
      'state': {'step': np.asarray(1000, np.int32), 'param_states': {}},
    },
  }
  with open(os.path.join(ckpt_dir, 'checkpoint'), 'wb') as f:
    f.write(serialization.msgpack_serialize(contents))


def write_orbax_checkpoint(ckpt_dir: str, target: Mapping[str, np.ndarray]) -> None:
  """Writes checkpoint_dir/state as an Orbax PyTree, as newer T5X does."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  nested = traverse_util.unflatten_dict(
    {tuple(k.split('/')): np.asarray(v) for k, v in target.items()}
  )
  tree = {'target': nested, 'state': {'step': np.asarray(1000, np.int32)}}
  ocp.PyTreeCheckpointer().save(os.path.join(os.path.abspath(ckpt_dir), 'state'), tree)
