"""Reads T5X checkpoints (legacy msgpack + TensorStore, or Orbax) without t5x.

Legacy layout (T5X `Checkpointer`, version 3): `checkpoint_<step>/checkpoint`
is a msgpack file {'version': 3, 'optimizer': {'target': params, 'state': ...}}
(flax.serialization encoding: small arrays inline as msgpack ext values).
Large leaves are replaced by TensorStore spec dicts whose kvstore path is
relative to the checkpoint directory (`target.encoder.layers_0.mlp.wo.kernel`,
a zarr array); the kvstore driver may be 'file', 'gfile' or 'gcs' (the latter
with a placeholder bucket). We always read those arrays from the local
directory, and refuse a path that leaves it.

Orbax layout (newer T5X): `checkpoint_<step>/state/` is an Orbax PyTree
checkpoint of the same {'target': ..., 'state': ...} tree.

Keys returned are '/'-joined and relative to `target` (model parameters), e.g.
'encoder/layers_0/attention/query/kernel'.
"""

import dataclasses
import os
import re
import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

import flax.linen as nn
import jax
import numpy as np
from flax import serialization, traverse_util

from mlit.checkpoints import orbax_read
from tasks.user_error import UserError

_SPEC_KEYS = frozenset({'driver', 'kvstore'})
_TEXT_PREFIXES = ('token_embedder/', 'encoder/')


class CheckpointError(UserError):
  """A T5X checkpoint is malformed, unsafe, or does not fit the model."""


def _is_ts_spec(value: Any) -> bool:
  return isinstance(value, dict) and _SPEC_KEYS <= set(value)


def _flatten(tree: Mapping[str, Any]) -> Dict[str, Any]:
  flat = traverse_util.flatten_dict(
    tree, is_leaf=lambda _, v: not isinstance(v, dict) or _is_ts_spec(v)
  )
  return {'/'.join(str(k) for k in key): v for key, v in flat.items()}


def _inside(root: str, path: str) -> bool:
  return os.path.commonpath([root, path]) == root


def _check_links_inside(root: str, array_dir: str, where: str) -> None:
  """Refuses an array whose chunk files or folders are symlinks out of the checkpoint."""
  for parent, dirs, files in os.walk(array_dir):
    for name in dirs + files:
      path = os.path.join(parent, name)
      if os.path.islink(path) and not _inside(root, os.path.realpath(path)):
        raise CheckpointError(
          f'{where}: {path} is a link to {os.path.realpath(path)}, outside the checkpoint '
          'directory; refusing to read it'
        )


def _local_spec(ckpt_dir: str, key: str, spec: Mapping[str, Any]) -> dict:
  """Returns a TensorStore spec reading `spec`'s array from inside ckpt_dir."""
  spec = dict(spec)
  kvstore = spec.get('kvstore')
  top_path = spec.pop('path', None)  # older tensorstore: the path at the top level
  if isinstance(kvstore, dict):
    driver = kvstore.get('driver')
    kv_path = kvstore.get('path')
    # A top-level path is relative to the kvstore's (which older writers left out).
    rel = '/'.join(p for p in (kv_path, top_path) if p) if kv_path or top_path else None
  else:  # tensorstore<0.1.14: a driver-implied kvstore
    driver, rel = kvstore, top_path
  if driver not in ('file', 'gfile', 'gcs'):
    raise CheckpointError(
      f'{ckpt_dir}: leaf {key!r}: unsupported TensorStore kvstore driver {driver!r}'
    )
  if not isinstance(rel, str) or not rel:
    raise CheckpointError(f'{ckpt_dir}: leaf {key!r}: TensorStore spec has no kvstore path')
  root = os.path.realpath(ckpt_dir)
  target = os.path.realpath(os.path.join(root, rel))
  if '://' in rel or not _inside(root, target):
    raise CheckpointError(
      f'{ckpt_dir}: leaf {key!r}: TensorStore path {rel!r} points outside '
      f'the checkpoint directory; refusing to read it'
    )
  _check_links_inside(root, target, f'{ckpt_dir}: leaf {key!r}')
  spec['kvstore'] = {'driver': 'file', 'path': target}
  return spec


