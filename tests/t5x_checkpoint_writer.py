"""Test helper: T5X-format checkpoints from NumPy weights.

The legacy writer is mlit's own (mlit.checkpoints.t5x_writer, independent of the reader);
this module adds an Orbax writer, fake decoder weights, and converts `transformers` T5 encoder
state dicts to T5X names.
"""

import os
from typing import Dict, Mapping

import numpy as np
from flax import traverse_util

from mlit.checkpoints.t5x_writer import write_legacy_checkpoint  # noqa: F401


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


def write_orbax_checkpoint(ckpt_dir: str, target: Mapping[str, np.ndarray]) -> None:
  """Writes checkpoint_dir/state as an Orbax PyTree, as newer T5X does."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  nested = traverse_util.unflatten_dict(
    {tuple(k.split('/')): np.asarray(v) for k, v in target.items()}
  )
  tree = {'target': nested, 'state': {'step': np.asarray(1000, np.int32)}}
  ocp.PyTreeCheckpointer().save(os.path.join(os.path.abspath(ckpt_dir), 'state'), tree)
