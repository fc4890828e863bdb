"""A Beam pipeline for mlit's jobs (cache-tasks, ingest, backtranslate-beam), one way.

Beam's default runner, DirectRunner, here runs in this process on Beam's FnApiRunner. Beam's own
DirectRunner (2.6x and later) first tries Prism, a Go binary it downloads from GitHub at run time
(or builds with `go install`) into ~/.apache_beam/cache: online, a job would then depend on a
download and run in another process (where mlit's per-reason row counts are not kept); offline,
each job waits on the failed download before falling back to the FnApiRunner, and leaves an
empty beam-temp* directory in the temp folder. mlit downloads nothing at run time, so a job runs
the same way on- and offline. Any other runner (DataflowRunner, FlinkRunner, PrismRunner named
explicitly, ...) is Beam's own.
"""

from typing import Sequence

import apache_beam as beam
from apache_beam.options import pipeline_options

from tasks.user_error import UserError

# Beam's names for its default local runner ('direct' is its short form; 'SwitchingDirectRunner'
# is the class DirectRunner names).
_DIRECT_RUNNER_NAMES = frozenset({'direct', 'directrunner', 'switchingdirectrunner'})


def runs_in_process(options: pipeline_options.PipelineOptions) -> bool:
  """Whether the options name no runner or Beam's DirectRunner (by name or class path)."""
  name = options.view_as(pipeline_options.StandardOptions).runner
  return name is None or name.rsplit('.', 1)[-1].lower() in _DIRECT_RUNNER_NAMES


def new_pipeline(options: pipeline_options.PipelineOptions) -> beam.Pipeline:
  """A pipeline on `options`; DirectRunner (the default) as the FnApiRunner in this process."""
  if not runs_in_process(options):
    return beam.Pipeline(options=options)
  # Imported here: the FnApiRunner's modules load only for the jobs that run on it.
  from apache_beam.portability.api import beam_provision_api_pb2  # pylint: disable=g-import-not-at-top
  from apache_beam.runners.portability import portable_runner  # pylint: disable=g-import-not-at-top
  from apache_beam.runners.portability.fn_api_runner import fn_runner  # pylint: disable=g-import-not-at-top

  # As Beam's DirectRunner builds it: the options reach the workers of
  # --direct_running_mode=multi_processing through the provision info.
  encoded = portable_runner.JobServiceHandle.encode_pipeline_options(options.get_all_options())
  provision = fn_runner.ExtendedProvisionInfo(
    beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
  )
  return beam.Pipeline(runner=fn_runner.FnApiRunner(provision_info=provision), options=options)


def check_options(args: Sequence[str], where: str) -> None:
  """UserError, before any work, when Beam refuses the options of a job (`where` names them for
  the user, e.g. 'the Beam options after --'): a runner it does not know, or one whose options it
  rejects (DataflowRunner without its project, region or GCS paths). Beam would say so in a
  traceback once the job's output directory exists."""
  options = pipeline_options.PipelineOptions(list(args))
  if runs_in_process(options):
    return
  try:
    new_pipeline(options)  # creates the runner, which validates its options; submits nothing
  except (ValueError, ImportError) as e:
    name = options.view_as(pipeline_options.StandardOptions).runner
    raise UserError(f'{where} (--runner={name}): {" ".join(str(e).split())}') from e
