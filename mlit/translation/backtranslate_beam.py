r"""The backtranslation job as an Apache Beam pipeline, for corpora that outgrow one machine.

  python -m mlit.translation.backtranslate_beam --input 'captions-*.tsv' --out gs://bucket/bt --source en \
      --pivots es,ca --backend apertium -- --runner=DataflowRunner --project=... --region=...

Arguments after `--` are Beam pipeline options (DirectRunner by default). On a distributed runner,
every worker needs the translator: for apertium, a custom container with the Debian packages
(`apertium apertium-eng-spa ...`); for transformers, the model directory on every worker.
Records and the quality filter are those of the single-machine job (mlit/translation/backtranslation.py).
"""

import argparse
import json
import sys

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options import pipeline_options

from mlit.translation import backends as translation_backends
from mlit.translation import backtranslate_job as single_machine
from mlit.translation import backtranslation as backtranslation_core
from tasks import beam_pipeline
from tasks.user_error import UserError

_REJECTED = 'rejected'
_FAILURES = 'failures'


class _ParseRow(beam.DoFn):
  def __init__(self, is_jsonl, source):
    self.is_jsonl, self.source = is_jsonl, source

  def process(self, raw):
    parsed = single_machine.parse_row(raw, self.is_jsonl, self.source)
    if isinstance(parsed, str):
      beam.metrics.Metrics.counter('backtranslate', 'rejected_rows').inc()
      yield beam.pvalue.TaggedOutput(
        _REJECTED, {'reason': parsed, 'row': raw[:200].decode('utf-8', 'replace')}
      )
    elif parsed is not None:
      beam.metrics.Metrics.counter('backtranslate', 'texts').inc()
      yield parsed


class _OneRowPerId(beam.DoFn):
  """(id, its texts) -> (id, text), as the single-machine job's read_texts decides: the later
  copies of an id's one text and every row of an id with several texts are rejected."""

  def process(self, item):
    example_id, texts = item
    texts = list(texts)
    if len(set(texts)) > 1:
      reason = (
        f'duplicate_id: id {example_id!r} is on {len(texts)} rows with different texts: which '
        'text its round trips would belong to is unknown, so none is translated'
      )
      rejected = texts
    else:
      reason = 'duplicate_row: the id and text of another row, translated once'
      rejected = texts[1:]
      yield example_id, texts[0]
    for text in rejected:
      beam.metrics.Metrics.counter('backtranslate', 'rejected_rows').inc()
      beam.metrics.Metrics.counter('backtranslate', 'texts').dec()
      yield beam.pvalue.TaggedOutput(
        _REJECTED, {'reason': reason, 'row': f'{example_id}\t{text}'[:200]}
      )


class _Backtranslate(beam.DoFn):
  """Translates a batch of (id, text); the backend is built once per worker."""

  def __init__(self, backend_spec, source, pivots, quality, retries):
    self.backend_spec = backend_spec
    self.source = source
    self.pivots = pivots
    self.quality = quality
    self.retries = retries
    self.backend = None

  def setup(self):
    self.backend = translation_backends.make_backend(self.backend_spec)

  def process(self, batch):
    ids, texts = zip(*batch)
    records, failures = backtranslation_core.backtranslate_batch(
      self.backend,
      ids,
      texts,
      source=self.source,
      pivots=self.pivots,
      quality=self.quality,
      retries=self.retries,
    )
    for failure in failures:
      yield beam.pvalue.TaggedOutput(_FAILURES, failure)
    yield from records


class _SummaryFn(beam.CombineFn):
  def create_accumulator(self):
    return {}

  def add_input(self, accumulator, record):
    return backtranslation_core.merge_summaries(
      accumulator, backtranslation_core.summarise([record], [])
    )

  def merge_accumulators(self, accumulators):
    out = {}
    for a in accumulators:
      out = backtranslation_core.merge_summaries(out, a)
    return out

  def extract_output(self, accumulator):
    return backtranslation_core.finalise_summary(accumulator)


