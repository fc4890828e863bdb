"""The text side outside the T5 encoder, as a small documented file pair for exports:

  text_projection.safetensors  'weight' [out_dim, d_model] and 'bias' [out_dim]
                               (torch.nn.Linear layout: y = x @ weight.T + bias)
  text_head.json               pooling, normalisation, tokenisation and the logit scale

embedding = l2_normalize(Linear(pool(encoder(ids)))), where pool is the mean of the final hidden
states over non-PAD tokens ('mean'), the first token ('first') or the last non-PAD token
('last'), and ids are SentencePiece ids + EOS (1), at most max_length with EOS last, PAD 0.
"""

import json
import os

import numpy as np

PROJECTION_FILE = 'text_projection.safetensors'
HEAD_FILE = 'text_head.json'


def write(out_dir: str, model, params, text_length: int, logit_scale: float) -> dict:
  """Writes both files from a TwoTower and its params; returns the JSON's content."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top

  head = params['txt']['head']
  save_file(
    {
      'weight': np.ascontiguousarray(np.asarray(head['kernel'], np.float32).T),
      'bias': np.asarray(head['bias'], np.float32),
    },
    os.path.join(out_dir, PROJECTION_FILE),
  )
  info = {
    'pooling': model.pooling,
    'projection': PROJECTION_FILE,
    'projection_layout': 'torch.nn.Linear: y = x @ weight.T + bias',
    'in_features': int(np.asarray(head['kernel']).shape[0]),
    'out_features': int(model.out_dim),
    'normalize': 'l2',
    'max_length': int(text_length),
    'eos_id': 1,
    'pad_id': 0,
    'truncation': 'ids + EOS, cut to max_length with EOS kept last (sticky EOS)',
    'logit_scale': float(logit_scale),
  }
  with open(os.path.join(out_dir, HEAD_FILE), 'w', encoding='utf-8') as f:
    json.dump(info, f, indent=1)
  return info
