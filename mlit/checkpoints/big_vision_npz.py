"""Load and save big_vision / AugReg ViT `.npz` checkpoints.

A checkpoint is a zip of .npy arrays with flat keys 'a/b/c'. Files are read
with `allow_pickle=False` only: an object array is refused, never unpickled.
Older files (the original ViT and AugReg releases) use pre-Linen module
numbering and keep the position embedding inside `Transformer`; they are
converted to the names of `mlit.models.image_tower.ViT` before loading.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import re
import sys
import zipfile
import zlib
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import flax
import ml_dtypes
import numpy as np

from tasks import file_io
from tasks.user_error import UserError

_NUMERIC_KINDS = 'fiub'
_SUFFIX = re.compile(r'^(.*)_(\d+)$')


class CheckpointError(UserError):
  """A checkpoint file is unreadable, unsafe or does not fit the model."""


@dataclasses.dataclass
class LoadReport:
  """What happened to every name while loading one checkpoint."""

  path: str
  loaded: list[str] = dataclasses.field(default_factory=list)
  missing: list[str] = dataclasses.field(default_factory=list)
  unused: list[str] = dataclasses.field(default_factory=list)
  kept_init: list[str] = dataclasses.field(default_factory=list)
  dropped_head: list[str] = dataclasses.field(default_factory=list)
  renamed: dict[str, str] = dataclasses.field(default_factory=dict)
  resampled: dict[str, tuple] = dataclasses.field(default_factory=dict)
  unmatched_dont_load: list[str] = dataclasses.field(default_factory=list)

  @property
  def ok(self) -> bool:
    return not self.missing and not self.unused

  def summary(self) -> str:
    lines = [f'{self.path}: loaded {len(self.loaded)} arrays']
    for name in ('missing', 'unused', 'kept_init', 'dropped_head', 'unmatched_dont_load'):
      items = getattr(self, name)
      if items:
        lines.append(f'  {name} ({len(items)}): {", ".join(items)}')
    for k, (old, new) in self.resampled.items():
      lines.append(f'  resampled {k}: {old} -> {new}')
    if self.renamed:
      lines.append(f'  renamed {len(self.renamed)} old-style names')
    return '\n'.join(lines)


def read_npz(path: str) -> dict[str, np.ndarray]:
  """Reads every array of an .npz file without ever unpickling."""
  try:
    archive = np.load(path, allow_pickle=False)
  except FileNotFoundError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise CheckpointError(f'{path}: not a readable .npz checkpoint ({e})') from e
  if not isinstance(archive, np.lib.npyio.NpzFile):
    raise CheckpointError(f'{path}: holds a single array, not an .npz archive of named arrays.')
  flat = {}
  with archive:
    for key in archive.files:
      try:
        arr = archive[key]
      except ValueError as e:
        if 'allow_pickle' not in str(e):  # e.g. data shorter than its header says
          raise CheckpointError(f'{path}: array {key!r} is unreadable ({e})') from e
        # numpy refuses object arrays when allow_pickle=False; say so plainly.
        raise CheckpointError(
          f'{path}: array {key!r} is a pickled object array; checkpoints '
          'are never unpickled, re-save it as plain numeric arrays.'
        ) from e
      except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # bad CRC, cut data
        raise CheckpointError(f'{path}: array {key!r} is corrupt ({e})') from e
      if arr.dtype.kind == 'V' and arr.dtype.itemsize == 2:
        arr = arr.view(ml_dtypes.bfloat16)  # bfloat16 saved without its type.
      elif arr.dtype.kind not in _NUMERIC_KINDS:
        raise CheckpointError(f'{path}: array {key!r} has non-numeric dtype {arr.dtype}.')
      flat[key] = arr
  return flat


def _renumber_pre_linen(flat: Mapping[str, np.ndarray]) -> dict[str, str]:
  """Maps old names to Linen names: per-class counters instead of one shared.

  Pre-Linen modules were numbered by position among all siblings
  (LayerNorm_0, MultiHeadDotProductAttention_1, LayerNorm_2, MlpBlock_3);
  Linen numbers each class separately (LayerNorm_0/1, ..._0, MlpBlock_0). On
  names that already follow Linen this is the identity.
  """
  children = collections.defaultdict(set)
  for key in flat:
    parts = tuple(key.split('/'))
    for i in range(len(parts)):
      children[parts[:i]].add(parts[i])
  rename = {}
  for parent, names in children.items():
    by_class = collections.defaultdict(list)
    for name in names:
      m = _SUFFIX.match(name)
      if m:
        by_class[m.group(1)].append((int(m.group(2)), name))
    for cls, numbered in by_class.items():
      for new_i, (_, name) in enumerate(sorted(numbered)):
        rename[parent + (name,)] = f'{cls}_{new_i}'
  mapping = {}
  for key in flat:
    parts = key.split('/')
    new = [rename.get(tuple(parts[: i + 1]), p) for i, p in enumerate(parts)]
    mapping[key] = '/'.join(new)
  return mapping


def _square_side(n: int) -> Optional[int]:
  side = math.isqrt(n)
  return side if side * side == n else None


def fix_old_checkpoint(
  flat: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Converts old big_vision/AugReg layouts to the current names.

  Returns the converted dict and a map old name -> new name of what moved.
  """
  mapping = _renumber_pre_linen(flat)
  out = {mapping[k]: v for k, v in flat.items()}
  renamed = {k: v for k, v in mapping.items() if k != v}

  def move(old, new):
    if old in out:
      out[new] = out.pop(old)
      renamed[old] = new

  # The original ViT kept the posemb in a module, later ones in the encoder.
  move('Transformer/posembed_input/pos_embedding', 'pos_embedding')
  move('Transformer/pos_embedding', 'pos_embedding')
  # Inlined MAP head of early ViT-g runs.
  if 'probe' in out:
    for key in [
      k
      for k in out
      if k == 'probe'
      or k.startswith(('MlpBlock_0/', 'MultiHeadDotProductAttention_0/', 'LayerNorm_0/'))
    ]:
      move(key, f'MAPHead_0/{key}')
  # Scanned encoders stack the blocks along axis 0 under 'encoderblock/'.
  scanned = [k for k in out if k.startswith('Transformer/encoderblock/')]
  for key in scanned:
    stacked = out.pop(key)
    rest = key[len('Transformer/encoderblock/') :]
    for i in range(stacked.shape[0]):
      out[f'Transformer/encoderblock_{i}/{rest}'] = stacked[i]
    renamed[key] = f'Transformer/encoderblock_{{i}}/{rest}'
  # Old files prepended [cls] before adding the posemb, so the table has
  # grid+1 rows; fold the first row into the cls token (same function).
  pe = out.get('pos_embedding')
  if pe is not None and 'cls' in out and pe.ndim == 3:
    side = _square_side(pe.shape[1] - 1)
    if side and pe.shape[1] > 1:
      out['cls'] = (out['cls'].astype(np.float32) + pe[:, :1].astype(np.float32)).astype(
        out['cls'].dtype
      )
      out['pos_embedding'] = pe[:, 1:]
      renamed['pos_embedding[:, 0]'] = 'cls (added to it)'
  return out, renamed


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] linear interpolation, half-pixel centres, edge clamped."""
  src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
  src = np.clip(src, 0, n_in - 1)
  lo = np.floor(src).astype(int)
  hi = np.minimum(lo + 1, n_in - 1)
  frac = src - lo
  m = np.zeros((n_out, n_in), np.float64)
  np.add.at(m, (np.arange(n_out), lo), 1 - frac)
  np.add.at(m, (np.arange(n_out), hi), frac)
  return m


def resample_posemb(
  posemb: np.ndarray, old_grid: Sequence[int], new_grid: Sequence[int]
) -> np.ndarray:
  """Bilinearly resizes a [1, h*w, D] position embedding to a new grid."""
  (h0, w0), (h1, w1) = old_grid, new_grid
  if posemb.shape[1] != h0 * w0:
    raise CheckpointError(
      f'pos_embedding has {posemb.shape[1]} rows, not the {h0}x{w0} grid expected.'
    )
  grid = posemb.reshape(h0, w0, -1).astype(np.float64)
  grid = np.einsum('yh,hwc,xw->yxc', _interp_matrix(h0, h1), grid, _interp_matrix(w0, w1))
  return grid.reshape(1, h1 * w1, -1).astype(posemb.dtype)


def _target_grid(
  init_pe: np.ndarray, init_flat: Mapping[str, Any], image_size: Union[None, int, Sequence[int]]
) -> tuple[int, int]:
  n = init_pe.shape[1]
  if image_size is not None:
    hw = (image_size,) * 2 if isinstance(image_size, int) else image_size
    patch = init_flat['embedding/kernel'].shape[:2]
    grid = (hw[0] // patch[0], hw[1] // patch[1])
    if grid[0] * grid[1] != n:
      raise CheckpointError(
        f'image_size {image_size} with patch {patch} gives '
        f'a {grid} grid, but the model has {n} positions.'
      )
    return grid
  side = _square_side(n)
  if side is None:
    raise CheckpointError(
      f'The model has {n} positions, not a square grid: pass image_size=(H, W).'
    )
  return side, side


def _flatten(tree: Mapping[str, Any]) -> dict[str, Any]:
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep='/')


def load_big_vision_npz(
  path: str,
  init_params: Mapping[str, Any],
  *,
  dont_load: Iterable[str] = (),
  keep_head: bool = False,
  image_size: Union[None, int, Sequence[int]] = None,
  strict: bool = True,
  prefix: str = '',
) -> tuple[dict[str, Any], LoadReport]:
  """Loads a big_vision/AugReg ViT .npz into the structure of `init_params`.

  Args:
    path: the .npz file.
    init_params: initialised ViT params (the 'params' collection); they give
      names, shapes and dtypes, and the values of whatever is not loaded.
    dont_load: regexes (full match on 'a/b/c' names) of params to keep at init.
    keep_head: load the classifier `head`; by default it is dropped.
    image_size: the model's input size, needed to resample the position
      embedding to a non-square grid.
    strict: raise if any model param is missing or checkpoint array unused (the
      default: a missing array would silently stay at its random init). With
      strict=False the mismatch is printed to stderr and the load goes on.
    prefix: key prefix of the ViT inside the file, e.g. 'params/img/'.

  Returns:
    (params as a nested dict of numpy arrays, LoadReport)
  """
  path = os.fspath(path)
  report = LoadReport(path=path)
  ckpt = read_npz(path)
  if prefix:
    ckpt = {k[len(prefix) :]: v for k, v in ckpt.items() if k.startswith(prefix)}
    if not ckpt:
      raise CheckpointError(f'{path}: no array name starts with {prefix!r}.')
  ckpt, report.renamed = fix_old_checkpoint(ckpt)
  init = _flatten(init_params)
  patterns = []
  for p in dont_load:
    try:
      patterns.append(re.compile(p))
    except re.error as e:
      raise ValueError(f'dont_load pattern {p!r} is not a valid regex: {e}') from e
  used_patterns = set()

  params = {}
  for name, init_value in init.items():
    init_value = np.asarray(init_value)
    hits = [p.pattern for p in patterns if p.fullmatch(name)]
    used_patterns.update(hits)
    is_head = name.startswith('head/')
    if hits or (is_head and not keep_head) or name not in ckpt:
      params[name] = init_value
      if hits:
        report.kept_init.append(name)
      elif name not in ckpt and not (is_head and not keep_head):
        report.missing.append(name)
      continue
    value = ckpt[name]
    if name == 'pos_embedding' and value.shape != init_value.shape:
      if value.ndim != 3 or value.shape[2] != init_value.shape[2]:
        raise CheckpointError(
          f'{path}: pos_embedding shape {value.shape} does not fit the model {init_value.shape}.'
        )
      old_side = _square_side(value.shape[1])
      if old_side is None:
        raise CheckpointError(
          f'{path}: pos_embedding has {value.shape[1]} rows, not a square grid; cannot resample.'
        )
      new_grid = _target_grid(init_value, init, image_size)
      report.resampled[name] = (value.shape, init_value.shape)
      value = resample_posemb(value, (old_side, old_side), new_grid)
    if value.shape != init_value.shape:
      raise CheckpointError(
        f'{path}: {name!r} has shape {value.shape} in the '
        f'checkpoint but {init_value.shape} in the model.'
      )
    params[name] = value.astype(init_value.dtype)
    report.loaded.append(name)

  loaded = set(report.loaded)
  for name in ckpt:
    if name in loaded:
      continue
    if name.startswith('head/') and not keep_head:
      report.dropped_head.append(name)
    elif name not in init:
      report.unused.append(name)
  report.unmatched_dont_load = [p.pattern for p in patterns if p.pattern not in used_patterns]
  if strict and not report.ok:
    raise CheckpointError(
      f'{path}: checkpoint does not match the model (strict).\n'
      f'  missing in checkpoint: {report.missing}\n'
      f'  unused from checkpoint: {report.unused}'
    )
  if not report.ok:
    print(f'warning: non-strict load keeps init values. {report.summary()}', file=sys.stderr)
  return flax.traverse_util.unflatten_dict(params, sep='/'), report


def save_big_vision_npz(path: str, params: Mapping[str, Any]) -> None:
  """Writes ViT params as a big_vision .npz with flat 'a/b/c' names."""
  flat = {}
  for name, value in _flatten(params).items():
    arr = np.asarray(value)
    if arr.dtype == ml_dtypes.bfloat16:
      arr = arr.astype(np.float32)  # plain .npy has no bfloat16 type.
    if arr.dtype.kind not in _NUMERIC_KINDS:
      raise CheckpointError(f'{path}: param {name!r} has non-numeric dtype {arr.dtype}.')
    flat[name] = arr
  with file_io.atomic_path(path) as tmp, open(tmp, 'wb') as f:
    np.savez(f, **flat)
