"""Caching registered seqio tasks with Apache Beam (seqio's cache pipeline).

The command line (gin parsing, task registration) is `mlit cache-tasks`
(mlit/commands/cache_tasks.py); this module only runs seqio's pipeline.
"""

from typing import Sequence

import apache_beam as beam
import seqio
import tensorflow as tf
from absl import flags
from seqio.scripts import cache_tasks_main

from tasks import beam_pipeline


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
  with beam_pipeline.new_pipeline(options) as pipeline:
    out = cache_tasks_main.run_pipeline(
      pipeline,
      list(task_names),
      output_cache_dir,
      overwrite=overwrite,
      modules_to_import=list(modules_to_import),
    )
  return out
