"""COCO captions (English) retrieval pairs from an annotations file (captions_*.json).

Format: {"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "caption"}]}.
Image keys are file names (see image_store.py). `max_images` keeps the first images by id.
"""

import collections
import json

from eval_multilingual.datasets import wit
from tasks.user_error import UserError


def read_coco(
  path: str, max_images: int | None = None
) -> tuple[dict[str, wit.Pairs], collections.Counter]:
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except json.JSONDecodeError as e:
    raise UserError(f'{path}: invalid JSON at line {e.lineno}: {e.msg}') from e
  except UnicodeDecodeError as e:
    raise UserError(f'{path}: not UTF-8 text (byte {e.start})') from e
  except RecursionError as e:
    raise UserError(f'{path}: JSON nested too deeply') from e
  if not isinstance(data, dict):
    raise UserError(f'{path}: top level must be an object (not a COCO captions file)')
  for key in ('images', 'annotations'):
    if not isinstance(data.get(key), list):
      raise UserError(f'{path}: key {key!r} missing or not a list (not a COCO captions file)')
  counts = collections.Counter()
  captions = collections.defaultdict(list)
  for a in data['annotations']:
    cap = a.get('caption') if isinstance(a, dict) else None
    if not isinstance(cap, str) or not cap.strip() or not _is_id(a.get('image_id')):
      counts['bad_annotation'] += 1
      continue
    captions[a['image_id']].append(' '.join(cap.split()))
  images = sorted(
    (
      im
      for im in data['images']
      if isinstance(im, dict) and _is_id(im.get('id')) and isinstance(im.get('file_name'), str)
    ),
    key=lambda im: im['id'],
  )
  counts['bad_image'] += len(data['images']) - len(images)
  pairs = wit.Pairs()
  for im in images:
    if max_images is not None and len(pairs.image_keys) >= max_images:
      break
    caps = captions.get(im['id'])
    if not caps:
      pairs.skipped['no_caption'] += 1
      continue
    pairs.image_keys.append(im['file_name'])
    pairs.texts.extend(caps)
    pairs.text_to_image.extend([len(pairs.image_keys) - 1] * len(caps))
  if not pairs.texts:
    raise UserError(f'{path}: no image with a caption')
  return {'en': pairs}, counts


def _is_id(value) -> bool:
  """COCO ids are integers (a bool is not one)."""
  return isinstance(value, int) and not isinstance(value, bool)