def _read_ts(ckpt_dir: str, key: str, spec: Mapping[str, Any]) -> np.ndarray:
  import tensorstore as ts  # pylint: disable=g-import-not-at-top

  local = _local_spec(ckpt_dir, key, spec)
  try:
    store = ts.open(local, open=True, read=True).result()
    return np.asarray(store.read().result())
  except Exception as e:  # tensorstore raises ValueError/OSError variants
    raise CheckpointError(
      f'{ckpt_dir}: leaf {key!r}: cannot read TensorStore array {local["kvstore"]["path"]}: {e}'
    ) from e


def _as_array(ckpt_dir: str, key: str, value: Any) -> np.ndarray:
  if isinstance(value, (np.ndarray, np.generic, int, float, bool)):
    return np.asarray(value)
  raise CheckpointError(
    f'{ckpt_dir}: leaf {key!r}: expected an array or a TensorStore spec, got {type(value).__name__}'
  )


def _read_legacy(ckpt_dir: str, include: Optional[re.Pattern], skipped: list):
  path = os.path.join(ckpt_dir, 'checkpoint')
  with open(path, 'rb') as f:
    try:
      contents = serialization.msgpack_restore(f.read())
    except Exception as e:  # msgpack raises several unrelated types
      raise CheckpointError(f'{path}: not a msgpack T5X checkpoint: {e}') from e
  if not isinstance(contents, dict):
    raise CheckpointError(f'{path}: top level is {type(contents).__name__}, expected a dict')
  version = contents.get('version')
  if version is not None and (
    isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version not in (2, 3)
  ):
    raise CheckpointError(f'{path}: unsupported T5X checkpoint version {version!r}')
  state = contents.get('optimizer', contents)
  if not isinstance(state, dict) or 'target' not in state:
    raise CheckpointError(f'{path}: no optimizer/target entry (top-level keys: {sorted(contents)})')
  if not isinstance(state['target'], dict):
    raise CheckpointError(
      f'{path}: optimizer/target is {type(state["target"]).__name__}, not a dict'
    )
  out = {}
  for key, value in _flatten(state['target']).items():
    if include is not None and not include.search(key):
      skipped.append(key)
      continue
    if _is_ts_spec(value):
      arr = _read_ts(ckpt_dir, 'target/' + key, value)
    else:
      arr = _as_array(path, 'target/' + key, value)
    if version == 2 and arr.dtype == np.uint16:
      # Version 2 stored bfloat16 as its raw uint16 bits.
      arr = arr.view(jax.numpy.bfloat16)
    out[key] = arr
  return out


def _key_name(entry: Any) -> str:
  for attr in ('key', 'idx', 'name'):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def _read_orbax(item_dir: str, include: Optional[re.Pattern], skipped: list):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from etils import epath  # pylint: disable=g-import-not-at-top

  ckptr = ocp.PyTreeCheckpointer()
  # The handler's own metadata read: the checkpointer's logs a failed read (a damaged index) as
  # a warning and returns no tree, which read as "no `target` entry".
  meta = orbax_read.checked(
    lambda: ocp.PyTreeCheckpointHandler().metadata(epath.Path(item_dir)), item_dir, CheckpointError
  )
  tree = getattr(meta, 'tree', meta)
  if not isinstance(tree, Mapping) or 'target' not in tree:
    ckpt_dir = os.path.dirname(item_dir) if os.path.basename(item_dir) == 'state' else item_dir
    raise CheckpointError(
      f'{item_dir}: Orbax tree has no `target` entry, so not a T5X checkpoint'
      f'{_what_it_holds(ckpt_dir)}'
    )

  def wanted(path):
    names = [_key_name(p) for p in path]
    if names[0] != 'target':
      return False
    if include is None or include.search('/'.join(names[1:])):
      return True
    skipped.append('/'.join(names[1:]))
    return False

  keep = {}
  item = jax.tree_util.tree_map_with_path(
    lambda p, m: m if keep.setdefault(p, wanted(p)) else ocp.PLACEHOLDER, dict(tree)
  )
  restore_args = jax.tree_util.tree_map_with_path(
    lambda p, m: ocp.RestoreArgs(restore_type=np.ndarray) if keep[p] else ocp.PLACEHOLDER,
    dict(tree),
  )
  restored = orbax_read.checked(
    lambda: ckptr.restore(
      item_dir, args=ocp.args.PyTreeRestore(item=item, restore_args=restore_args)
    ),
    item_dir,
    CheckpointError,
  )
  flat = _flatten(restored['target'])
  return {k: np.asarray(v) for k, v in flat.items() if v is not ocp.PLACEHOLDER}


