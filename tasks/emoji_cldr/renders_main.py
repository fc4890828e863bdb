"""`python -m tasks.emoji_cldr renders`: a split's evaluation renders as PNG files to try a model on.

  python -m tasks.emoji_cldr renders --data runs/demo/data --split heldout --out runs/demo/heldout
  mlit predict --model runs/demo --image runs/demo/heldout/dog.png --labels "Hund,Katze"
  mlit search --model runs/demo --images runs/demo/heldout/ --query "Vulkan"

Each concept's `noto_eval` render (the image the zero-shot evaluation scores) is written as
`<English CLDR name>.png`, lower case with runs of other characters as '_' (dog.png,
french_fries.png); where two concepts share that name (the keycaps), the later one gets its code
points appended (keycap_0023_fe0f_20e3.png). Files are written in concepts.jsonl order, so the
names are the same on every run over the same build.
"""

import argparse
import os
import re
import sys

import numpy as np
from PIL import Image

from tasks.emoji_cldr import data as data_lib
from tasks.emoji_cldr import split as split_lib
from tasks.user_error import UserError


def file_names(concepts: list[dict]) -> list[str]:
  """The PNG name of each concept (same order), unique among them."""
  names, taken = [], set()
  for c in concepts:
    name = re.sub(r'[^a-z0-9]+', '_', c['english'].lower()).strip('_') or 'emoji'
    if name in taken:
      name += '_' + '_'.join(c['codepoints']).lower()
    if name in taken:
      raise ValueError(f'two concepts would both be written as {name}.png')
    taken.add(name)
    names.append(name + '.png')
  return names


def write_renders(data_dir: str, split: str, out: str) -> int:
  """Writes the split's noto_eval renders into `out` (made if missing); returns how many."""
  data = data_lib.load(data_dir)
  if split not in (split_lib.TUNING, split_lib.HELDOUT):
    raise UserError(f'--split must be {split_lib.TUNING!r} or {split_lib.HELDOUT!r}, got {split!r}')
  images = data.array('noto_eval')
  concepts = [c for c in data.concepts if c['split'] == split]
  os.makedirs(out, exist_ok=True)
  for c, name in zip(concepts, file_names(concepts)):
    path = os.path.join(out, name)
    # Written beside and renamed, so a Ctrl-C never leaves a truncated PNG under the final name.
    Image.fromarray(np.asarray(images[c['index']])).save(path + '.tmp', format='PNG')
    os.replace(path + '.tmp', path)
  return len(concepts)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    prog='python -m tasks.emoji_cldr renders',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument('--data', required=True, help='built emoji_cldr directory')
  p.add_argument(
    '--split',
    default=split_lib.HELDOUT,
    help=f'{split_lib.HELDOUT} (default: emoji no run tuned on) or {split_lib.TUNING}',
  )
  p.add_argument('--out', required=True, help='directory to write the PNG files into')
  a = p.parse_args(argv)
  n = write_renders(a.data, a.split, a.out)
  print(f'wrote {n} {a.split} renders to {a.out}', file=sys.stderr)
  return 0
