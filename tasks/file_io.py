"""Opening plain, .gz and .bz2 data files and writing files atomically (local or any gfile).

Local paths use Python's own file functions; a path with a scheme (gs://, s3://, ...) goes through
tf.io.gfile, imported only then: TensorFlow takes 5-6 s to import, and the commands that only read
local text files (coverage, vocabularies, the demo's stages) would otherwise pay it on every start.
"""

import bz2
import contextlib
import glob
import gzip
import hashlib
import io
import os
import time
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from tasks.user_error import UserError


def is_remote(path: str) -> bool:
  """True for a path that names a filesystem by scheme (gs://bucket/x), which needs tf.io.gfile."""
  return '://' in path


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (only remote paths need it)

  return tf.io.gfile


def _open_raw(path: str) -> BinaryIO:
  if is_remote(path):
    return io.BufferedReader(_GFileRaw(_gfile().GFile(path, 'rb')), 1 << 20)
  return open(path, 'rb', buffering=1 << 20)


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
  raw = _open_raw(path)
  if path.endswith('.gz'):
    return gzip.GzipFile(fileobj=raw, mode='rb')
  if path.endswith('.bz2'):
    return bz2.BZ2File(raw, mode='rb')
  return raw


# What reading on in a compressed file cut short or corrupt raises (gzip's EOFError and
# BadGzipFile, an OSError; bz2's OSError; zlib's error): the rows before it are good, the rest lost.
DAMAGED_FILE_ERRORS = (EOFError, zlib.error, OSError)


def damaged_at(path: str, line: int, error: Exception) -> str:
  """The `where` of a damaged file's skip: 'path:line (what broke)'."""
  return f'{path}:{line} ({type(error).__name__}: {error})'


def until_damaged(items: Iterator, on_damage) -> Iterator:
  """The items of an iterator reading a file (lines, csv rows), up to where a compressed file is
  cut short or corrupt: there `on_damage(error)` is called once and the items end; the ones
  before it stay read."""
  while True:
    try:
      item = next(items)
    except StopIteration:
      return
    except DAMAGED_FILE_ERRORS as e:
      on_damage(e)
      return
    yield item


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
  files = sorted(
    {f for p in patterns for f in (_gfile().glob(p) if is_remote(p) else glob.glob(p))}
  )
  if not files:
    raise FileNotFoundError(f'no file matches {patterns}')
  folders = [f for f in files if not is_remote(f) and os.path.isdir(f)]
  if folders:  # read as a file it would fail later, inside a reader, as a traceback
    raise UserError(
      f'{folders[0]} is a directory, not a data file (matched by {patterns}): '
      'give a pattern of files, e.g. DIR/*.tsv'
    )
  return files


def check_patterns(binding: str, patterns) -> None:
  """At a task's registration: a pattern that matches no file is one line naming the binding,
  not an error when seqio first reads the split, or a task that is silently empty."""
  try:
    expand_patterns(patterns)
  except FileNotFoundError as e:
    raise FileNotFoundError(f'{binding} {patterns!r} matches no file') from e


# A local file's digest by (path, size, mtime): a run's start and an evaluation check the same
# tower and vocabulary files more than once (their recorded sha256 against the file), each a
# full read of up to hundreds of MB. Only files last modified over 2 s before they were hashed
# are kept: a file rewritten within the filesystem's timestamp granularity keeps its mtime.
_SHA256_OF: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str:
  """SHA-256 hex digest of a file's bytes (local or gfile), read in 1 MiB blocks; a local file
  unchanged since it was last hashed in this process (same size and mtime) is not read again."""
  key = None
  if not is_remote(path):
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key in _SHA256_OF:
      return _SHA256_OF[key]
  digest = hashlib.sha256()
  with _open_raw(path) as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  if key is not None and time.time() - key[2] / 1e9 > 2:
    _SHA256_OF[key] = digest.hexdigest()
  return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """A temporary path beside `path`, renamed onto it only when the block finishes without error.

  Readers never see a half-written file; the pid in the name keeps concurrent writers apart, and a
  failed block leaves neither a temporary file nor a changed `path`. Creates the parent folder.
  """
  parent = os.path.dirname(path)
  if parent:
    _makedirs(parent)
  tmp = f'{path}.tmp-{os.getpid()}'
  try:
    yield tmp
    _replace(tmp, path)
  except BaseException:
    _remove_if_exists(tmp)
    raise


def _makedirs(path: str) -> None:
  if is_remote(path):
    _gfile().makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


def _replace(src: str, dst: str) -> None:
  if is_remote(dst):
    _gfile().rename(src, dst, overwrite=True)
  else:
    os.replace(src, dst)


def _remove_if_exists(path: str) -> None:
  if is_remote(path):
    if _gfile().exists(path):
      _gfile().remove(path)
  elif os.path.lexists(path):
    os.remove(path)
