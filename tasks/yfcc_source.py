"""Rows of the YFCC100m metadata TSV -> cleaned title/description/tags examples.

Two layouts (0-based columns): the multimedia-commons file (25 columns: line
number and hash first) and the Webscope original (23 columns). Free text is
URL-encoded with '+' for space and may hold HTML. Files may be plain, .gz or .bz2.
"""

import collections
import dataclasses
import functools
import itertools
import re
from typing import Iterator, Optional

import tensorflow as tf

from tasks import (
  data_stats,
  image_store,
  langid,
  line_files,
  shard_image_store,
  text_cleaning,
  yfcc_subset,
)

SIGNALS = ('title', 'description', 'tags')
TAG_SEPARATOR = '\n'  # Cleaned tags never contain a newline (whitespace is collapsed).


@dataclasses.dataclass(frozen=True)
class Layout:
  num_columns: int
  photo_id: int
  photo_hash: Optional[int]
  title: int
  description: int
  tags: int
  marker: int


MULTIMEDIA_COMMONS = Layout(
  25, photo_id=1, photo_hash=2, title=8, description=9, tags=10, marker=24
)
WEBSCOPE = Layout(23, photo_id=0, photo_hash=None, title=6, description=7, tags=8, marker=22)
LAYOUTS = {'multimedia_commons': MULTIMEDIA_COMMONS, 'webscope': WEBSCOPE}


# Rows looked at to detect a file's layout; one broken line cannot outvote them.
DETECT_ROWS = 100
_HASH = re.compile(r'^[0-9a-f]{32}$')


def fits(cols: list[str], layout: Layout) -> bool:
  """Whether a row has `layout`'s column count and field types (ids, marker, hash or user)."""
  if len(cols) != layout.num_columns or cols[layout.marker].strip() not in ('0', '1'):
    return False
  if not (cols[0].strip().isdigit() and cols[layout.photo_id].strip().isdigit()):
    return False
  if layout.photo_hash is not None:
    return bool(_HASH.match(cols[layout.photo_hash].strip()))
  return '@' in cols[layout.photo_id + 1]  # the Webscope user NSID, e.g. 12345678@N00


def _detect_layout(rows: Iterator) -> tuple[Layout, Iterator]:
  """The layout most of the first DETECT_ROWS well-formed rows fit, and all rows again.

  A tie goes to the layout of the first fitting row; a file where no row fits gets
  the first layout (its rows are then counted as malformed, not silently dropped).
  """
  head, votes = [], collections.Counter()
  for item in rows:
    head.append(item)
    for layout in LAYOUTS.values():
      if fits(item[1], layout):
        votes[layout] += 1  # Counter keeps first-seen order for ties in most_common
    if sum(votes.values()) >= DETECT_ROWS:
      break
  layout = votes.most_common(1)[0][0] if votes else MULTIMEDIA_COMMONS
  return layout, itertools.chain(head, rows)


def output_signature(detect_languages: bool, with_images: bool) -> dict:
  names = ['example_id', *SIGNALS]
  if detect_languages:
    names += [f'{s}_lang' for s in SIGNALS] + ['language']
  if with_images:
    names.append('image')
  return {n: tf.TensorSpec((), tf.string) for n in names}


@dataclasses.dataclass
class YfccReader:
  """Callable path -> iterator of example dicts (one file = one shard)."""

  layout: str = 'auto'  # 'auto' (per file, by majority of its first rows), or a LAYOUTS key
  subset_ids_path: Optional[str] = None  # yfcc100m_subset_data.tsv for the CLIP subset
  photos_only: bool = True
  detect_languages: bool = True
  image_dir: Optional[str] = None
  image_path_format: str = '{id}.jpg'
  image_shards: Optional[str] = None  # a pattern of image shards instead of image_dir
  image_shard_key: str = 'key'  # the shard samples' id: key, 'url' or a json field

  def __post_init__(self):
    if self.layout != 'auto' and self.layout not in LAYOUTS:
      raise ValueError(f'layout {self.layout!r} not in {["auto", *LAYOUTS]}')

  @property
  def output_signature(self) -> dict:
    return output_signature(self.detect_languages, self.images is not None)

  @functools.cached_property
  def images(self):
    """One store for every file read (a shard store indexes its shards once)."""
    return shard_image_store.make_image_store(
      self.image_dir, self.image_path_format, self.image_shards, self.image_shard_key
    )

  def __call__(self, path: str) -> Iterator[dict]:
    subset = yfcc_subset.load_subset_ids(self.subset_ids_path) if self.subset_ids_path else None
    images = self.images
    layout = None if self.layout == 'auto' else LAYOUTS[self.layout]
    rows = line_files.tsv_rows(path, data_stats.skip)
    if layout is None:
      layout, rows = _detect_layout(rows)
    for where, cols in rows:
      if len(cols) != layout.num_columns:
        data_stats.skip('wrong_column_count', f'{where} ({len(cols)} columns)')
        continue
      example = self._parse(cols, layout, where, subset, images)
      if example is not None:
        data_stats.keep('yfcc100m')
        yield example

  def _parse(self, cols, layout, where, subset, images) -> Optional[dict]:
    photo_id = cols[layout.photo_id].strip()
    if not photo_id.isdigit():
      data_stats.skip('bad_field', f'{where} photo id {photo_id[:30]!r}')
      return None
    if self.photos_only and cols[layout.marker].strip() != '0':
      data_stats.skip('not_a_photo', where)
      return None
    if subset is not None and not yfcc_subset.contains(subset, int(photo_id)):
      data_stats.skip('not_in_subset', where)
      return None
    try:
      title = text_cleaning.clean_text(text_cleaning.url_decode(cols[layout.title]))
      description = text_cleaning.clean_text(text_cleaning.url_decode(cols[layout.description]))
      tags = text_cleaning.clean_tags(cols[layout.tags])
    except text_cleaning.BadTextError as e:
      data_stats.skip(e.reason, f'{where}: {e}')
      return None
    if not text_cleaning.keep_title(title):
      title = ''
    example = {
      'example_id': photo_id,
      'title': title,
      'description': description,
      'tags': TAG_SEPARATOR.join(tags),
    }
    if not any(example[s] for s in SIGNALS):
      data_stats.skip('all_signals_empty', where)
      return None
    if images is not None:
      photo_hash = cols[layout.photo_hash] if layout.photo_hash is not None else None
      try:
        example['image'] = images.read(photo_id, photo_hash)
      except image_store.ImageError as e:
        data_stats.skip(e.reason, f'{where}: {e}')
        return None
    if self.detect_languages:
      _add_languages(example)
    return example


def _add_languages(example: dict) -> None:
  """A language per signal, and 'language' = that of the longest identified signal."""
  best, best_len = langid.UNDETERMINED, -1
  for s in SIGNALS:
    text = example[s].replace(TAG_SEPARATOR, ' ')
    lang = langid.detect_language(text)
    example[f'{s}_lang'] = lang
    if lang != langid.UNDETERMINED and len(text) > best_len:
      best, best_len = lang, len(text)
  example['language'] = best
