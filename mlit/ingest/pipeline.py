"""The `mlit ingest` Beam pipeline: metadata rows + image shards -> mlit's TFRecord shards.

Metadata (YFCC, CC12M or WIT TSVs, read by the tasks' own readers, so rows are cleaned and
malformed rows counted exactly as in training) and image samples (webdataset tars, img2dataset or
mlit TFRecords) are keyed by example id and joined with CoGroupByKey. Each id goes to shard
sha1(id) mod num_shards; a shard's records are sorted by id, so reruns write the same bytes.
Shards an earlier run completed are filtered out before the join (resume). With metadata 'none'
the samples' own captions are the texts (img2dataset output as it comes).
"""

import collections
import dataclasses
import sys
import threading
import time
from typing import Optional

import apache_beam as beam
from absl import logging

from mlit import job_progress
from mlit.ingest import shards as shard_io
from tasks import cc12m, data_stats, image_shards, langid, signals, wit, yfcc_source

METRICS_NAMESPACE = 'mlit.ingest'
METADATA_FORMATS = ('yfcc', 'cc12m', 'wit', 'none')
_STATS = 'stats'


def text_features(metadata_format: str) -> tuple:
  return signals.SIGNALS if metadata_format == 'yfcc' else ('text',)


@dataclasses.dataclass(frozen=True)
class IngestConfig:
  output_dir: str
  num_shards: int
  metadata_format: str = 'none'
  shard_key: str = 'key'  # the samples' id: key, 'url' (url_id of the json url) or a json field
  language: str = ''  # for rows that carry none (CC12M is English: 'en')
  wit_kind: str = 'reference'
  detect_languages: bool = True  # YFCC: langdetect per signal, as the YFCC tasks do
  todo: frozenset = frozenset()  # shard indices to (re)write

  def __post_init__(self):
    if self.metadata_format not in METADATA_FORMATS:
      raise ValueError(f'metadata format {self.metadata_format!r} not in {METADATA_FORMATS}')


_MAX_LOGGED_WITHOUT_ID = 5  # warnings per reader; the samples_without_id counter has them all
PROGRESS_EVERY_S = 30.0  # a job of seconds prints no progress line


class _Phase:
  """Progress lines on stderr as the work is done (image files read, shards written): done of
  total, items/s and ETA, at most one per PROGRESS_EVERY_S, and the phase's end once one was
  printed. Counted per process: with DirectRunner, mlit's default, this one runs the whole job; a
  distributed runner's workers each count their own (its UI shows the job's)."""

  def __init__(self, total: int, unit: str, item: str, already_done: int = 0):
    self.progress = job_progress.Progress(total, unit)
    self.progress.skip(already_done)  # a resumed job's complete shards count as done
    self.item, self.items = item, 0
    self.start = self.last_line = time.monotonic()
    self.printed = False
    self.lock = threading.Lock()  # Beam's multi_threading mode runs DoFns in threads

  def done(self, items: int, what: str) -> None:
    with self.lock:
      self.progress.advance()
      self.items += items
      now = time.monotonic()
      finished = self.progress.done == self.progress.total
      if now - self.last_line < PROGRESS_EVERY_S and not (finished and self.printed):
        return
      rate = f'{self.items / max(now - self.start, 1e-9):.1f} {self.item}/s'
      print(
        f'mlit ingest: {self.progress.line(rate_text=rate)} ({what})', file=sys.stderr, flush=True
      )
      self.last_line, self.printed = now, True


_PHASES: dict = {}  # name -> _Phase of the pipeline being run in this process


def _phase(name: str, *args) -> _Phase:
  """The phase `name`, made with _Phase(*args) by the first DoFn set up for it."""
  if name not in _PHASES:
    _PHASES[name] = _Phase(*args)
  return _PHASES[name]


def read_metadata(path: str, cfg: IngestConfig):
  if cfg.metadata_format == 'yfcc':
    return yfcc_source.YfccReader(detect_languages=cfg.detect_languages)(path)
  if cfg.metadata_format == 'cc12m':
    return cc12m.read_cc12m(path)
  return wit.read_wit(path, cfg.wit_kind)


class _ReadMetadata(beam.DoFn):
  """(shard, id) -> row for rows of shards still to write; skipped rows become metrics."""

  def __init__(self, cfg: IngestConfig):
    self.cfg = cfg

  def process(self, path):
    with data_stats.capture() as skipped:
      for row in read_metadata(path, self.cfg):
        shard = shard_io.shard_of(row['example_id'], self.cfg.num_shards)
        if shard in self.cfg.todo:
          yield (shard, row['example_id']), row
    for reason, n in skipped.items():
      beam.metrics.Metrics.counter(METRICS_NAMESPACE, f'skipped/{reason}').inc(n)


class _ReadImages(beam.DoFn):
  """(shard, id) -> Sample for every sample of one image shard."""

  def __init__(self, cfg: IngestConfig, num_files: int):
    self.cfg, self.num_files = cfg, num_files

  def setup(self):  # the clock starts with the phase's work
    self.progress = _phase('read', self.num_files, 'image files read', 'samples')
    self.without_id = 0

  @staticmethod
  def _damaged(error):  # the samples before the damage go on
    data_stats.skip('damaged_shard', str(error))
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'skipped/damaged_shard').inc()

  def process(self, path):
    samples = 0
    for sample in image_shards.read_samples(path, on_damage=self._damaged):
      samples += 1
      image_id = image_shards.sample_id(sample, self.cfg.shard_key)
      if image_id is None:
        if self.cfg.metadata_format == 'none':  # the sample is the row: a row without an id
          data_stats.skip(
            'bad_field', f'{sample.where}: no {self.cfg.shard_key!r} to use as the id'
          )
          beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'skipped/bad_field').inc()
        elif self.without_id < _MAX_LOGGED_WITHOUT_ID:  # a wrong --shard_key misses every one
          logging.warning('image sample without a %r at %s', self.cfg.shard_key, sample.where)
        self.without_id += 1
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'samples_without_id').inc()
        continue
      shard = shard_io.shard_of(image_id, self.cfg.num_shards)
      if shard in self.cfg.todo:
        yield (shard, image_id), sample
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'samples_read').inc(samples)
    self.progress.done(samples, f'{path}: {samples:,} samples')


