r"""Data-pipeline benchmark: YFCC joint-signal task, TSV -> padded token batches.

  python benchmarks/data_pipeline.py [--rows 20000] [--batch 256] [--langid]

Writes made-up rows in the multimedia-commons layout (.bz2), trains a small
SentencePiece model on generated text, then times seqio + LiTFeatureConverter
batches (text only: no image decode) and prints examples/s as JSON.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

import seqio

import gin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'tests')]

import spm_fixture  # noqa: E402  pylint: disable=g-import-not-at-top
import task_files  # noqa: E402

from tasks import (  # noqa: E402
  feature_converter,  # noqa: E402
  yfcc,  # noqa: E402
)


def write_rows(path, n, seed=0):
  rng = random.Random(seed)
  words = spm_fixture.sample_sentences(1, seed)[0].split() + spm_fixture._WORDS  # pylint: disable=protected-access
  sentence = lambda k: ' '.join(rng.choice(words) for _ in range(rng.randint(1, k)))
  rows = [
    task_files.yfcc_row(
      10**9 + i,
      sentence(6),
      f'<p>{sentence(30)}</p> http://x.org/{i}',
      [sentence(2) for _ in range(rng.randint(0, 8))],
      line=i,
    )
    for i in range(n)
  ]
  return task_files.write_lines(path, rows)


def run(rows: int, batch: int, langid: bool, length: int = 16) -> dict:
  with tempfile.TemporaryDirectory() as d:
    write_rows(os.path.join(d, 'yfcc.tsv.bz2'), rows)
    spm = spm_fixture.train_tiny_spm(
      os.path.join(d, 'spm'), vocab_size=1000, sentences=spm_fixture.sample_sentences(5000)
    )
    gin.bind_parameter('tasks.vocabularies.vocabulary.path', spm)
    yfcc.register_yfcc(os.path.join(d, 'yfcc.tsv.bz2'), detect_languages=langid)
    lengths = {'title': length, 'description': length, 'tags': length}
    ds = seqio.get_mixture_or_task('yfcc100m_full').get_dataset(
      lengths, split='train', shuffle=False, seed=0, num_epochs=1
    )
    ds = feature_converter.LiTFeatureConverter()(ds, lengths).batch(batch)
    start, n, first = time.perf_counter(), 0, None
    for b in ds.as_numpy_iterator():
      n += len(b['title'])
      first = first or time.perf_counter() - start
    total = time.perf_counter() - start
  return {
    'rows': rows,
    'examples': n,
    'batch': batch,
    'langid': langid,
    'seconds': round(total, 2),
    'first_batch_s': round(first, 2),
    'examples_per_s': round(n / total, 1),
    'steady_examples_per_s': round((n - batch) / max(total - first, 1e-9), 1),
  }


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--rows', type=int, default=20000)
  p.add_argument('--batch', type=int, default=256)
  p.add_argument('--langid', action='store_true', help='include langdetect per signal')
  args = p.parse_args(argv)
  print(json.dumps(run(args.rows, args.batch, args.langid)))
  return 0


if __name__ == '__main__':
  sys.exit(main())
