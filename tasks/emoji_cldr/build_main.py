"""`python -m tasks.emoji_cldr build --out DIR`: builds or reuses the dataset."""

import argparse
import json
import sys

from tasks.emoji_cldr import build as build_lib
from tasks.emoji_cldr import sources


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog='python -m tasks.emoji_cldr build', description=__doc__)
  p.add_argument('--out', required=True, help='dataset directory')
  p.add_argument('--root', default='/', help='directory the Debian packages are installed under')
  p.add_argument('--image_size', type=int, default=32, help='render size in pixels (default 32)')
  p.add_argument('--n_aug', type=int, default=4, help='augmentations per emoji')
  p.add_argument('--seed', type=int, default=0, help='seed of the split and augmentations')
  p.add_argument(
    '--heldout_fraction',
    type=float,
    default=0.2,
    help='fraction of emoji held out for evaluation (default 0.2)',
  )
  p.add_argument(
    '--languages', default=None, help='comma-separated CLDR locales (default: every base locale)'
  )
  p.add_argument(
    '--include_variants',
    action='store_true',
    help='also regional/script locales such as de_CH, zh_Hant',
  )
  p.add_argument(
    '--max_emoji', type=int, default=None, help='use at most this many emoji (default: all)'
  )
  p.add_argument('--force', action='store_true', help='rebuild even if up to date')
  a = p.parse_args(argv)
  config = build_lib.BuildConfig(
    image_size=a.image_size,
    n_aug=a.n_aug,
    seed=a.seed,
    heldout_fraction=a.heldout_fraction,
    languages=tuple(a.languages.split(',')) if a.languages else None,
    include_variants=a.include_variants,
    max_emoji=a.max_emoji,
  )
  try:
    m = build_lib.build(a.out, config, root=a.root, force=a.force)
  except sources.MissingPackageError as e:
    print(str(e), file=sys.stderr)
    return 1
  summary = {k: m[k] for k in ('counts', 'sources', 'seconds', 'reused')}
  print(json.dumps(summary, ensure_ascii=False, indent=1))
  dropped = m['languages_without_names']
  if dropped:  # their CLDR files exist but name none of these emoji: no texts, no evaluation
    print(
      f'{p.prog}: no texts for {", ".join(dropped)}: their CLDR annotations name none of the '
      f'{m["counts"]["concepts"]} emoji (manifest.json languages_without_names)',
      file=sys.stderr,
    )
  return 0


if __name__ == '__main__':
  sys.exit(main())
