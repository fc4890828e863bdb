"""A seqio data source whose files are parsed row by row in Python.

Parsing in Python (csv quoting, percent-decoding, langdetect) lets every malformed
row be skipped and counted by reason (tasks.data_stats) instead of failing the
pipeline. Each file is one shard, so seqio caching (Beam) splits work by file.
"""

from typing import Callable, Iterator, Mapping

import numpy as np
import seqio
import tensorflow as tf

from tasks import data_stats, file_io

ReadRows = Callable[[str], Iterator[Mapping[str, object]]]


class RowSource(seqio.FileDataSource):
  """Yields the dicts `read_rows(path)` produces for every file of a split."""

  def __init__(
    self,
    read_rows: ReadRows,
    output_signature: Mapping[str, tf.TensorSpec],
    split_to_filepattern: Mapping[str, str],
    *,
    cycle_length: int = 4,
    caching_permitted: bool = True,
    chunk_size: int = 256,
    name: str = 'rows',
  ):
    """`name`: the source's name in data_stats.json's `corpus` (e.g. 'yfcc100m')."""
    self._read_rows = read_rows
    self._signature = dict(output_signature)

    def _counted_rows(name, path):
      return data_stats.first_pass(name, path, read_rows(path))

    # from_generator costs ~ms per element: move rows in chunks, then unbatch.
    chunked = {k: tf.TensorSpec((None, *v.shape), v.dtype) for k, v in self._signature.items()}

    def read_file(path: tf.Tensor) -> tf.data.Dataset:
      return tf.data.Dataset.from_generator(
        lambda p: _chunks(_counted_rows(name, p.decode('utf-8')), self._signature, chunk_size),
        output_signature=chunked,
        args=(path,),
      ).unbatch()

    super().__init__(
      read_file_fn=read_file,
      split_to_filepattern=split_to_filepattern,
      cycle_length=cycle_length,
      block_length=1,
      caching_permitted=caching_permitted,
    )

  @property
  def output_signature(self) -> Mapping[str, tf.TensorSpec]:
    return self._signature

  def list_shards(self, split: str) -> list[str]:
    if split not in self._split_to_filepattern:
      raise ValueError(f'split {split!r} not in {sorted(self._split_to_filepattern)}')
    return file_io.expand_patterns(self._split_to_filepattern[split])


def _chunks(rows, signature, size):
  """Groups row dicts into dicts of arrays of up to `size` rows."""
  buffer = []
  for row in rows:
    buffer.append(row)
    if len(buffer) == size:
      yield _stack(buffer, signature)
      buffer = []
  if buffer:
    yield _stack(buffer, signature)


def _stack(rows, signature):
  out = {}
  for k, spec in signature.items():
    values = [r[k] for r in rows]
    out[k] = (
      np.array(values, dtype=object)
      if spec.dtype == tf.string
      else np.stack(values).astype(spec.dtype.as_numpy_dtype)
    )
  return out