def read_t5x_checkpoint(
  path: str, *, include: Optional[str] = None, skipped: Optional[list] = None
) -> Dict[str, np.ndarray]:
  """Reads the model parameters (`target`) of a T5X checkpoint.

  Args:
    path: a `checkpoint_<step>` directory (legacy `checkpoint` msgpack file or
      Orbax `state/` item), the legacy `checkpoint` file itself, or an Orbax
      PyTree item directory.
    include: optional regex; only keys it matches (re.search) are read, which
      saves reading a decoder that will be dropped anyway.
    skipped: a list that gets the keys `include` left out.

  Returns:
    {'encoder/layers_0/attention/query/kernel': np.ndarray, ...}.
  """
  path = os.fspath(path)
  pattern = re.compile(include) if include is not None else None
  skipped = [] if skipped is None else skipped
  if os.path.isfile(path) and os.path.basename(path) == 'checkpoint':
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    what = 'a file, not a' if os.path.exists(path) else 'no such'
    raise CheckpointError(f'{path}: {what} T5X checkpoint directory')
  if os.path.isdir(os.path.join(path, 'state')):
    # Orbax takes absolute paths only; the legacy reader any.
    return _read_orbax(os.path.abspath(os.path.join(path, 'state')), pattern, skipped)
  if os.path.isfile(os.path.join(path, 'checkpoint')) and not os.path.exists(
    os.path.join(path, '_METADATA')
  ):
    return _read_legacy(path, pattern, skipped)
  if os.path.exists(os.path.join(path, '_METADATA')) or os.path.exists(
    os.path.join(path, 'manifest.ocdbt')
  ):
    return _read_orbax(os.path.abspath(path), pattern, skipped)
  raise CheckpointError(
    f'{path}: neither a legacy T5X checkpoint (no `checkpoint` file) nor an Orbax one (no '
    f'`state/`){_what_it_holds(path)}'
  )


def _what_it_holds(path: str) -> str:
  """A hint for a directory that holds checkpoints or is an mlit run."""
  inner = sorted(n for n in os.listdir(path) if re.fullmatch(r'checkpoint_\d+', n))
  if inner:
    return f'; it holds {", ".join(inner[-3:])}: give {os.path.join(path, inner[-1])}'
  if (
    os.path.isdir(os.path.join(path, 'checkpoints'))
    or os.path.basename(os.path.dirname(os.path.abspath(path))) == 'checkpoints'
  ):
    return (
      '; this is an mlit run (or its checkpoint): continue it with CONTINUE_FROM '
      '(train.init_from_run), or export its text tower with `mlit export --format t5x`'
    )
  return ''


@dataclasses.dataclass
class LoadReport:
  """What text_tower_params_from_t5x did with every key."""

  loaded: List[str] = dataclasses.field(default_factory=list)
  missing: List[str] = dataclasses.field(default_factory=list)
  unused: List[str] = dataclasses.field(default_factory=list)
  dropped: List[str] = dataclasses.field(default_factory=list)
  shape_mismatch: List[str] = dataclasses.field(default_factory=list)
  fresh: List[str] = dataclasses.field(default_factory=list)

  def __str__(self):
    parts = [
      f'loaded {len(self.loaded)}',
      f'dropped {len(self.dropped)} (decoder etc.)',
      f'kept from init {self.fresh}',
    ]
    for name in ('missing', 'unused', 'shape_mismatch'):
      if getattr(self, name):
        parts.append(f'{name}: {getattr(self, name)}')
    return '; '.join(parts)


