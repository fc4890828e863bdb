"""A seqio data source whose files are parsed row by row in Python.

Parsing in Python (csv quoting, percent-decoding, langdetect) lets every malformed
row be skipped and counted by reason (tasks.data_stats) instead of failing the
pipeline. Each file is one shard, so seqio caching (Beam) splits work by file.
"""

from typing import Callable, Iterator, Mapping

import seqio
import tensorflow as tf

from tasks import file_io

ReadRows = Callable[[str], Iterator[Mapping[str, object]]]


class RowSource(seqio.FileDataSource):
  """Yields the dicts `read_rows(path)` produces for every file of a split."""

  def __init__(self, read_rows: ReadRows,
               output_signature: Mapping[str, tf.TensorSpec],
               split_to_filepattern: Mapping[str, str], *,
               cycle_length: int = 4, caching_permitted: bool = True):
    self._read_rows = read_rows
    self._signature = dict(output_signature)

    def read_file(path: tf.Tensor) -> tf.data.Dataset:
      return tf.data.Dataset.from_generator(
          lambda p: read_rows(p.decode("utf-8")),
          output_signature=self._signature, args=(path,))

    super().__init__(read_file_fn=read_file,
                     split_to_filepattern=split_to_filepattern,
                     cycle_length=cycle_length, block_length=1,
                     caching_permitted=caching_permitted)

  @property
  def output_signature(self) -> Mapping[str, tf.TensorSpec]:
    return self._signature

  def list_shards(self, split: str) -> list[str]:
    if split not in self._split_to_filepattern:
      raise ValueError(f"split {split!r} not in {sorted(self._split_to_filepattern)}")
    return file_io.expand_patterns(self._split_to_filepattern[split])
