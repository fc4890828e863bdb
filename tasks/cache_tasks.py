r"""Cache gin-registered seqio tasks with Apache Beam (seqio's cache pipeline).

  python -m tasks.cache_tasks --gin_file=my_tasks.gin --output_cache_dir=/cache \
      --tasks=yfcc100m_full [--pipeline_options=--runner=DirectRunner]

seqio_cache_tasks imports modules that register tasks at import time; mlit tasks
are registered from gin (`tasks.registration.register_tasks`), so this parses gin
first and then runs seqio's own pipeline. Training then reads the cache with
USE_CACHED_TASKS = True and the same cache dir (seqio.add_global_cache_dirs).
With a distributed runner, workers must be able to re-register the tasks: give
them a module that does so at import via --module_import.
"""

import argparse
import sys
from typing import Optional, Sequence

import apache_beam as beam
import seqio
import tensorflow as tf
from absl import flags
from seqio.scripts import cache_tasks_main

import gin
from tasks import registration


def cache(
  task_names: Sequence[str],
  output_cache_dir: str,
  pipeline_options: Sequence[str] = ('--runner=DirectRunner',),
  overwrite: bool = False,
  modules_to_import: Sequence[str] = (),
) -> list:
  """Runs seqio's caching pipeline for already registered tasks."""
  if not flags.FLAGS.is_parsed():  # run_pipeline reads seqio's flag defaults
    flags.FLAGS.mark_as_parsed()
  tf.io.gfile.makedirs(output_cache_dir)
  seqio.add_global_cache_dirs([output_cache_dir])
  options = beam.options.pipeline_options.PipelineOptions(list(pipeline_options))
  with beam.Pipeline(options=options) as pipeline:
    out = cache_tasks_main.run_pipeline(
      pipeline,
      list(task_names),
      output_cache_dir,
      overwrite=overwrite,
      modules_to_import=list(modules_to_import),
    )
  return out


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--gin_file', action='append', default=[])
  parser.add_argument('--gin', action='append', default=[], help='a gin binding')
  parser.add_argument('--gin_search_paths', default='')
  parser.add_argument('--output_cache_dir', required=True)
  parser.add_argument('--tasks', required=True, help='comma-separated task regexes')
  parser.add_argument('--pipeline_options', default='--runner=DirectRunner')
  parser.add_argument('--module_import', action='append', default=[])
  parser.add_argument('--overwrite', action='store_true')
  args = parser.parse_args(argv)
  for path in filter(None, args.gin_search_paths.split(',')):
    gin.add_config_file_search_path(path)
  gin.parse_config_files_and_bindings(args.gin_file, args.gin)
  registration.register_tasks()
  cache(
    args.tasks.split(','),
    args.output_cache_dir,
    args.pipeline_options.split(),
    args.overwrite,
    args.module_import,
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
