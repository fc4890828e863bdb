"""Opening plain, .gz and .bz2 data files and writing files atomically (local or any gfile)."""

import bz2
import contextlib
import gzip
import hashlib
import io
import os
from collections.abc import Iterator
from typing import BinaryIO

import tensorflow as tf


class _GFileRaw(io.RawIOBase):
  """Gives a GFile the io.RawIOBase interface TextIOWrapper/BufferedReader need."""

  def __init__(self, gfile):
    super().__init__()
    self._f = gfile

  def readable(self):
    return True

  def readinto(self, buffer):
    data = self._f.read(len(buffer))
    buffer[: len(data)] = data
    return len(data)

  def close(self):
    self._f.close()
    super().close()


def open_binary(path: str) -> BinaryIO:
  """A binary stream of the decompressed content, chosen by the file suffix."""
  raw = io.BufferedReader(_GFileRaw(tf.io.gfile.GFile(path, 'rb')), 1 << 20)
  if path.endswith('.gz'):
    return gzip.GzipFile(fileobj=raw, mode='rb')
  if path.endswith('.bz2'):
    return bz2.BZ2File(raw, mode='rb')
  return raw


def open_text(path: str) -> io.TextIOWrapper:
  """A text stream for the csv module: undecodable bytes become surrogates.

  Rows are checked with `has_invalid_utf8` so one bad byte skips one row, not the file.
  """
  return io.TextIOWrapper(open_binary(path), encoding='utf-8', errors='surrogateescape', newline='')


def has_invalid_utf8(text: str) -> bool:
  return any('\udc80' <= c <= '\udcff' for c in text)


def expand_patterns(patterns) -> list[str]:
  """Sorted files matching one pattern or a comma-separated/list of patterns."""
  if isinstance(patterns, str):
    patterns = [p for p in patterns.split(',') if p]
  files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
  if not files:
    raise FileNotFoundError(f'no file matches {patterns}')
  return files


def file_sha256(path: str) -> str:
  """SHA-256 hex digest of a file's bytes (local or gfile), read in 1 MiB blocks."""
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """A temporary path beside `path`, renamed onto it only when the block finishes without error.

  Readers never see a half-written file; the pid in the name keeps concurrent writers apart, and a
  failed block leaves neither a temporary file nor a changed `path`. Creates the parent folder.
  """
  parent = os.path.dirname(path)
  if parent:
    tf.io.gfile.makedirs(parent)
  tmp = f'{path}.tmp-{os.getpid()}'
  try:
    yield tmp
    tf.io.gfile.rename(tmp, path, overwrite=True)
  except BaseException:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.remove(tmp)
    raise
