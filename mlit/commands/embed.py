"""`mlit embed`: embeddings of texts or images with a trained run, to a .npy with a JSON sidecar.

  mlit embed --model runs/demo --texts names.txt --out names.npy
  mlit embed --model runs/demo --images photos/ --out photos.npy

--texts: one text per line (UTF-8); ids are the line numbers (1-based). --images: every image
file directly in the directory, by name, a batch at a time (any number of files); ids are the file
names. The .json beside OUT (names.npy -> names.json) holds the ids, the model's fingerprint, step
and run directory (`mlit search --images OUT` checks it). Blank lines and unreadable images are
skipped: the .json counts them by reason (`skipped`) and lists their ids (`skipped_ids`); stderr
names the first 10. Lines longer than the run's text length are cut to it, as in training: the
.json lists their ids (`cut_ids`) and stderr names them.
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'embed')  # `python -m`: the command, before the heavy imports

import argparse
import json
import os
import sys

import numpy as np

from tasks.user_error import UserError


def _texts(path: str) -> tuple[list[str], list[str], dict[str, list[str]]]:
  """(ids, texts, {reason: skipped ids})."""
  try:
    with open(path, encoding='utf-8') as f:
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f'--texts {path}: unreadable ({e})') from e
  ids, texts, blank = [], [], []
  for i, text in enumerate(lines, 1):
    if text.strip():
      ids.append(str(i))
      texts.append(text)
    else:
      blank.append(str(i))
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
  out = args.out if args.out.endswith('.npy') else args.out + '.npy'
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  np.save(out, emb)
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
  with open(out[: -len('.npy')] + '.json', 'w', encoding='utf-8') as f:
    json.dump(sidecar, f, indent=1, ensure_ascii=False)
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
