"""Parses CLDR emoji annotations: per language, the name (type="tts") and keywords.

common/annotations/<locale>.xml holds single emoji; common/annotationsDerived/
<locale>.xml (optional) holds sequences (flags, keycaps, ZWJ sequences). CLDR
writes `cp` without U+FE0F, so entries are keyed that way (Emoji.key).
"""

import collections
import dataclasses
import os
import re
import xml.etree.ElementTree as ET

from tasks.user_error import UserError


@dataclasses.dataclass
class Annotation:
  name: str | None = None
  keywords: list[str] = dataclasses.field(default_factory=list)
  draft: str | None = None  # CLDR draft status of the name, if not approved


@dataclasses.dataclass
class Cldr:
  languages: dict[str, dict[str, Annotation]]  # lang -> emoji key -> annotation
  version: str
  skipped: collections.Counter
  # Keys annotated in some language's annotations/ file (single emoji and the few
  # sequences CLDR names there); the rest come from annotationsDerived/ only
  # (flags, keycaps, most ZWJ sequences).
  base_keys: set[str] = dataclasses.field(default_factory=set)


def is_base_locale(locale: str) -> bool:
  """'de' yes; 'de_CH', 'zh_Hant' no (variants override a few entries of their parent)."""
  return '_' not in locale and locale != 'root'


def _parse_file(
  path: str, into: dict[str, Annotation], skipped: collections.Counter, overwrite: bool
):
  try:
    tree = ET.parse(path)
  except ET.ParseError as e:
    raise ValueError(f'{path}: not valid CLDR XML: {e}') from e
  seen = set()
  for el in tree.iter('annotation'):
    cp = el.get('cp')
    text = (el.text or '').strip()
    if not cp:
      skipped['annotation_without_cp'] += 1
      continue
    if not text or text == '↑↑↑':  # '↑↑↑' means "inherit" in CLDR
      skipped['empty_or_inherited'] += 1
      continue
    key = cp.replace('\ufe0f', '')
    if key in into and not overwrite and key not in seen:
      skipped['derived_shadowed'] += 1
      continue
    seen.add(key)
    ann = into.setdefault(key, Annotation())
    if el.get('type') == 'tts':
      ann.name = text
      ann.draft = el.get('draft')
    else:
      words = [w.strip() for w in text.split('|')]
      ann.keywords = list(dict.fromkeys(w for w in words if w))


def cldr_version(dtd_path: str | None) -> str:
  if dtd_path and os.path.isfile(dtd_path):
    with open(dtd_path, encoding='utf-8') as f:
      m = re.search(r'cldrVersion\s+CDATA\s+#FIXED\s+"([^"]+)"', f.read())
    if m:
      return m.group(1)
  return 'unknown'


def locales(annotations_dir: str) -> list[str]:
  """Every locale with an annotations file (base and variants), sorted; not 'root'."""
  return sorted(
    f[:-4] for f in os.listdir(annotations_dir) if f.endswith('.xml') and f != 'root.xml'
  )


def check_languages(annotations_dir: str, languages) -> None:
  """Raises UserError naming --languages and each code without an annotations file."""
  known = locales(annotations_dir)
  unknown = [l for l in dict.fromkeys(languages) if l not in set(known)]
  if not unknown:
    return
  spelled = {k.lower(): k for k in known}
  meant = [
    f'{l!r}: did you mean {spelled[l.replace("-", "_").lower()]}?'
    for l in unknown
    if l.replace('-', '_').lower() in spelled
  ]
  base = [k for k in known if is_base_locale(k)]
  raise UserError(
    f'--languages: no CLDR emoji annotations for {", ".join(map(repr, unknown))}'
    + (f' ({"; ".join(meant)})' if meant else '')
    + f'; {len(base)} languages and {len(known) - len(base)} regional/script variants have them '
    f'(e.g. {", ".join(base[:8])}; `ls {annotations_dir}` lists them all)'
  )


def parse_cldr(
  annotations_dir: str,
  derived_dir: str | None = None,
  languages: list[str] | None = None,
  include_variants: bool = False,
  dtd_path: str | None = None,
) -> Cldr:
  """Reads every locale (base locales only unless include_variants) or `languages`."""
  names = locales(annotations_dir)
  if languages is not None:
    check_languages(annotations_dir, languages)
    names = [l for l in names if l in set(languages)]
  elif not include_variants:
    names = [l for l in names if is_base_locale(l)]
  out, skipped, base_keys = {}, collections.Counter(), set()
  for loc in names:
    anns: dict[str, Annotation] = {}
    _parse_file(os.path.join(annotations_dir, f'{loc}.xml'), anns, skipped, True)
    base_keys.update(anns)
    if derived_dir:
      dpath = os.path.join(derived_dir, f'{loc}.xml')
      if os.path.isfile(dpath):
        _parse_file(dpath, anns, skipped, False)
    out[loc] = anns
  return Cldr(out, cldr_version(dtd_path), skipped, base_keys)
