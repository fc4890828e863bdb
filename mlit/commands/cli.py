"""The `mlit` command: one entry point for every job, each a module with its own main()."""

import importlib
import sys

# subcommand -> module whose main(argv) runs it.
COMMANDS = {
  'train': 'mlit.training.train',
  'precompute': 'mlit.commands.precompute',
  'cache-tasks': 'tasks.cache_tasks',
  'backtranslate': 'mlit.translation.backtranslate_job',
  'eval': 'eval_multilingual.run',
  'report': 'eval_multilingual.report',
  'coverage': 'eval_multilingual.coverage',
  'add-language': 'mlit.commands.add_language',
  'demo': 'mlit.commands.demo',
}


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ('-h', '--help') or argv[0] not in COMMANDS:
    print('usage: mlit {%s} [args...]' % ','.join(COMMANDS), file=sys.stderr)
    return 0 if argv and argv[0] in ('-h', '--help') else 2
  module = importlib.import_module(COMMANDS[argv[0]])
  return module.main(argv[1:])


if __name__ == '__main__':
  sys.exit(main())
