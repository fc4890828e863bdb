"""The CLIP subset of YFCC100m: photo ids listed in yfcc100m_subset_data.tsv.

The file has three tab-separated columns (line number, photo id, photo hash); a
header line, if present, is skipped. ~15M ids are held as a sorted int64 array
(8 bytes each) rather than a Python set.
"""

import functools

import numpy as np

from tasks import file_io


@functools.lru_cache(maxsize=4)
def load_subset_ids(path: str) -> np.ndarray:
  ids = []
  with file_io.open_binary(path) as f:
    for line_no, line in enumerate(f, 1):
      cols = line.rstrip(b'\r\n').split(b'\t')
      if len(cols) < 2 or not cols[1].strip().isdigit():
        if line_no == 1 or not line.strip():
          continue  # header or blank line
        raise ValueError(
          f"{path}:{line_no}: expected 'line<TAB>photo_id<TAB>hash', got {line[:80]!r}"
        )
      ids.append(int(cols[1]))
  return np.unique(np.asarray(ids, dtype=np.int64))


def contains(ids: np.ndarray, photo_id: int) -> bool:
  i = np.searchsorted(ids, photo_id)
  return bool(i < len(ids) and ids[i] == photo_id)
