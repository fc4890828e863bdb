"""Command line: python -m tasks.emoji_cldr {build,vocab,texts,renders} (the image tower: python -m mlit.emoji_tower) ..."""

import sys


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  commands = {
    'build': 'tasks.emoji_cldr.build_main',
    'vocab': 'tasks.emoji_cldr.vocab',
    'texts': 'tasks.emoji_cldr.texts_main',
    'renders': 'tasks.emoji_cldr.renders_main',
  }
  if not argv or argv[0] not in commands:
    print(f'usage: python -m tasks.emoji_cldr {{{",".join(commands)}}} [options]', file=sys.stderr)
    return 2
  import importlib  # pylint: disable=g-import-not-at-top

  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  verbose = '--verbose' in argv
  argv = [a for a in argv if a != '--verbose']
  try:
    return importlib.import_module(commands[argv[0]]).main(argv[1:])
  except (UserError, FileNotFoundError, NotADirectoryError) as e:
    if verbose:
      raise
    print(f'python -m tasks.emoji_cldr {argv[0]}: error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
