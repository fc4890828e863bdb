"""Crossmodal-3600 (XM3600) retrieval pairs from captions.jsonl.

One JSON object per line: {"image/key": "<hex key>", "<lang>": {"caption": [...], ...},
...} for 36 languages; the images are '<image/key>.jpg' (see image_store.py). Per
language: every image with a caption in that language, all its captions (image->text
counts a hit when any of them is in the top k). Bad lines are counted, not fatal.
"""

import collections

from eval_multilingual.datasets import wit
from tasks import line_files

LANGUAGES = (
  'ar',
  'bn',
  'cs',
  'da',
  'de',
  'el',
  'en',
  'es',
  'fa',
  'fi',
  'fil',
  'fr',
  'he',
  'hi',
  'hr',
  'hu',
  'id',
  'it',
  'ja',
  'ko',
  'mi',
  'nl',
  'no',
  'pl',
  'pt',
  'quz',
  'ro',
  'ru',
  'sv',
  'sw',
  'te',
  'th',
  'tr',
  'uk',
  'vi',
  'zh',
)


def read_xm3600(path: str, languages=None) -> tuple[dict[str, wit.Pairs], collections.Counter]:
  """({language: Pairs}, counts of skipped lines by reason)."""
  wanted = set(languages or LANGUAGES)
  out = {lang: wit.Pairs() for lang in sorted(wanted)}
  counts = collections.Counter()
  for _, obj in line_files.jsonl_objects(path, line_files.counting(counts)):
    key = obj.get('image/key')
    if not isinstance(key, str) or not key:
      counts['no_image_key'] += 1
      continue
    for lang in wanted:
      entry = obj.get(lang)
      caps = entry.get('caption') if isinstance(entry, dict) else None
      caps = [c.strip() for c in caps or [] if isinstance(c, str) and c.strip()]
      if not caps:
        out[lang].skipped['no_caption'] += 1
        continue
      pairs = out[lang]
      pairs.image_keys.append(key)
      pairs.texts.extend(caps)
      pairs.text_to_image.extend([len(pairs.image_keys) - 1] * len(caps))
  if not any(p.texts for p in out.values()):
    raise ValueError(f'{path}: no captions for languages {sorted(wanted)}')
  return out, counts
