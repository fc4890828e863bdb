"""MODEL_DIR/mlit_model.json: what a trained run needs to be used, written by the trainer.

Everything `mlit.load` needs that config.gin cannot give from another working directory (it
may name relative paths and gin files found only through search paths):
  two_tower      the TwoTower's arguments (T5Config fields under 'text')
  text_length    tokens per text (sticky EOS), from the task's feature lengths
  vocabulary     {'file': 'vocabulary.model' (a copy of the task's SentencePiece model, kept
                 in MODEL_DIR), 'sha256', 'source'} or null (a task without one)
  image          how inference sees pixels, or null: {'route': 'live' (the tower is in the
                 checkpoint) | 'locked' (run the locked tower that made the pre-computed
                 embeddings), 'kind' (mlit.inference.image_towers), 'config', 'size',
                 'range': [-1, 1], 'checkpoint': {'path' (absolute), 'relative_path' (from
                 MODEL_DIR: a run root moved or copied whole finds it there), 'sha256'} | null}
"""

import dataclasses
import json
import logging
import os
from typing import Any, Mapping, Optional

from mlit import run_layout
from tasks import file_io
from tasks.user_error import UserError

FILENAME = 'mlit_model.json'
VOCABULARY_FILE = 'vocabulary.model'
FORMAT = 1


def is_run_config(path: str) -> bool:
  """Whether `path` is a run's config.gin: the one the trainer wrote, beside mlit_model.json."""
  folder = os.path.dirname(os.path.abspath(path))
  return os.path.basename(path) == run_layout.CONFIG and os.path.isfile(
    os.path.join(folder, FILENAME)
  )


def _text_config(config) -> dict:
  out = dataclasses.asdict(config)
  out['dtype'] = str(out['dtype'])
  out['mlp_activations'] = list(out['mlp_activations'])
  return out


def _vocabulary(task_name: str, text_key: str, model_dir: str) -> Optional[dict]:
  import seqio  # pylint: disable=g-import-not-at-top

  vocab = seqio.get_mixture_or_task(task_name).output_features[text_key].vocabulary
  proto = getattr(vocab, 'sp_model', None)
  if not proto:
    return None  # e.g. PassThroughVocabulary: the task gives ids, no text
  path = os.path.join(model_dir, VOCABULARY_FILE)
  with file_io.atomic_path(path) as tmp, open(tmp, 'wb') as f:
    f.write(proto)
  return {
    'file': VOCABULARY_FILE,
    'sha256': file_io.file_sha256(path),
    'source': str(getattr(vocab, 'sentencepiece_model_file', '')),
  }


def image_record(model, info, image_checkpoint_path, inference_image, model_dir) -> Optional[dict]:
  """mlit_model.json's `image`: the live tower, the locked tower that made the pre-computed
  embeddings (train.inference_image, sha256 and paths of its weights), or None. An
  inference_image it cannot record is a UserError (the trainer checks it before any work)."""
  if model.image is not None:
    if inference_image is not None:
      logging.warning('train.inference_image is not used: the model tunes its own image tower')
    size = info.shapes['image'][0]
    return {
      'route': 'live',
      'kind': model.image_kind,
      'config': dict(model.image),
      'size': int(size),
      'range': [-1, 1],
      'checkpoint': None,
    }
  if inference_image is None:
    return None
  missing = {'kind', 'config', 'size'} - set(inference_image)
  if missing:
    raise UserError(f'train.inference_image lacks {sorted(missing)} (needs kind, config, size)')
  if not image_checkpoint_path:
    raise UserError('train.inference_image needs IMAGE_CHECKPOINT_PATH (the locked tower weights)')
  path = os.path.abspath(image_checkpoint_path)
  checkpoint = {'path': path, 'sha256': file_io.file_sha256(path)}
  if '://' not in model_dir:
    checkpoint['relative_path'] = os.path.relpath(path, os.path.abspath(model_dir))
  return {
    'route': 'locked',
    'kind': inference_image['kind'],
    'config': dict(inference_image['config']),
    'size': int(inference_image['size']),
    'range': [-1, 1],
    'checkpoint': checkpoint,
  }


