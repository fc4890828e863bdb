"""COCO captions (English) retrieval pairs from an annotations file (captions_*.json).

Format: {"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "caption"}]}.
Image keys are file names (see image_store.py). `max_images` keeps the first images by id.
"""

import collections
import json

from eval_multilingual.datasets import wit


def read_coco(
  path: str, max_images: int | None = None
) -> tuple[dict[str, wit.Pairs], collections.Counter]:
  with open(path, encoding='utf-8') as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}: invalid JSON at line {e.lineno}: {e.msg}') from e
  for key in ('images', 'annotations'):
    if key not in data:
      raise ValueError(f'{path}: missing key {key!r} (not a COCO captions file)')
  counts = collections.Counter()
  captions = collections.defaultdict(list)
  for i, a in enumerate(data['annotations']):
    cap = a.get('caption') if isinstance(a, dict) else None
    if not isinstance(cap, str) or not cap.strip() or 'image_id' not in a:
      counts['bad_annotation'] += 1
      continue
    captions[a['image_id']].append(' '.join(cap.split()))
  images = sorted(
    (im for im in data['images'] if 'id' in im and 'file_name' in im), key=lambda im: im['id']
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
    raise ValueError(f'{path}: no image with a caption')
  return {'en': pairs}, counts
