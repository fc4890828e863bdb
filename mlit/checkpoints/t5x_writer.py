"""Writes T5X legacy checkpoints (what T5X's Checkpointer writes, version 3).

`checkpoint_dir/checkpoint` is a msgpack file {'version': 3, 'optimizer': {'target': params,
'state': {'step', 'param_states'}}} with small arrays inline; larger arrays are TensorStore zarr
arrays beside it, referenced by specs whose kvstore path is relative to the checkpoint
directory. mlit.checkpoints.t5x reads it back bit-exactly.
"""

import os
from typing import Mapping, Optional

import numpy as np
from flax import serialization, traverse_util


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
  step: int = 1000,
  inline_max_size: int = 64,
  driver: str = 'file',
  path_override: Optional[Mapping[str, str]] = None,
) -> None:
  """Writes ckpt_dir/checkpoint (+ zarr arrays) from flat '/'-joined target names.

  Arrays with more than `inline_max_size` elements go to TensorStore; the rest are inline.
  `driver` is the kvstore driver named in the specs ('file', 'gfile' or 'gcs', as T5X writes
  them; the arrays are local either way). `path_override` maps a key to the spec path stored
  instead of the real one (tests of the reader's refusal of paths outside the checkpoint).
  """
  import tensorstore as ts  # pylint: disable=g-import-not-at-top

  # TensorStore's file driver refuses '..' in a path ('Invalid file path'): '../out' must work.
  ckpt_dir = os.path.abspath(ckpt_dir)
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
      'state': {'step': np.asarray(step, np.int32), 'param_states': {}},
    },
  }
  with open(os.path.join(ckpt_dir, 'checkpoint'), 'wb') as f:
    f.write(serialization.msgpack_serialize(contents))
