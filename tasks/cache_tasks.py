"""Caching registered seqio tasks with Apache Beam (seqio's cache pipeline).

The command line (gin parsing, task registration) is `mlit cache-tasks`
(mlit/commands/cache_tasks.py); this module only runs seqio's pipeline.
"""

import json
import os
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


def stale_cache(task_name: str, task_dir: str) -> str | None:
  """Why the cache in `task_dir` is not the task as registered now (its cached features differ
  from those its source gives: e.g. cached before image_dir was set), or None. A cache of other
  features fails deep in tf.data when a run reads it."""
  task = seqio.get_mixture_or_task(task_name)
  source_features = getattr(task.source, 'output_signature', None)
  if not isinstance(source_features, dict):
    return None  # a source whose features are not known up front: not checked
  for split in task.splits:
    path = os.path.join(task_dir, f'info.{split}.json')
    if not tf.io.gfile.exists(path):
      continue
    with tf.io.gfile.GFile(path) as f:
      cached = set(json.load(f).get('features', {}))
    now = set(source_features)
    if cached != now:
      parts = []
      if now - cached:
        parts.append(f'lacks {", ".join(sorted(now - cached))}')
      if cached - now:
        parts.append(f'has {", ".join(sorted(cached - now))} the task no longer gives')
      return f'its cache in {task_dir} was made with other settings: it {" and ".join(parts)}'
  return None
