"""Command line: python -m tasks.emoji_cldr {build,vocab,texts,renders} ...; --help lists them.

(The image tower: python -m mlit.emoji_tower.)
"""

import sys

# subcommand -> (module whose main(argv) runs it, one line for --help, an example).
COMMANDS = {
  'build': (
    'tasks.emoji_cldr.build_main',
    'build (or reuse) the dataset: emoji renders and CLDR names/keywords per language',
    'python -m tasks.emoji_cldr build --out runs/demo/data --languages en,de,ja --max_emoji 200',
  ),
  'vocab': (
    'tasks.emoji_cldr.vocab',
    "train (or reuse) a SentencePiece vocabulary on a built dataset's tuning texts",
    'python -m tasks.emoji_cldr vocab --data runs/demo/data --out runs/demo/spm --vocab_size 32000',
  ),
  'texts': (
    'tasks.emoji_cldr.texts_main',
    "write one language's tuning texts as id<TAB>text (input of mlit backtranslate)",
    'python -m tasks.emoji_cldr texts --data runs/demo/data --lang en --out runs/demo/en_texts.tsv',
  ),
  'renders': (
    'tasks.emoji_cldr.renders_main',
    "write a split's evaluation renders as PNG files (for mlit predict / mlit search)",
    'python -m tasks.emoji_cldr renders --data runs/demo/data --split heldout '
    '--out runs/demo/heldout',
  ),
}


def usage() -> str:
  width = max(map(len, COMMANDS))
  lines = [
    'usage: python -m tasks.emoji_cldr [--verbose] COMMAND [options]',
    '',
    "The emoji/CLDR benchmark's data side; `mlit demo` runs build and vocab as its first stages",
    '(the emoji image tower: python -m mlit.emoji_tower). COMMAND --help shows its options;',
    '--verbose shows tracebacks.',
    '',
    'commands:',
  ]
  for name, (_, summary, example) in COMMANDS.items():
    lines += [f'  {name:<{width}}  {summary}', f'  {"":<{width}}    e.g. {example}']
  return '\n'.join(lines)


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  verbose = '--verbose' in argv
  argv = [a for a in argv if a != '--verbose']
  if not argv or argv[0] in ('-h', '--help'):
    print(usage(), file=sys.stdout if argv else sys.stderr)
    return 0 if argv else 2
  if argv[0] not in COMMANDS:
    print(f'python -m tasks.emoji_cldr: unknown command {argv[0]!r}\n{usage()}', file=sys.stderr)
    return 2
  import importlib  # pylint: disable=g-import-not-at-top

  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  try:
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
  except (UserError, FileNotFoundError, NotADirectoryError) as e:
    if verbose:
      raise
    print(f'python -m tasks.emoji_cldr {argv[0]}: error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