def build_pipeline(
  pipeline,
  input_pattern,
  out_prefix,
  *,
  source,
  pivots,
  backend_spec,
  quality=backtranslation_core.QualityFilter(),
  retries=2,
  batch_size=64,
):
  """Adds the job to `pipeline`; writes <out>/candidates-*.jsonl, failures, rejected, summary."""
  is_jsonl = input_pattern.endswith(('.jsonl', '.json'))
  rows = (
    pipeline
    | 'Read' >> beam.io.ReadFromText(input_pattern, coder=beam.coders.BytesCoder())
    | 'Parse' >> beam.ParDo(_ParseRow(is_jsonl, source)).with_outputs(_REJECTED, main='rows')
  )
  unique = (
    rows.rows
    | 'ById' >> beam.GroupByKey()
    | 'OneRowPerId' >> beam.ParDo(_OneRowPerId()).with_outputs(_REJECTED, main='rows')
  )
  results = (
    unique.rows
    | 'Batch' >> beam.BatchElements(min_batch_size=1, max_batch_size=batch_size)
    | 'Backtranslate'
    >> beam.ParDo(_Backtranslate(backend_spec, source, pivots, quality, retries)).with_outputs(
      _FAILURES, main='records'
    )
  )

  def write(pcoll, name, shard_template=None):
    kwargs = {'shard_name_template': shard_template} if shard_template is not None else {}
    return (
      pcoll
      | f'Json{name}' >> beam.Map(lambda x: json.dumps(x, ensure_ascii=False))
      | f'Write{name}'
      >> beam.io.WriteToText(f'{out_prefix}/{name}', file_name_suffix='.jsonl', **kwargs)
    )

  write(results.records, 'candidates')
  write(results[_FAILURES], 'failures')
  write((rows[_REJECTED], unique[_REJECTED]) | 'Rejected' >> beam.Flatten(), 'rejected_rows')
  summary = results.records | 'Summarise' >> beam.CombineGlobally(_SummaryFn())
  (
    summary
    # 'source' tells the training-time substitution which texts the round trips fit.
    | 'JsonSummary'
    >> beam.Map(lambda s: json.dumps({'source': source, 'pivots': s}, indent=2, ensure_ascii=False))
    | 'WriteSummary' >> beam.io.WriteToText(f'{out_prefix}/summary.json', shard_name_template='')
  )


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  beam_args = argv[argv.index('--') + 1 :] if '--' in argv else []
  own_args = argv[: argv.index('--')] if '--' in argv else argv
  parser = argparse.ArgumentParser(
    prog='mlit backtranslate-beam',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    allow_abbrev=False,  # --pivot for --pivots would be taken silently, the last one winning
  )
  parser.add_argument('--input', required=True, help='file pattern of TSV or JSONL inputs')
  parser.add_argument('--out', required=True, help='output directory prefix')
  single_machine.add_translation_flags(parser)
  args = parser.parse_args(own_args)
  pivots = single_machine.parse_pivots(args)
  try:
    beam_pipeline.check_options(beam_args, 'the Beam options after --')
  except UserError as e:
    parser.error(str(e))
  options = pipeline_options.PipelineOptions(beam_args)
  pipeline = beam_pipeline.new_pipeline(options)
  build_pipeline(
    pipeline,
    args.input,
    args.out,
    source=args.source,
    pivots=pivots,
    backend_spec=args.backend,
    quality=backtranslation_core.QualityFilter(args.min_chrf, args.max_chrf),
    batch_size=args.batch_size,
  )
  result = pipeline.run()
  result.wait_until_finish()
  counts = _counters(result)
  if not counts.get('texts'):  # an empty job is a wrong input, not a success
    rejected = counts.get('rejected_rows', 0)
    parser.exit(
      2,
      f'{parser.prog}: error: no texts read from {args.input} ({rejected} rows rejected: see '
      f'{args.out}/rejected_rows-*.jsonl)\n',
    )
  return 0


def _counters(result) -> dict:
  query = result.metrics().query(MetricsFilter().with_namespace('backtranslate'))
  return {
    c.key.metric.name: c.committed if c.committed is not None else c.attempted
    for c in query['counters']
  }


if __name__ == '__main__':
  sys.exit(main())
