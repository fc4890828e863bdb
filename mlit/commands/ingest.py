r"""`mlit ingest`: join metadata and image shards into mlit's TFRecord shards (Apache Beam).

  mlit ingest --images 'cc12m/{00000..00999}.tar' --metadata cc12m.tsv --format cc12m \
      --shard_key url --language en --output gs://bucket/cc12m_mlit --num_shards 1024 \
      -- --runner=DataflowRunner --project=... --region=...

Images: webdataset tars (`{key}.jpg|png|webp` + `.txt` + `.json`, as img2dataset writes them),
img2dataset TFRecords or mlit's own shards (comma-separated patterns). Metadata: a YFCC, CC12M or
WIT TSV pattern joined by id (--shard_key: the sample key, 'url' = SHA-1 of the json url as the
CC12M/WIT tasks use, or a json field such as an extra column saved by img2dataset), or --format
none to take each sample's own caption. Output: shards-NNNNN-of-MMMMM.tfrecord (features
example_id, image, language and the texts), each with a .json sidecar, and manifest.json (counts,
skipped rows per reason, sizes, languages). Rerunning skips completed shards. Arguments after `--`
are Beam pipeline options (DirectRunner by default). Train on the result with
tasks.shard_tasks.register_image_shards, or pre-compute embeddings from it.
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'ingest')  # `python -m`: the command, before the heavy imports

import argparse
import json
import os
import sys
import time

import tensorflow as tf
from apache_beam.metrics import metric
from apache_beam.options import pipeline_options

from mlit.ingest import pipeline as ingest_pipeline
from mlit.ingest import shards as shard_io
from tasks import beam_pipeline, data_stats, file_io
from tasks.user_error import UserError


def _counters(result) -> dict:
  query = result.metrics().query(
    metric.MetricsFilter().with_namespace(ingest_pipeline.METRICS_NAMESPACE)
  )
  out = {}
  for counter in query['counters']:
    name = counter.key.metric.name
    value = counter.committed if counter.committed is not None else counter.attempted
    out[name] = out.get(name, 0) + value
  return out


def _metadata_skips(counters: dict) -> dict:
  return {k.split('/', 1)[1]: v for k, v in counters.items() if k.startswith('skipped/')}


# Rows and images neither kept nor skipped: with examples and skipped_rows they account for every
# row read (a duplicate row's first copy is kept, the others counted here).
_ALSO_COUNTED = ('duplicate_rows', 'duplicate_images', 'images_without_metadata')
_SAMPLE_COUNTS = ('image_samples_read', 'image_samples_without_id')


# Format-specific settings, recorded only for their format; a manifest written before they were
# recorded has no value to compare.
_FORMAT_SETTINGS = {'wit_kind': 'wit', 'detect_languages': 'yfcc'}


def run_settings(
  images,
  metadata,
  metadata_format,
  shard_key,
  language,
  wit_kind='reference',
  detect_languages=True,
) -> dict:
  given = {'wit_kind': wit_kind, 'detect_languages': detect_languages}
  return {
    'images': images,
    'metadata': metadata,
    'format': metadata_format,
    'shard_key': shard_key,
    'language': language,
    'text_features': list(ingest_pipeline.text_features(metadata_format)),
    **{k: given[k] for k, fmt in _FORMAT_SETTINGS.items() if fmt == metadata_format},
  }


def output_conflict(output_dir: str, run: dict, num_shards: int) -> str:
  """Why `output_dir` cannot take this run (made with other settings), or ''."""
  path = f'{output_dir}/{shard_io.MANIFEST}'
  if not tf.io.gfile.exists(path):
    return ''
  old = shard_io.read_json(path)
  now = run | {'num_shards': num_shards}
  changed = [k for k in now if old.get(k) != now[k] and (k in old or k not in _FORMAT_SETTINGS)]
  if 'format' in changed:  # text_features follows from the format: naming it too is noise
    changed = [k for k in changed if k != 'text_features']
  if not changed:
    return ''
  what = '; '.join(f'{k} {old.get(k)!r} then, {now[k]!r} now' for k in changed)
  return f'{path} was made with other settings ({what}): use another --output'


def _remove_empty_output(output_dir: str, num_shards: int, created_dir: bool) -> None:
  """A run that kept no example leaves nothing behind: its manifest would refuse the corrected
  command in the same --output. Every shard is empty then, so nothing of value goes."""
  for i in range(num_shards):
    for path in (
      f'{output_dir}/{shard_io.shard_name(i, num_shards)}',
      shard_io.sidecar_path(output_dir, i, num_shards),
    ):
      if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)
  manifest_path = f'{output_dir}/{shard_io.MANIFEST}'
  if tf.io.gfile.exists(manifest_path):
    tf.io.gfile.remove(manifest_path)
  if created_dir and not tf.io.gfile.listdir(output_dir):
    tf.io.gfile.rmtree(output_dir)


def ingest(
  images: str,
  output_dir: str,
  *,
  num_shards: int,
  metadata: str = '',
  metadata_format: str = 'none',
  shard_key: str = 'key',
  language: str = '',
  wit_kind: str = 'reference',
  detect_languages: bool = True,
  beam_args=(),
) -> dict:
  """Runs the pipeline for the shards not yet complete; writes and returns the manifest. A run
  that kept no example removes its shards and writes no manifest (the caller reports it)."""
  if (metadata_format == 'none') != (not metadata):
    raise ValueError('--metadata needs --format yfcc|cc12m|wit, and --format needs --metadata')
  image_files = file_io.expand_patterns(images)
  metadata_files = file_io.expand_patterns(metadata) if metadata else []
  run = run_settings(
    images, metadata, metadata_format, shard_key, language, wit_kind, detect_languages
  )
  conflict = output_conflict(output_dir, run, num_shards)
  if conflict:
    raise ValueError(conflict)
  created_dir = not tf.io.gfile.exists(output_dir)
  tf.io.gfile.makedirs(output_dir)
  manifest_path = f'{output_dir}/{shard_io.MANIFEST}'
  done = shard_io.complete_shards(output_dir, num_shards)
  cfg = ingest_pipeline.IngestConfig(
    output_dir=output_dir,
    num_shards=num_shards,
    metadata_format=metadata_format,
    shard_key=shard_key,
    language=language,
    wit_kind=wit_kind,
    detect_languages=detect_languages,
    todo=frozenset(set(range(num_shards)) - done),
  )
  start = time.time()
  if cfg.todo or not tf.io.gfile.exists(manifest_path):
    p = beam_pipeline.new_pipeline(pipeline_options.PipelineOptions(list(beam_args)))
    ingest_pipeline.build_pipeline(p, cfg, image_files, metadata_files)
    result = p.run()
    result.wait_until_finish()
    counters = _counters(result)
    metadata_skips = _metadata_skips(counters)
  else:  # every shard complete: nothing to read again
    counters = {}
    metadata_skips = shard_io.read_json(manifest_path)['metadata_skipped_rows']
  manifest = shard_io.build_manifest(output_dir, num_shards, run, metadata_skips)
  manifest['last_run'] = {
    'shards_written': len(cfg.todo),
    'shards_already_complete': len(done),
    'seconds': round(time.time() - start, 2),
    'image_samples_read': counters.get('samples_read', 0),
    'image_samples_without_id': counters.get('samples_without_id', 0),  # no --shard_key in them
  }
  if not manifest['examples']:
    _remove_empty_output(output_dir, num_shards, created_dir)
    return manifest
  shard_io.write_json(manifest_path, manifest)
  return manifest


def _unrecognized(extra, argv) -> str:
  """argparse's line, with the likely cause when the extra arguments are files: the shell expanded
  an unquoted --images or --metadata pattern (its first file became the flag's value)."""
  text = f'unrecognized arguments: {" ".join(extra)}'
  if not all(os.path.exists(e) for e in extra):
    return text
  before = argv[: argv.index(extra[0])]
  flag = next((a for a in reversed(before) if a.startswith('--')), '--images')
  pattern = os.path.join(os.path.dirname(extra[0]), '*' + os.path.splitext(extra[0])[1])
  return (
    f'{text}: files, so the shell expanded an unquoted {flag} pattern; quote it for mlit to '
    f"expand, e.g. {flag} '{pattern}'"
  )


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  split = argv.index('--') if '--' in argv else len(argv)
  parser = argparse.ArgumentParser(
    prog='mlit ingest', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument('--images', required=True, help='image shard pattern(s), comma-separated')
  parser.add_argument('--output', required=True, help='output directory (local or gs://)')
  parser.add_argument('--num_shards', type=int, required=True, help='output TFRecord shards')
  parser.add_argument('--metadata', default='', help='metadata TSV pattern(s)')
  parser.add_argument(
    '--format',
    default='none',
    choices=ingest_pipeline.METADATA_FORMATS,
    help='layout of --metadata (default none: images only)',
  )
  parser.add_argument(
    '--shard_key',
    default='key',
    help="what joins an image to its metadata row: 'key', 'url' or a json field (default key)",
  )
  parser.add_argument(
    '--language', default='', help="language of rows that carry none (default: none, '')"
  )
  parser.add_argument(
    '--wit_kind',
    choices=('reference', 'attribution', 'alt_text'),
    help='--format wit: which description is the text (default reference)',
  )
  parser.add_argument(
    '--no_detect_languages',
    action='store_true',
    help='--format yfcc: skip langdetect (rows then take --language)',
  )
  args, extra = parser.parse_known_args(argv[:split])
  if extra:
    parser.error(_unrecognized(extra, argv[:split]))
  # A format-specific flag given with another format would do nothing: say so instead.
  for flag, given, fmt in (
    ('--wit_kind', args.wit_kind is not None, 'wit'),
    ('--no_detect_languages', args.no_detect_languages, 'yfcc'),
  ):
    if given and args.format != fmt:
      parser.error(f'{flag} applies to --format {fmt} only, not --format {args.format}')
  if args.num_shards < 1:
    parser.error(f'--num_shards must be >= 1, got {args.num_shards}')
  if (args.format == 'none') != (not args.metadata):
    parser.error('--metadata needs --format yfcc|cc12m|wit, and --format needs --metadata')
  try:
    beam_pipeline.check_options(argv[split + 1 :], 'the Beam options after --')
  except UserError as e:
    parser.error(str(e))
  run = run_settings(
    args.images,
    args.metadata,
    args.format,
    args.shard_key,
    args.language,
    args.wit_kind or 'reference',
    not args.no_detect_languages,
  )
  try:
    conflict = output_conflict(args.output, run, args.num_shards)
  except tf.errors.OpError as e:  # gs:// unreachable or without credentials, an unknown scheme
    parser.error(f'--output {args.output}: cannot be read: {e.message}')
  if conflict:
    parser.error(conflict)
  manifest = ingest(
    args.images,
    args.output,
    num_shards=args.num_shards,
    metadata=args.metadata,
    metadata_format=args.format,
    shard_key=args.shard_key,
    language=args.language,
    wit_kind=args.wit_kind or 'reference',
    detect_languages=not args.no_detect_languages,
    beam_args=argv[split + 1 :],
  )
  summary = {
    k: manifest[k]
    for k in ('examples', 'bytes', 'skipped_rows', 'num_shards', 'last_run', *_ALSO_COUNTED)
  }
  print(json.dumps(summary, sort_keys=True))
  if not manifest['examples']:
    skipped = data_stats.reasons_text(manifest['skipped_rows'])
    read, without_id = (manifest['last_run'][k] for k in _SAMPLE_COUNTS)
    check = "Check --format, --shard_key and that the images are the metadata rows'"
    if read and without_id == read:  # e.g. --shard_key naming a json field the samples lack
      check = f'none of the {read:,} image samples has a {args.shard_key!r} (--shard_key)'
    raise UserError(
      f'ingest wrote no example to {args.output}: every row was skipped ({skipped or "none read"})'
      f'; the empty shards were removed. {check}'
    )
  return 0
