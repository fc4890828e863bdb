"""`python -m tasks.emoji_cldr texts`: a language's tuning texts as `id<TAB>text`, for backtranslation.

  python -m tasks.emoji_cldr texts --data runs/demo/data --lang en --out runs/demo/en_texts.tsv
  mlit backtranslate --input runs/demo/en_texts.tsv --out runs/demo/bt --pivots es,ca

The ids are the tuning examples' example_id ('en/😀/name', 'en/😀/kw0'), the keys
tasks.backtranslation looks candidates up by, so gin/augment/backtranslation.gin with
BT_CANDIDATES_DIR = the job's --out applies them to the emoji_cldr tuning tasks.
"""

import argparse
import sys

from tasks import file_io
from tasks.emoji_cldr import data as data_lib
from tasks.emoji_cldr import pairs as pairs_lib


def write_texts(data_dir: str, lang: str, out: str, names_only: bool = False) -> int:
  pairs = pairs_lib.tuning_pairs(data_lib.load(data_dir), lang, names_only, 'noto_eval')
  lines = [f'{i}\t{" ".join(t.split())}\n' for i, t in zip(pairs.example_ids, pairs.texts)]
  with file_io.atomic_path(out) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    f.writelines(lines)
  return len(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    prog='python -m tasks.emoji_cldr texts',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument('--data', required=True, help='built emoji_cldr directory')
  p.add_argument('--lang', default='en', help='language of the texts (default en)')
  p.add_argument('--out', required=True, help='TSV to write (id<TAB>text)')
  p.add_argument('--names_only', action='store_true', help='CLDR names only, no keywords')
  a = p.parse_args(argv)
  n = write_texts(a.data, a.lang, a.out, a.names_only)
  print(f'wrote {n} texts to {a.out}', file=sys.stderr)
  return 0
