r"""`mlit cache-tasks`: cache gin-registered seqio tasks with Apache Beam (seqio's cache pipeline).

seqio_cache_tasks imports modules that register tasks at import time; mlit tasks are registered
from gin (`tasks.registration.register_tasks`), so this parses gin first and then runs seqio's own
pipeline. Training then reads the cache with USE_CACHED_TASKS = True and TASK_CACHE_DIRS =
['<the --output_cache_dir>'] (runs/lit_tune.gin; seqio's global cache dirs). With a distributed runner, workers must be able to re-register the
tasks: give them a module that does so at import via --module_import (also imported here).
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'cache-tasks')  # `python -m`: the command, before the heavy imports

import collections
import os
import re
import sys
from typing import Optional, Sequence

from mlit.commands import gin_flags
from tasks import cache_tasks, data_stats, registration
from tasks.user_error import UserError

_EXAMPLE = (
  'mlit cache-tasks --gin_file=my_tasks.gin --output_cache_dir=/data/cache '
  '--tasks=yfcc100m_full \\\n    --pipeline_options=--runner=DirectRunner\n'
  '  (my_tasks.gin registers the tasks, e.g. for YFCC:\n'
  '     import tasks.registration\n     import tasks.yfcc\n'
  "     tasks.yfcc.register_yfcc.tsv_pattern = '/data/yfcc100m_dataset-*'\n"
  '     tasks.registration.register_tasks.registrations = [@tasks.yfcc.register_yfcc]\n'
  '   the vocabulary too: tasks.vocabularies.vocabulary.path)'
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
  _check_runner(args.pipeline_options)
  registration.register_tasks()
  patterns = [p for p in args.tasks.split(',') if p]
  names = _matching_tasks(patterns)
  before = {n: _is_cached(args.output_cache_dir, n) for n in names}
  for name in names:
    if before[name] and not args.overwrite:
      why = cache_tasks.stale_cache(name, _task_dir(args.output_cache_dir, name))
      if why:
        raise UserError(f'{name}: {why}; give --overwrite to cache it again')
  data_stats.reset()  # rows registration read (e.g. header checks) are not the cache's
  cache_tasks.cache(
    patterns,
    args.output_cache_dir,
    args.pipeline_options.split(),
    args.overwrite,
    args.module_import,
  )
  for name in names:
    if before[name] and not args.overwrite:
      print(
        f'{name}: already cached in {args.output_cache_dir}, kept (--overwrite caches it again)'
      )
    elif _is_cached(args.output_cache_dir, name):
      print(f'{name}: cached in {args.output_cache_dir}: {_cached_examples(name)}')
    else:
      raise UserError(
        f'{name}: not cached in {args.output_cache_dir} (the pipeline wrote no cache)'
      )
  if any(args.overwrite or not before[n] for n in names):
    print(_rows_read(args.pipeline_options))
  return 0


def _cached_examples(name: str) -> str:
  """E.g. 'train 6 examples' from the stats seqio's pipeline wrote beside the cache."""
  import seqio  # pylint: disable=g-import-not-at-top

  task = seqio.get_mixture_or_task(name)
  return ', '.join(
    f'{split} {task.get_cached_stats(split).get("examples", 0):,} examples' for split in task.splits
  )


def _rows_read(pipeline_options: str) -> str:
  """What the source rows came to: kept, and skipped per reason (tasks.data_stats). Counted in
  this process, where Beam's DirectRunner reads them by default; other runners' workers count
  (and log) their own."""
  counts = data_stats.snapshot()
  if not (counts['kept_rows'] or counts['skipped_rows']):
    return (
      f'while caching: rows kept and skipped are not counted in this process (--pipeline_options '
      f"{pipeline_options!r} reads them elsewhere: the workers' logs name each skipped row)"
    )
  corpus = counts['corpus']
  if not corpus:  # no file read to its end here
    return f'while caching: {data_stats.rows_read_line()}'
  # Each file once: every task of a source (WIT's per-language tasks) reads its rows again.
  kept = sum(entry['kept'] for entry in corpus.values())
  skipped = collections.Counter()
  for entry in corpus.values():
    skipped.update(entry['skipped'])
  reasons = data_stats.reasons_text(skipped)
  files = sum(entry['files_read'] for entry in corpus.values())
  return (
    f'while caching: rows kept {kept:,}, skipped {sum(skipped.values()):,}'
    + (f' ({reasons})' if reasons else '')
    + f'; {files:,} file{"s" if files != 1 else ""} read, each counted once'
  )


def _matching_tasks(patterns: Sequence[str]) -> list[str]:
  """The registered task names each --tasks regex matches (seqio's rule: the whole name);
  a regex matching none is an error, not seqio's warning about a flag mlit does not have."""
  import seqio  # pylint: disable=g-import-not-at-top

  registered = sorted(seqio.TaskRegistry.names())
  names = []
  for pattern in patterns:
    try:
      regex = re.compile(pattern)
    except re.error as e:
      raise UserError(f'--tasks {pattern!r}: not a regular expression ({e})') from e
    matched = [n for n in registered if regex.fullmatch(n)]
    mixtures = [n for n in sorted(seqio.MixtureRegistry.names()) if regex.fullmatch(n)]
    if not matched and mixtures:  # a mixture is cached as its tasks, which training then mixes
      parts = [t.name for t in seqio.get_mixture_or_task(mixtures[0]).tasks]
      raise UserError(
        f'--tasks {pattern!r}: {mixtures[0]} is a mixture, cached as its tasks: give those '
        f'(--tasks={",".join(parts)}); training on the mixture then reads their caches'
      )
    if not matched:
      shown = ', '.join(registered[:20]) + (' ...' if len(registered) > 20 else '')
      raise UserError(f'--tasks {pattern!r} matches no registered task (registered: {shown})')
    names += [n for n in matched if n not in names]
  # seqio's pipeline skips these with an INFO line, and nothing said why no cache came out.
  uncachable = [n for n in names if not seqio.get_mixture_or_task(n).supports_caching]
  if uncachable:
    raise UserError(
      f'--tasks: {", ".join(uncachable)} cannot be cached (no seqio.CacheDatasetPlaceholder '
      'among its preprocessors); train on it uncached (USE_CACHED_TASKS = False)'
    )
  return names


def _check_runner(pipeline_options: str) -> None:
  """Options Beam refuses are one line, before the tasks are registered."""
  from tasks import beam_pipeline  # pylint: disable=g-import-not-at-top

  beam_pipeline.check_options(pipeline_options.split(), '--pipeline_options')


def _task_dir(cache_dir: str, name: str) -> str:
  import seqio  # pylint: disable=g-import-not-at-top

  return os.path.join(cache_dir, seqio.utils.get_task_dir_from_name(name))


def _is_cached(cache_dir: str, name: str) -> bool:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  return tf.io.gfile.exists(os.path.join(_task_dir(cache_dir, name), 'COMPLETED'))
