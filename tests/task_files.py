"""Writers of small data files in the real YFCC100m / CLIP-subset / CC12M / WIT formats.

Every row is made up here (no real YFCC metadata may be shipped).
"""

import bz2
import csv
import gzip
import hashlib
import io
import os
import urllib.parse

from PIL import Image


def _open(path, mode='wb'):
  if path.endswith('.gz'):
    return gzip.open(path, mode)
  if path.endswith('.bz2'):
    return bz2.open(path, mode)
  return open(path, mode)


def yfcc_row(
  photo_id,
  title='',
  description='',
  tags=(),
  *,
  marker='0',
  layout='multimedia_commons',
  line=0,
  encode=True,
) -> str:
  q = urllib.parse.quote_plus if encode else (lambda s: s)
  tags_field = ','.join(q(t) for t in tags) if not isinstance(tags, str) else tags
  webscope = [
    str(photo_id),
    '12345678@N00',
    'maker',
    '2010-05-01 10:00:00.0',
    '1273000000',
    'Canon+EOS',
    q(title),
    q(description),
    tags_field,
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
    marker,
  ]
  if layout == 'webscope':
    return '\t'.join(webscope)
  photo_hash = hashlib.md5(str(photo_id).encode()).hexdigest()
  return '\t'.join([str(line), webscope[0], photo_hash] + webscope[1:])


def write_lines(path, lines, raw_lines=()):
  """Writes text lines (and raw byte lines) to a plain/.gz/.bz2 file."""
  with _open(path) as f:
    for line in lines:
      f.write(line.encode('utf-8') + b'\n')
    for raw in raw_lines:
      f.write(raw + b'\n')
  return path


def write_subset(path, photo_ids, header=False):
  lines = (['line\tphoto_id\thash'] if header else []) + [
    f'{i}\t{pid}\t{hashlib.md5(str(pid).encode()).hexdigest()}' for i, pid in enumerate(photo_ids)
  ]
  return write_lines(path, lines)


def write_image(path, color=(200, 30, 30), size=(40, 30), fmt='JPEG'):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new('RGB', size, color).save(path, fmt)
  return path


WIT_COLUMNS = (
  'language',
  'page_url',
  'image_url',
  'page_title',
  'section_title',
  'hierarchical_section_title',
  'caption_reference_description',
  'caption_attribution_description',
  'caption_alt_text_description',
  'mime_type',
  'original_height',
  'original_width',
  'is_main_image',
  'attribution_passes_lang_id',
  'page_changed_recently',
  'context_page_description',
  'context_section_description',
)


def wit_row(
  lang, image_url, reference='', attribution='', alt_text='', is_main='true', passes='true'
):
  return {
    'language': lang,
    'page_url': f'https://{lang}.wikipedia.org/wiki/X',
    'image_url': image_url,
    'page_title': 'X',
    'section_title': '',
    'hierarchical_section_title': 'X',
    'caption_reference_description': reference,
    'caption_attribution_description': attribution,
    'caption_alt_text_description': alt_text,
    'mime_type': 'image/jpeg',
    'original_height': '480',
    'original_width': '640',
    'is_main_image': is_main,
    'attribution_passes_lang_id': passes,
    'page_changed_recently': 'false',
    'context_page_description': 'A page\nwith two lines',
    'context_section_description': '',
  }


def write_wit(path, rows, extra_raw=b''):
  """Writes a WIT TSV (header + rows, csv-quoted like pandas) to .tsv or .tsv.gz."""
  buf = io.StringIO()
  writer = csv.writer(buf, delimiter='\t', quotechar='"', lineterminator='\n')
  writer.writerow(WIT_COLUMNS)
  for r in rows:
    writer.writerow([r[c] for c in WIT_COLUMNS] if isinstance(r, dict) else r)
  with _open(path) as f:
    f.write(buf.getvalue().encode('utf-8') + extra_raw)
  return path
