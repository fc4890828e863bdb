"""`mlit search`: images ranked for text queries in any language the run learnt (retrieval).

  mlit search --model runs/demo --images photos/ --query "Vulkan" "volcan" [--top-k 5]
  mlit embed --model runs/demo --images photos/ --out photos.npy   # embed a folder once,
  mlit search --model runs/demo --images photos.npy --query "Vulkan" # then search it quickly

--images is a directory (every image file directly in it, embedded a batch at a time) or a .npy
that `mlit embed --images` wrote: its .json sidecar must name this run's weights (fingerprint).
Each query prints the top-k images with their cosine similarity to the query (names aligned by
terminal width, CJK counting two columns; bytes of a file name that are not UTF-8 print as
\\xff). A query of only whitespace or zero-width characters is refused as empty.
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'search')  # `python -m`: the command, before the heavy imports

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np

from mlit.inference import user_text
from tasks.user_error import UserError


def read_embedded(path: str, fingerprint: str) -> tuple[list[str], np.ndarray]:
  """(ids, [N, D]) of an `mlit embed --images` output made with the weights `fingerprint`."""
  sidecar_path = path[: -len('.npy')] + '.json'
  if not os.path.isfile(path):
    raise UserError(f'--images {path}: no such file')
  try:
    with open(sidecar_path, encoding='utf-8') as f:
      sidecar = json.load(f)
  except FileNotFoundError as e:
    raise UserError(
      f'--images {path}: no sidecar {sidecar_path} (write both with mlit embed)'
    ) from e
  except (OSError, ValueError) as e:
    raise UserError(f'--images {path}: sidecar {sidecar_path} unreadable ({e})') from e
  if sidecar.get('kind') != 'image':
    raise UserError(f'--images {path}: holds {sidecar.get("kind")!r} embeddings, not images')
  if sidecar.get('fingerprint') != fingerprint:
    raise UserError(
      f'--images {path}: embedded with other weights (fingerprint {sidecar.get("fingerprint")}, '
      f"run {sidecar.get('model_dir')} step {sidecar.get('step')}; this model's is "
      f'{fingerprint}): embed the images again with this --model'
    )
  try:
    emb = np.load(path)
  except (OSError, ValueError) as e:
    raise UserError(f'--images {path}: not a readable .npy ({e})') from e
  ids = sidecar.get('ids')
  if not isinstance(ids, list) or emb.ndim != 2 or len(emb) != len(ids):
    n = len(ids) if isinstance(ids, list) else 'no'
    raise UserError(f"--images {path}: shape {emb.shape} does not match its sidecar's {n} ids")
  return [str(i) for i in ids], emb


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    prog='mlit search', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    '--model', required=True, help='the run: MODEL_DIR, its parent, or MODEL_DIR/checkpoints/<step>'
  )
  parser.add_argument('--images', required=True, help='image directory, or .npy from mlit embed')
  parser.add_argument('--query', nargs='+', required=True, help='one or more texts')
  parser.add_argument('--top-k', type=int, default=5, help='images shown per query (default 5)')
  args = parser.parse_args(argv)
  queries = [q.strip() for q in args.query]
  if any(user_text.is_blank(q) for q in queries):  # zero-width characters only look empty too
    raise UserError(f'--query: empty query in {args.query!r}')
  if args.top_k < 1:
    raise UserError(f'--top-k {args.top_k}: give 1 or more')
  from mlit.inference import image_folder, run_spec  # pylint: disable=g-import-not-at-top
  from mlit.inference import model as model_lib  # pylint: disable=g-import-not-at-top

  run_spec.find_model_dir(args.model)  # a missing run fails before anything loads
  from_file = args.images.endswith('.npy')
  if not from_file:
    image_folder.image_names(args.images)  # a missing directory fails before the model loads
  model = model_lib.load(args.model)
  if from_file:
    ids, images = read_embedded(args.images, model.fingerprint)
  else:
    if model.image_size is None:
      model.encode_image([])  # raises the run's reason
    ids, images, skipped = image_folder.embed_directory(model, args.images)
    cli.print_skipped('search', skipped)
  query_emb, cut = model.encode_text_and_cuts(queries)
  if cut:  # named by the query the user typed, not by a position in a list
    shown = ', '.join(repr(queries[i]) for i in cut[:5]) + (' ...' if len(cut) > 5 else '')
    print(
      f"mlit search: {len(cut)} of {len(queries)} queries are longer than the run's "
      f'{model.text_length} tokens (EOS included) and were cut, as in training: {shown}',
      file=sys.stderr,
    )
  scores = query_emb @ images.T
  top = np.argsort(-scores, axis=1, kind='stable')[:, : args.top_k]
  names = [user_text.printable(i) for i in ids]  # a name that is not UTF-8 prints as \xff
  width = max(user_text.display_width(names[i]) for i in top.flat)
  for query, row, best in zip(queries, scores, top):
    print(query)
    for line in ranked_lines([names[i] for i in best], row[best], width):
      print(line)
  sys.stdout.flush()
  return 0


def ranked_lines(names: Sequence[str], scores, width: int) -> list[str]:
  """'  RANK  NAME  SCORE' per image, the columns aligned however many ranks (100 and more)."""
  rank_width = max(2, len(str(len(names))))
  return [
    f'  {rank:>{rank_width}}  {user_text.pad(name, width)}  {score:.3f}'
    for rank, (name, score) in enumerate(zip(names, scores), 1)
  ]
