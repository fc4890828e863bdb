"""Command line: python -m mlit.emoji_tower {pretrain,embed} ..."""

import importlib
import sys

COMMANDS = {
  'pretrain': 'mlit.emoji_tower.pretrain',
  'embed': 'mlit.emoji_tower.embed',
}


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] not in COMMANDS:
    print(f'usage: python -m mlit.emoji_tower {{{",".join(COMMANDS)}}} [options]', file=sys.stderr)
    return 2
  return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == '__main__':
  sys.exit(main())
