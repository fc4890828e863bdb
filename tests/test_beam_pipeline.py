"""mlit's Beam jobs run DirectRunner in this process, never through Beam's Prism download."""

import os
import tempfile

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options import pipeline_options
from apache_beam.runners.portability import prism_runner

from tasks import beam_pipeline


@pytest.mark.parametrize('flags', [[], ['--runner=DirectRunner'], ['--runner=direct']])
def test_direct_runner_runs_here_without_prism(flags, tmp_path, monkeypatch):
  """Beam's own DirectRunner first tries Prism (a binary downloaded from GitHub at run time; offline
  a failed attempt and an empty beam-temp* folder left in the temp folder per job)."""
  tried = []

  def prism(self, pipeline, options):
    tried.append(options)
    raise RuntimeError('Prism tried')

  monkeypatch.setattr(prism_runner.PrismRunner, 'run_pipeline', prism)
  monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
  options = pipeline_options.PipelineOptions(flags + ['--direct_num_workers=1'])
  assert beam_pipeline.runs_in_process(options)

  def count(x):
    beam.metrics.Metrics.counter('test', 'seen').inc()
    return x

  with beam_pipeline.new_pipeline(options) as pipeline:
    _ = pipeline | beam.Create(range(5)) | beam.Map(count)
  seen = pipeline.result.metrics().query(MetricsFilter().with_name('seen'))['counters']
  assert not tried
  assert [c.committed for c in seen] == [5]  # counted in this process, as the jobs report them
  assert not [n for n in os.listdir(tmp_path) if n.startswith('beam-temp')]


def test_other_runners_are_beams_own():
  for name in ('DataflowRunner', 'PrismRunner', 'FlinkRunner'):
    assert not beam_pipeline.runs_in_process(pipeline_options.PipelineOptions([f'--runner={name}']))
  class_path = 'apache_beam.runners.direct.direct_runner.DirectRunner'
  assert beam_pipeline.runs_in_process(pipeline_options.PipelineOptions([f'--runner={class_path}']))