def text_tower_params_from_t5x(
  flat: Mapping[str, np.ndarray],
  init_txt_params: Any,
  *,
  strict: bool = True,
  source: Optional[str] = None,
) -> Tuple[Any, LoadReport]:
  """Puts T5X token_embedder + encoder weights into a TextTower param tree.

  Args:
    flat: read_t5x_checkpoint output (a leading 'target/' is accepted too).
    init_txt_params: the TextTower's initial params (boxed or not); gives the
      expected keys, shapes and dtypes, and the values of keys a T5X
      checkpoint does not have (the linear head).
    strict: raise on missing, unused or mis-shaped T5 keys; otherwise only
      report them and keep the initial values.
    source: what the error names (the checkpoint's path).

  Returns:
    (params with the same structure and boxes as init_txt_params, LoadReport).
  """
  ckpt = {}
  for key, value in flat.items():
    ckpt[key[len('target/') :] if key.startswith('target/') else key] = value
  is_box = lambda x: isinstance(x, nn.meta.AxisMetadata)
  init_flat = traverse_util.flatten_dict(init_txt_params, is_leaf=lambda _, v: is_box(v), sep='/')
  report = LoadReport()
  new_flat = {}
  for key, init in init_flat.items():
    value = init.unbox() if is_box(init) else init
    if not key.startswith(_TEXT_PREFIXES):
      report.fresh.append(key)
    elif key not in ckpt:
      report.missing.append(key)
    elif tuple(ckpt[key].shape) != tuple(value.shape):
      report.shape_mismatch.append(
        f'{key}: checkpoint {tuple(ckpt[key].shape)} vs model {tuple(value.shape)}'
      )
    else:
      value = jax.numpy.asarray(ckpt[key], dtype=value.dtype)
      report.loaded.append(key)
    new_flat[key] = init.replace_boxed(value) if is_box(init) else value
  for key in sorted(ckpt):
    if key.startswith(_TEXT_PREFIXES):
      if key not in init_flat:
        report.unused.append(key)
    else:
      report.dropped.append(key)
  for name in ('loaded', 'missing', 'fresh', 'shape_mismatch'):
    getattr(report, name).sort()
  if strict and (report.missing or report.unused or report.shape_mismatch):
    where = f'{source}: ' if source else ''
    raise CheckpointError(where + _mismatch_line(report, ckpt, init_flat))
  if report.missing or report.unused or report.shape_mismatch:
    print(f'warning: non-strict T5X load keeps init values: {report}', file=sys.stderr)
  return traverse_util.unflatten_dict(new_flat, sep='/'), report


def _layers(keys) -> int:
  return len({m.group(1) for k in keys if (m := re.match(r'encoder/layers_(\d+)/', k))})


def _listed(name: str, keys: List[str]) -> str:
  return f'{name} {keys[:3]}' + (f' and {len(keys) - 3} more' if len(keys) > 3 else '')


def _mismatch_line(report: LoadReport, ckpt: Mapping[str, Any], init_flat: Mapping[str, Any]):
  """What does not fit, in one line: the settings that differ first, then a few keys of each kind."""
  parts = []
  have, want = _layers(ckpt), _layers(init_flat)
  if have != want:
    parts.append(
      f'the checkpoint has {have} encoder layers, the model {want} '
      '(text_tower.T5Config.num_encoder_layers)'
    )
  embedding = next((m for m in report.shape_mismatch if m.startswith('token_embedder/')), None)
  if embedding:
    parts.append(f'{embedding} (text_tower.T5Config.vocab_size, emb_dim)')
  if report.shape_mismatch:
    parts.append(_listed('shapes differ:', report.shape_mismatch))
  for what, keys in (('missing keys', report.missing), ('unused keys', report.unused)):
    # The keys of the layers one side lacks are said by the layer counts above.
    if keys and not (have != want and _only_layers(keys, have, want)):
      parts.append(_listed(what, keys))
  return 'T5X checkpoint does not match the text tower: ' + '; '.join(parts)


def _only_layers(keys: List[str], have: int, want: int) -> bool:
  """Whether these keys are all in the layers one side has and the other lacks."""
  return all(
    (m := re.match(r'encoder/layers_(\d+)/', k)) and int(m.group(1)) >= min(have, want)
    for k in keys
  )


def load_text_tower_from_t5x(
  path: str, init_txt_params: Any, *, strict: bool = True
) -> Tuple[Any, LoadReport]:
  """Reads only the text-tower part of a T5X checkpoint and fits it in; the report's `dropped`
  names the keys not read (the decoder, ...)."""
  skipped = []
  flat = read_t5x_checkpoint(path, include=r'^(token_embedder|encoder)/', skipped=skipped)
  params, report = text_tower_params_from_t5x(flat, init_txt_params, strict=strict, source=path)
  report.dropped = sorted(set(report.dropped) | set(skipped))
  return params, report
