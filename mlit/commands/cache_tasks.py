r"""`mlit cache-tasks`: cache gin-registered seqio tasks with Apache Beam (seqio's cache pipeline).

seqio_cache_tasks imports modules that register tasks at import time; mlit tasks are registered
from gin (`tasks.registration.register_tasks`), so this parses gin first and then runs seqio's own
pipeline. Training then reads the cache with USE_CACHED_TASKS = True and TASK_CACHE_DIRS =
['<the --output_cache_dir>'] (runs/lit_tune.gin; seqio's global cache dirs). With a distributed runner, workers must be able to re-register the
tasks: give them a module that does so at import via --module_import (also imported here).
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'cache-tasks')  # `python -m`: the command, before the heavy imports

import sys
from typing import Optional, Sequence

from mlit.commands import gin_flags
from tasks import cache_tasks, registration

_EXAMPLE = (
  'mlit cache-tasks --gin_file=my_tasks.gin --output_cache_dir=/data/cache '
  '--tasks=yfcc100m_full \\\n    --pipeline_options=--runner=DirectRunner'
)


def _add_arguments(parser) -> None:
  parser.add_argument(
    '--output_cache_dir', required=True, help='directory the cached tasks are written to'
  )
  parser.add_argument(
    '--tasks', required=True, help='comma-separated regexes of registered task names to cache'
  )
  parser.add_argument(
    '--pipeline_options',
    default='--runner=DirectRunner',
    help='Apache Beam pipeline options, space-separated (default: %(default)s)',
  )
  parser.add_argument(
    '--overwrite', action='store_true', help='re-cache tasks whose cache already exists'
  )


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = gin_flags.parse_flags(
    list(sys.argv[1:] if argv is None else argv),
    __doc__.splitlines()[0].split(': ', 1)[1],
    _add_arguments,
    prog='mlit cache-tasks',
    example=_EXAMPLE,
  )
  registration.register_tasks()
  cache_tasks.cache(
    args.tasks.split(','),
    args.output_cache_dir,
    args.pipeline_options.split(),
    args.overwrite,
    args.module_import,
  )
  return 0
