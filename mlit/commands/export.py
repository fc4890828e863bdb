"""`mlit export`: a trained run's towers in other frameworks' formats.

  mlit export --model runs/demo --format transformers --out exported/hf
  mlit export --model runs/demo --format t5x --out exported/t5x
  mlit export --model runs/my_vit_run --format big_vision --out exported/vit

transformers: the text tower as an (M)T5EncoderModel directory with its tokenizer, text head,
pooling and a model card (mlit.inference.export_transformers); t5x: the text tower as a T5X
checkpoint with the text head and the vocabulary beside it (mlit.inference.export_t5x);
big_vision: the image tower as a ViT .npz with its config in image_tower.json
(mlit.inference.export_big_vision), for runs whose image tower is a ViT (the demo's
EfficientNet-Lite0 is not one: that run says so and exits 2).

--out is a new or empty directory, or an earlier export of the same --format, which is replaced
whole (and said so on stderr). Anything else there (a file, other files, another format's export)
is refused: an export never mixes its files with others' nor deletes them. Each export records
what it is and the files it wrote in OUT/mlit_export.json. The export is written beside OUT and
renamed onto it when complete, so a failed export leaves OUT as it was.
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'export')  # `python -m`: the command, before the heavy imports

import argparse
import importlib
import json
import os
import shutil
import sys

from tasks.user_error import UserError

FORMATS = {
  'transformers': 'mlit.inference.export_transformers',
  't5x': 'mlit.inference.export_t5x',
  'big_vision': 'mlit.inference.export_big_vision',
}
# Written into every export: what it is, and the files it wrote, so that exporting again into
# the same directory can tell its own earlier output (replaced) from anything else (refused).
RECORD_FILE = 'mlit_export.json'


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    prog='mlit export', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    '--model', required=True, help='the run: MODEL_DIR, its parent, or MODEL_DIR/checkpoints/<step>'
  )
  parser.add_argument(
    '--format', required=True, choices=sorted(FORMATS), help='file format of the exported towers'
  )
  parser.add_argument(
    '--out',
    required=True,
    help='output directory: new, empty, or an earlier export of the same --format (replaced)',
  )
  parser.add_argument(
    '--results',
    help='--format transformers: the `mlit eval` RUN_DIR (or its results.json) of this step, '
    "for the model card's evaluation (default: a results.json of this step beside the run)",
  )
  args = parser.parse_args(argv)
  if args.results and args.format != 'transformers':
    raise UserError(
      f'--results: only --format transformers writes a model card (not {args.format})'
    )
  from mlit.inference import model as model_lib  # pylint: disable=g-import-not-at-top
  from mlit.inference import (
    model_card,  # pylint: disable=g-import-not-at-top
    run_spec,  # pylint: disable=g-import-not-at-top
  )

  out = os.path.abspath(args.out)  # './a/../x' is x, and makes no a/
  replaced = _check_out(out, args.out, args.format)  # before the model loads
  run_spec.find_model_dir(args.model)
  model = model_lib.load(args.model)
  extra = {'results': model_card.read_results(args.results, model)} if args.results else {}
  exporter = importlib.import_module(FORMATS[args.format])
  record = {
    'format': args.format,
    'step': model.step,
    'fingerprint': model.fingerprint,
    'model_dir': model.model_dir,
  }
  inside = _into_directory(out, lambda tmp: exporter.export(model, tmp, **extra), record)
  if replaced:
    print(f'mlit export: replaced the earlier {args.format} export in {args.out}', file=sys.stderr)
  written = os.path.normpath(os.path.join(args.out, inside))
  print(f'wrote {written} ({args.format}, step {model.step}, fingerprint {model.fingerprint})')
  return 0


def _check_out(out: str, given: str, fmt: str) -> bool:
  """Refuses an --out that is a file or a directory holding anything but an earlier export of
  the same format (a careful user does not expect their files mixed with, or deleted by, an
  export). Returns whether an earlier export is there to replace."""
  if not os.path.exists(out):
    return False
  if not os.path.isdir(out):
    raise UserError(f'--out {given}: a file; give a directory (new, or empty)')
  entries = sorted(os.listdir(out))
  if not entries:
    return False
  earlier = _earlier_export(out)
  if earlier is None:
    shown = ', '.join(entries[:5]) + (f' and {len(entries) - 5} more' if len(entries) > 5 else '')
    raise UserError(
      f'--out {given}: a directory that holds other files ({shown}); give a new or empty '
      'directory (an earlier mlit export of the same --format there is replaced)'
    )
  if earlier['format'] != fmt:
    raise UserError(
      f'--out {given}: holds an earlier {earlier["format"]} export; give another directory for '
      f'--format {fmt}'
    )
  extra = sorted(set(entries) - set(earlier['files']) - {RECORD_FILE})
  if extra:
    raise UserError(
      f'--out {given}: an earlier {fmt} export, but with other files added '
      f'({", ".join(extra[:5])}); move them out or give another directory'
    )
  return True


def _earlier_export(out: str) -> dict | None:
  """The record an earlier `mlit export` wrote in out, or None."""
  try:
    with open(os.path.join(out, RECORD_FILE), encoding='utf-8') as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  ok = isinstance(record, dict) and record.get('format') in FORMATS
  return record if ok and isinstance(record.get('files'), list) else None


def _into_directory(out: str, write, record: dict) -> str:
  """write(tmp) into a new directory beside out, renamed onto out only when it succeeded: a
  failed export leaves no half-written directory that looks like a result, and an earlier
  export being replaced stays whole until the new one is complete. Directories made here for
  out's parents are removed again on failure. Returns write's path relative to out."""
  made, path = None, os.path.dirname(out)
  while not os.path.exists(path):  # the outermost directory makedirs will create
    made, path = path, os.path.dirname(path)
  tmp = os.path.join(os.path.dirname(out), f'.{os.path.basename(out)}.tmp-{os.getpid()}')
  try:
    os.makedirs(tmp)
    written = write(tmp)
    files = sorted(os.listdir(tmp))
    with open(os.path.join(tmp, RECORD_FILE), 'w', encoding='utf-8') as f:
      json.dump({**record, 'files': files}, f, indent=1)
    _swap_in(tmp, out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    if made:
      shutil.rmtree(made, ignore_errors=True)
    raise
  return os.path.relpath(written, tmp)


def _swap_in(tmp: str, out: str) -> None:
  """Renames tmp onto out; out, if there, is empty or an earlier export (_check_out)."""
  if not os.path.exists(out):
    os.rename(tmp, out)
    return
  old = f'{tmp}.old'
  os.rename(out, old)
  try:
    os.rename(tmp, out)
  except BaseException:
    os.rename(old, out)
    raise
  shutil.rmtree(old, ignore_errors=True)
