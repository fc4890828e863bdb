"""Crossmodal-3600 (XM3600) retrieval pairs from captions.jsonl.

One JSON object per line: {"image/key": "<hex key>", "<lang>": {"caption": [...], ...},
...} for 36 languages (a file of your own may hold others); the images are '<image/key>.jpg' (see image_store.py). Per
language: every image with a caption in that language, all its captions (image->text
counts a hit when any of them is in the top k). Bad lines are counted, not fatal, and one
warning line per reason names the first ('path:line'): lines that are no JSON object or have
no image/key, a repeated image/key (the first line kept: a second copy of an image would tie
with it and count against the model), a language whose 'caption' is not a list of strings.
"""

import collections

from eval_multilingual.datasets import wit
from tasks import line_files
from tasks.user_error import UserError

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
  """({language: Pairs}, counts of skipped lines by reason). Every language entry of the file
  (a key whose value is an object) is read unless `languages` names some: a file of your own
  may hold languages beyond XM3600's 36 (LANGUAGES)."""
  wanted = set(languages) if languages else None
  out = {lang: wit.Pairs() for lang in sorted(wanted or ())}
  counts, log, lang_counts, seen = (
    collections.Counter(),
    wit.SkipLog(),
    collections.Counter(),
    set(),
  )
  entry_fields: list[str] = []  # the fields of the first language entry, for the error below

  def skip(reason: str, where: str) -> None:
    counts[reason] += 1
    log(reason, where)

  for where, obj in line_files.jsonl_objects(path, skip):
    key = obj.get('image/key')
    if not isinstance(key, str) or not key:
      skip('no_image_key', where)
      continue
    if key in seen:
      skip('duplicate_image_key', where)
      continue
    seen.add(key)
    entries = {k: v for k, v in obj.items() if isinstance(v, dict)}
    for lang in sorted(wanted if wanted is not None else entries):
      entry = entries.get(lang)
      if entry is not None and not entry_fields:
        entry_fields.extend(sorted(entry))
      pairs = out.setdefault(lang, wit.Pairs())
      caps = entry.get('caption') if entry is not None else None
      if caps is not None and not (
        isinstance(caps, list) and all(isinstance(c, str) for c in caps)
      ):
        pairs.skipped['caption_not_a_list_of_strings'] += 1
        lang_counts[f'caption_not_a_list_of_strings ({lang})'] += 1
        log(f'caption_not_a_list_of_strings ({lang})', where)
        continue
      caps = [c.strip() for c in caps or [] if c.strip()]
      if caps:
        pairs.image_keys.append(key)
        pairs.texts.extend(caps)
        pairs.text_to_image.extend([len(pairs.image_keys) - 1] * len(caps))
  for pairs in out.values():  # the images without a caption in the language
    uncaptioned = len(seen) - len(pairs.image_keys) - pairs.skipped['caption_not_a_list_of_strings']
    if uncaptioned:
      pairs.skipped['no_caption'] = uncaptioned
  log.warn(f'XM3600 {path}', {**counts, **lang_counts})
  if not any(p.texts for p in out.values()):
    has = (
      f"the language entries have {entry_fields}, no 'caption'"
      if entry_fields and 'caption' not in entry_fields
      else f'languages {", ".join(sorted(wanted))}'
      if wanted
      else 'no language entry'
    )
    raise UserError(
      f'{path}: no captions ({has}); each line is {{"image/key": ..., "<lang>": '
      '{"caption": [...]}, ...}'
    )
  return out, counts
