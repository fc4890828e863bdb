"""An mlit training checkpoint with its token embedding grown for an extended vocabulary.

Reads the latest checkpoint of an mlit run (mlit.checkpoints.run_state's layout: MODEL_DIR or its
checkpoints/), grows `txt/token_embedder/embedding` (old rows bit for bit, new rows from
vocab_extension.grow_embedding) and the optimizer's moments of that table (zero rows for the new
pieces), and writes OUT/checkpoints/<step>/ with the run's gin config, so that
`train.init_from_run = OUT` (CONTINUE_FROM) continues tuning from it and the evaluation reads it
like any run. OUT/mlit_model.json (write_model_spec) is the base run's with the grown vocabulary,
so `mlit.load(OUT)`, `mlit predict` and `mlit eval` use the grown model as they use a run.
"""

import copy
import json
import os
import shutil

import numpy as np

from mlit import run_layout
from mlit.checkpoints import run_state
from mlit.inference import run_spec
from mlit.language import vocab_extension
from tasks import file_io

EMBEDDING_PATH = ('txt', 'token_embedder', 'embedding')


def is_mlit_run(path: str) -> bool:
  """MODEL_DIR of an mlit run, or its checkpoints/ directory (numbered steps with state/)."""
  if os.path.isdir(run_layout.checkpoints(path)):
    return True
  return os.path.isdir(path) and any(
    d.isdigit() and os.path.isdir(os.path.join(path, d, 'state')) for d in os.listdir(path)
  )


def _read_json_item(directory: str, step: int, item: str) -> dict:
  """A JSON item of a checkpoint ('config': the gin text; 'data': the data position and the batch
  counts); {} when there is none."""
  for name in ('metadata', f'{item}.json', ''):  # orbax's JSON item file name varies by version
    path = os.path.join(directory, str(step), item, name)
    if os.path.isfile(path):
      with open(path, encoding='utf-8') as f:
        found = json.load(f)
      return found if isinstance(found, dict) else {}
  return {}


def _grow_rows(tree, old_rows: int, new_rows: int, path=()):
  """Every array under a key path ending with EMBEDDING_PATH[1:] with old_rows rows -> zero-padded."""
  if isinstance(tree, dict):
    return {k: _grow_rows(v, old_rows, new_rows, path + (k,)) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return type(tree)(
      _grow_rows(v, old_rows, new_rows, path + (str(i),)) for i, v in enumerate(tree)
    )
  a = np.asarray(tree)
  if path[-2:] == EMBEDDING_PATH[1:] and a.ndim == 2 and a.shape[0] == old_rows:
    out = np.zeros((new_rows, a.shape[1]), a.dtype)
    out[:old_rows] = a
    return out
  return tree


def grow_run(run: str, extension: vocab_extension.Extension, out_dir: str, pad_to: int) -> dict:
  """Writes the grown checkpoint under out_dir; returns {'checkpoint', 'step', 'rows': [old, new]}."""
  directory = run_state.checkpoints_dir(run)
  _, step = run_state.read_params(directory)
  state = run_state.read_item(directory, step, 'state')
  params = state['params']
  node = params
  for k in EMBEDDING_PATH[:-1]:
    node = node.get(k, {}) if isinstance(node, dict) else {}
  if EMBEDDING_PATH[-1] not in node:
    raise ValueError(f'{directory}/{step}: no {"/".join(EMBEDDING_PATH)} in the checkpoint')
  emb = np.asarray(node[EMBEDDING_PATH[-1]])
  grown = vocab_extension.grow_embedding(
    emb, extension.old_vocab_size, extension.tokenisations, pad_to
  )
  node[EMBEDDING_PATH[-1]] = grown
  if 'opt_state' in state:
    state['opt_state'] = _grow_rows(state['opt_state'], emb.shape[0], grown.shape[0])
  out = run_layout.checkpoints(os.path.abspath(out_dir))
  if os.path.exists(out):
    raise FileExistsError(f'{out} exists; choose another --out')
  ckpt = run_state.Checkpoints(out, keep=None, async_save=False)
  ckpt.save(
    step,
    state,
    # The base run's data item: its batch counts go on with the step they count.
    data_state={**_read_json_item(directory, step, 'data'), 'batches_consumed': step},
    config_text=_read_json_item(directory, step, 'config').get('gin', ''),
    force=True,
  )
  ckpt.close()
  # The grown checkpoint carries the base run's tuning: its per-language counts go with it, so
  # evaluations of it and of the run continuing it count what the model was tuned on.
  base_stats = run_layout.language_stats(run_layout.model_dir_of(directory))
  if os.path.isfile(base_stats):
    shutil.copyfile(base_stats, run_layout.language_stats(out_dir))
  return {'checkpoint': out, 'step': step, 'rows': [int(emb.shape[0]), int(grown.shape[0])]}


def write_model_spec(base_model_dir: str, out_dir: str, vocabulary: str, rows: int) -> str | None:
  """OUT/mlit_model.json: the base run's (run_spec), with `vocabulary` (a file in out_dir) and the
  grown embedding's `rows`; the locked tower's place relative to OUT. None when the base run has
  none (a run older than mlit_model.json): then the grown model is evaluated as the base run is."""
  if not os.path.isfile(os.path.join(base_model_dir, run_spec.FILENAME)):
    return None
  spec = copy.deepcopy(run_spec.read(base_model_dir))
  spec['two_tower']['text']['vocab_size'] = int(rows)
  base_vocab = spec.get('vocabulary') or {}
  spec['vocabulary'] = {
    'file': os.path.relpath(vocabulary, out_dir),
    'sha256': file_io.file_sha256(vocabulary),
    'source': os.path.abspath(os.path.join(base_model_dir, base_vocab.get('file', ''))),
  }
  checkpoint = (spec.get('image') or {}).get('checkpoint')
  if checkpoint and checkpoint.get('relative_path'):
    # The base run's file, found from OUT: the path relative to OUT, not to the base run.
    checkpoint['relative_path'] = os.path.relpath(
      run_spec.image_checkpoint_path(base_model_dir, spec), os.path.abspath(out_dir)
    )
  path = os.path.join(out_dir, run_spec.FILENAME)
  with file_io.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    json.dump(spec, f, indent=1)
  return path