def write(
  model_dir: str,
  model,
  task_feature_lengths: Mapping[str, int],
  task_name: str,
  info,
  image_checkpoint_path: Optional[str] = None,
  inference_image: Optional[Mapping[str, Any]] = None,
) -> str:
  """Writes MODEL_DIR/mlit_model.json (and the vocabulary copy); returns the JSON's path."""
  # The task's feature to read the vocabulary from; the length is what the model is fed (a
  # per-batch YFCC signal mode feeds 'text' from title/description/tags features).
  text_key = next(
    k for k in ('text', *info.text_keys, *task_feature_lengths) if k in task_feature_lengths
  )
  feed_key = 'text' if 'text' in info.shapes else info.text_keys[0]
  spec = {
    'format': FORMAT,
    'task': task_name,
    'two_tower': {
      'text': _text_config(model.text),
      'out_dim': model.out_dim,
      'pooling': model.pooling,
      'image': dict(model.image) if model.image is not None else None,
      'image_kind': model.image_kind,
      'image_head': model.image_head,
      'temperature_init': model.temperature_init,
      'bias_init': model.bias_init,
    },
    'text_length': int(info.shapes[feed_key][0]),
    'vocabulary': _vocabulary(task_name, text_key, model_dir),
    'image': image_record(model, info, image_checkpoint_path, inference_image, model_dir),
  }
  path = os.path.join(model_dir, FILENAME)
  text = json.dumps(spec, indent=1, default=_json_default)
  with file_io.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    f.write(text)
  return path


def _json_default(value):
  if hasattr(value, 'tolist'):
    return value.tolist()
  if isinstance(value, tuple):
    return list(value)
  raise TypeError(f'{FILENAME}: cannot write {type(value).__name__} {value!r}')


def find_model_dir(path: str) -> str:
  """The MODEL_DIR of `path`: MODEL_DIR itself, a run root holding train/ (as `mlit demo`
  makes), or a checkpoints/ or checkpoints/<step> directory inside MODEL_DIR."""
  path = os.path.abspath(os.fspath(path))
  if not os.path.exists(path):
    raise UserError(f'{path}: no such run directory')
  for candidate in (
    path,
    os.path.join(path, 'train'),
    os.path.dirname(path),
    os.path.dirname(os.path.dirname(path)),
  ):
    if os.path.isfile(os.path.join(candidate, FILENAME)):
      return candidate
  raise UserError(
    f'{path}: not a trained mlit run: no {FILENAME} in it or its train/ directory '
    '(mlit train writes it when a run starts)'
  )


def read(model_dir: str) -> dict:
  path = os.path.join(model_dir, FILENAME)
  try:
    with open(path, encoding='utf-8') as f:
      spec = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise UserError(f'{path}: unreadable ({e})') from e
  if spec.get('format') != FORMAT:
    raise UserError(f'{path}: format {spec.get("format")!r}, this mlit reads format {FORMAT}')
  return spec


def vocabulary_path(model_dir: str, spec: Mapping[str, Any]) -> str:
  vocab = spec.get('vocabulary')
  if vocab is None:
    raise UserError(
      f'{model_dir}: the run was tuned on token ids (task {spec.get("task")!r} has no '
      'SentencePiece vocabulary), so it cannot encode text'
    )
  return _checked(os.path.join(model_dir, vocab['file']), vocab['sha256'])


def image_checkpoint_path(model_dir: str, spec: Mapping[str, Any]) -> str:
  """The locked tower's weights: at its place relative to MODEL_DIR (the run root moved or
  copied whole) or at the recorded absolute path, whichever holds the recorded sha256."""
  ckpt = spec['image']['checkpoint']
  relative = ckpt.get('relative_path')
  if not relative:
    return _checked(ckpt['path'], ckpt['sha256'])
  moved = os.path.normpath(os.path.join(model_dir, relative))
  found = [p for p in dict.fromkeys((ckpt['path'], moved)) if os.path.isfile(p)]
  if not found:
    raise UserError(
      f'{ckpt["path"]}: file of the run is missing (recorded in {FILENAME}), and so is {moved}, '
      'its place relative to MODEL_DIR'
    )
  if len(found) == 1 or os.path.samefile(*found):
    return _checked(found[0], ckpt['sha256'])
  # Both there: the run's own copy first (a run copied whole stays self-contained), then the
  # recorded place; whichever holds the weights the run was trained with.
  for path in (moved, ckpt['path']):
    if file_io.file_sha256(path) == ckpt['sha256']:
      return path
  raise UserError(
    f'{moved} and {ckpt["path"]}: neither holds the locked tower the run was trained with '
    f'(sha256 {ckpt["sha256"][:12]}..., {FILENAME})'
  )


def _checked(path: str, sha256: str) -> str:
  if not os.path.isfile(path):
    raise UserError(f'{path}: file of the run is missing (recorded in {FILENAME})')
  got = file_io.file_sha256(path)
  if got != sha256:
    raise UserError(f"{path}: sha256 {got[:12]}... differs from the run's {sha256[:12]}...")
  return path


def build_model(spec: Mapping[str, Any]):
  """The TwoTower the spec describes."""
  from mlit.models import text_tower, two_tower  # pylint: disable=g-import-not-at-top

  args = dict(spec['two_tower'])
  args['text'] = text_tower.T5Config(**args['text'])
  return two_tower.TwoTower(**args)
