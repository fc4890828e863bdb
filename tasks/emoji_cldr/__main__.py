"""Command line: python -m tasks.emoji_cldr {build,vocab,texts} (the image tower: python -m mlit.emoji_tower) ..."""

import sys


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  commands = {
    'build': 'tasks.emoji_cldr.build_main',
    'vocab': 'tasks.emoji_cldr.vocab',
    'texts': 'tasks.emoji_cldr.texts_main',
  }
  if not argv or argv[0] not in commands:
    print(f'usage: python -m tasks.emoji_cldr {{{",".join(commands)}}} [options]', file=sys.stderr)
    return 2
  import importlib  # pylint: disable=g-import-not-at-top

  return importlib.import_module(commands[argv[0]]).main(argv[1:])


if __name__ == '__main__':
  sys.exit(main())
