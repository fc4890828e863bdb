"""`mlit embed`: embeddings of texts or images with a trained run, to a .npy with a JSON sidecar.

  mlit embed --model runs/demo --texts names.txt --out names.npy
  mlit embed --model runs/demo --images photos/ --out photos.npy

--texts: one text per line (UTF-8); ids are the line numbers (1-based). --images: every image
file directly in the directory, by name, a batch at a time (any number of files); ids are the file
names. The .json beside OUT (names.npy -> names.json) holds the ids, the model's fingerprint, step
and run directory (`mlit search --images OUT` checks it). Blank lines and unreadable images are
skipped: the .json counts them by reason (`skipped`) and lists their ids (`skipped_ids`); stderr
names the first 10. Lines longer than the run's text length are cut to it, as in training: the
.json lists their ids (`cut_ids`) and stderr names them. Lines of only whitespace or zero-width
characters count as blank; a BOM at the file's start is not part of the first line.

OUT is a file name (not a directory). Both files are written to temporary names and renamed
when complete, the .json last. An existing OUT.json that is not an earlier `mlit embed` sidecar
is refused, not replaced. File names that are not UTF-8 are kept exactly (\\udcff escapes in the
JSON read back to os.listdir's names).
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'embed')  # `python -m`: the command, before the heavy imports

import argparse
import json
import os
import sys

import numpy as np

from mlit.inference import user_text
from tasks import file_io
from tasks.user_error import UserError

# The sidecar's keys that tell an `mlit embed` sidecar from another file named OUT.json.
SIDECAR_KEYS = ('ids', 'kind', 'fingerprint')


def _texts(path: str) -> tuple[list[str], list[str], dict[str, list[str]]]:
  """(ids, texts, {reason: skipped ids})."""
  try:
    with open(path, encoding='utf-8-sig') as f:  # a BOM is no part of the first line
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f'--texts {path}: unreadable ({e})') from e
  ids, texts, blank = [], [], []
  for i, text in enumerate(lines, 1):
    if user_text.is_blank(text):  # zero-width characters only count as blank too
      blank.append(str(i))
    else:
      ids.append(str(i))
      texts.append(text)
  if not texts:
    raise UserError(f'--texts {path}: no non-empty line')
  return ids, texts, {'blank line': blank} if blank else {}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    prog='mlit embed', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    '--model', required=True, help='the run: MODEL_DIR, its parent, or MODEL_DIR/checkpoints/<step>'
  )
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--texts', help='UTF-8 file, one text per line')
  source.add_argument('--images', help='directory of image files')
  parser.add_argument('--out', required=True, help='output .npy (a .json sidecar beside it)')
  args = parser.parse_args(argv)
  from mlit.inference import image_folder, run_spec  # pylint: disable=g-import-not-at-top
  from mlit.inference import model as model_lib  # pylint: disable=g-import-not-at-top

  out, sidecar_path = _outputs(args.out)  # before the model loads
  run_spec.find_model_dir(args.model)
  skipped, cut = {}, []
  if args.texts:
    ids, texts, skipped = _texts(args.texts)
    model = model_lib.load(args.model)
    emb, cut_positions = model.encode_text_and_cuts(texts)  # the cut lines are named below
    cut = [ids[i] for i in cut_positions]
  else:
    model = model_lib.load(args.model)
    if model.image_size is None:
      model.encode_image([])  # raises the run's reason
    ids, emb, skipped = image_folder.embed_directory(model, args.images)
  sidecar = {
    'ids': ids,
    'kind': 'text' if args.texts else 'image',
    'shape': list(emb.shape),
    'fingerprint': model.fingerprint,
    'step': model.step,
    'model_dir': model.model_dir,
    'skipped': {reason: len(which) for reason, which in skipped.items()},
    'skipped_ids': skipped,
    **({'cut_ids': cut} if args.texts else {}),
  }
  _write(out, emb, sidecar_path, sidecar)
  if args.texts:  # lines named as file:line
    cli.print_skipped('embed', {r: [f'{args.texts}:{i}' for i in w] for r, w in skipped.items()})
    if cut:
      shown = ', '.join(f'{args.texts}:{i}' for i in cut[:10])
      more = f' and {len(cut) - 10} more' if len(cut) > 10 else ''
      print(
        f"mlit embed: cut {len(cut)} line(s) to the run's {model.text_length} tokens (EOS "
        f'included), as in training: {shown}{more}',
        file=sys.stderr,
      )
  else:
    cli.print_skipped('embed', skipped)
  print(f'wrote {out} {tuple(emb.shape)} and its .json sidecar')
  return 0


def _outputs(given: str) -> tuple[str, str]:
  """(OUT.npy, OUT.json) for --out, refusing a directory and a JSON file that is not an earlier
  `mlit embed` sidecar (replacing it would lose someone's file, e.g. config.json)."""
  out = given if given.endswith('.npy') else given + '.npy'
  stem = out[: -len('.npy')]
  if os.path.isdir(out) or not os.path.basename(stem):  # 'dir/' would write dir/.npy
    raise UserError(
      f'--out {given}: a directory; give a file name in it, e.g. '
      f'{os.path.join(given, "embeddings.npy")} (the .json sidecar goes beside it)'
    )
  sidecar_path = stem + '.json'
  if os.path.exists(sidecar_path) and not _is_sidecar(sidecar_path):
    raise UserError(
      f'--out {given}: {sidecar_path} exists and is not an mlit embed sidecar, which would '
      'replace it; give another --out'
    )
  return out, sidecar_path


def _is_sidecar(path: str) -> bool:
  try:
    with open(path, encoding='utf-8') as f:
      content = json.load(f)
  except (OSError, ValueError):
    return False
  return isinstance(content, dict) and all(k in content for k in SIDECAR_KEYS)


def _write(out: str, emb, sidecar_path: str, sidecar: dict) -> None:
  """Both files through temporary files, renamed when both are written, the sidecar last: a
  failure leaves neither half-written, and a reader never pairs a new sidecar with old rows."""
  text = user_text.json_text(json.dumps(sidecar, indent=1, ensure_ascii=False))
  with file_io.atomic_path(sidecar_path) as sidecar_tmp, file_io.atomic_path(out) as out_tmp:
    with open(out_tmp, 'wb') as f:  # a file object: np.save would add .npy to the name
      np.save(f, emb)
    with open(sidecar_tmp, 'w', encoding='utf-8') as f:
      f.write(text)
