r"""Data-pipeline benchmark: YFCC joint-signal task, TSV -> padded token batches.

  python -m benchmarks.data_pipeline [--rows 20000] [--batch 256] [--langid]

Writes made-up rows in the multimedia-commons layout (.bz2), trains a small
SentencePiece model on generated text, then times seqio + LiTFeatureConverter
batches (text only: no image decode) and prints examples/s as JSON.
"""

import argparse
import bz2
import hashlib
import json
import os
import random
import sys
import tempfile
import time
import urllib.parse

import seqio

import gin
from benchmarks import generated_text
from tasks import feature_converter, yfcc, yfcc_source


def yfcc_row(line: int, photo_id: int, title: str, description: str, tags: list[str]) -> str:
  """One made-up metadata row in the multimedia-commons layout (free text URL-encoded)."""
  q = urllib.parse.quote_plus
  cols = [
    str(line),
    str(photo_id),
    hashlib.md5(str(photo_id).encode()).hexdigest(),
    '12345678@N00',
    'maker',
    '2010-05-01 10:00:00.0',
    '1273000000',
    'Canon+EOS',
    q(title),
    q(description),
    ','.join(q(t) for t in tags),
    '',
    '8.54',
    '47.37',
    '16',
    f'http://www.flickr.com/photos/x/{photo_id}/',
    f'http://farm5.staticflickr.com/1/{photo_id}_abc.jpg',
    'Attribution License',
    'http://creativecommons.org/licenses/by/2.0/',
    '1',
    '5',
    'abc',
    'def',
    'jpg',
    '0',
  ]
  if not yfcc_source.fits(cols, yfcc_source.MULTIMEDIA_COMMONS):
    raise AssertionError("the made-up row no longer fits the reader's multimedia-commons layout")
  return '\t'.join(cols)


def write_rows(path, n, seed=0):
  rng = random.Random(seed)
  sentence = lambda k: ' '.join(rng.choice(generated_text.WORDS) for _ in range(rng.randint(1, k)))
  with bz2.open(path, 'wt', encoding='utf-8') as f:
    for i in range(n):
      tags = [sentence(2) for _ in range(rng.randint(0, 8))]
      description = f'<p>{sentence(30)}</p> http://x.org/{i}'
      f.write(yfcc_row(i, 10**9 + i, sentence(6), description, tags) + '\n')
  return path


def run(rows: int, batch: int, langid: bool, length: int = 16) -> dict:
  with tempfile.TemporaryDirectory() as d:
    write_rows(os.path.join(d, 'yfcc.tsv.bz2'), rows)
    spm = generated_text.train_spm(os.path.join(d, 'spm'), vocab_size=1000, n_texts=5000)
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
    # After the first batch; undefined (None) when the data gave only one batch.
    'steady_examples_per_s': round((n - batch) / (total - first), 1) if n > batch else None,
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