class _Join(beam.DoFn):
  """One id's rows and samples -> (shard, (id, record)), or (shard, counted reason) as 'stats'."""

  def __init__(self, cfg: IngestConfig):
    self.cfg = cfg

  def process(self, element):
    (shard, example_id), grouped = element
    samples = sorted(grouped['image'], key=lambda s: s.where)
    rows = sorted(grouped['row'], key=lambda r: sorted(r.items()))
    stat = lambda name: beam.pvalue.TaggedOutput(_STATS, (shard, name))
    if len(samples) > 1:
      yield stat('duplicate_images')
    if len(rows) > 1:
      yield stat('duplicate_rows')
    if self.cfg.metadata_format == 'none':
      rows = [_row_from_sample(example_id, samples[0])]
    elif not rows:
      yield stat('images_without_metadata')
      return
    if not samples:
      data_stats.skip('missing_image', f'id {example_id}: no image sample has it')
      yield stat('skipped/missing_image')
      return
    problem = image_shards.image_problem(samples[0])
    if problem is not None:
      data_stats.skip(*problem)  # logs the first few of each reason, naming shard and key
      yield stat(f'skipped/{problem[0]}')
      return
    row = rows[0]
    if not any(row.get(t) for t in text_features(self.cfg.metadata_format)):
      if self.cfg.metadata_format == 'none' and samples[0].text_problem:
        data_stats.skip('invalid_utf8', samples[0].text_problem)
        yield stat('skipped/invalid_utf8')
      else:
        data_stats.skip('all_signals_empty', f'{samples[0].where}: no text')
        yield stat('skipped/all_signals_empty')
      return
    language = row.get('language') or self.cfg.language or langid.UNDETERMINED
    record = {**row, 'language': language, image_shards.PROJECT_IMAGE: samples[0].image}
    yield shard, (example_id, image_shards.project_example(record), language, len(samples[0].image))


def _row_from_sample(example_id: str, sample: image_shards.Sample) -> dict:
  text = (sample.text or sample.meta.get('caption') or '').strip()
  row = {'example_id': example_id, 'text': text}
  if sample.meta.get('language'):
    row['language'] = str(sample.meta['language'])
  return row


class _WriteShard(beam.DoFn):
  def __init__(self, cfg: IngestConfig):
    self.cfg = cfg

  def setup(self):
    done = self.cfg.num_shards - len(self.cfg.todo)
    self.progress = _phase('write', self.cfg.num_shards, 'shards written', 'examples', done)

  def process(self, element):
    shard, grouped = element
    records = list(grouped['records'])
    names = collections.Counter(grouped['stats'])
    languages = collections.Counter(language for _, _, language, _ in records)
    image_bytes = sum(n for _, _, _, n in records)
    stats = {
      'skipped_rows': {
        k.split('/', 1)[1]: n for k, n in sorted(names.items()) if k.startswith('skipped/')
      },
      'images_without_metadata': names['images_without_metadata'],
      'duplicate_images': names['duplicate_images'],
      'duplicate_rows': names['duplicate_rows'],
      'image_bytes': image_bytes,
      'languages': dict(sorted(languages.items())),
    }
    shard_io.write_shard(
      self.cfg.output_dir, shard, self.cfg.num_shards, [r[:2] for r in records], stats
    )
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'shards_written').inc()
    self.progress.done(len(records), f'shard {shard:05d}: {len(records):,} examples')
    yield shard


def build_pipeline(
  pipeline, cfg: IngestConfig, image_files: list, metadata_files: Optional[list] = None
):
  """Adds the ingest to `pipeline`; the shards in cfg.todo are written when it runs."""
  _PHASES.clear()  # a new job's progress, also in a process that ran one before
  samples = (
    pipeline
    | 'ImageShards' >> beam.Create(sorted(image_files))
    | 'Reshuffle' >> beam.Reshuffle()
    | 'ReadImages' >> beam.ParDo(_ReadImages(cfg, len(image_files)))
  )
  inputs = {'image': samples}
  if cfg.metadata_format != 'none':
    inputs['row'] = (
      pipeline
      | 'MetadataFiles' >> beam.Create(sorted(metadata_files or []))
      | 'ReadMetadata' >> beam.ParDo(_ReadMetadata(cfg))
    )
  else:
    inputs['row'] = pipeline | 'NoMetadata' >> beam.Create([])
  joined = (
    inputs
    | 'JoinById' >> beam.CoGroupByKey()
    | 'Join' >> beam.ParDo(_Join(cfg)).with_outputs(_STATS, main='records')
  )
  every_shard = pipeline | 'TodoShards' >> beam.Create(sorted(cfg.todo))
  return (
    {
      'records': joined.records,
      'stats': joined[_STATS],
      'all': every_shard | 'KeyShards' >> beam.Map(lambda i: (i, None)),
    }
    | 'GroupByShard' >> beam.CoGroupByKey()
    | 'WriteShards' >> beam.ParDo(_WriteShard(cfg))
  )
