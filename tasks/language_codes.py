"""The one spelling of a language code, shared by the data (tasks), eval and reports.

Rule: BCP 47 subtags joined by '-', language lower case, Script title case, REGION upper case
('zh_hant' -> 'zh-Hant', 'pt-br' -> 'pt-BR'); an empty code is 'und' (undetermined). Simplified
Chinese of the mainland is plain 'zh' (as WIT, XM3600 and mT5 name it), so langdetect's 'zh-cn'
becomes 'zh', while Traditional Chinese keeps its region ('zh-TW'): training data, evaluation
and reports then count it apart from Simplified Chinese under the same code.
"""

import re

UNDETERMINED = 'und'
_ALIASES = {'zh-CN': 'zh'}


def split(code: str) -> tuple[str, str | None, str | None, list[str]]:
  """BCP 47-ish tag ('-' or '_' between subtags) -> (language, Script, REGION, other subtags)."""
  parts = [p for p in re.split(r'[-_]', code.strip()) if p]
  if not parts:
    raise ValueError('empty language code')
  lang, script, region, rest = parts[0].lower(), None, None, []
  for p in parts[1:]:
    if len(p) == 4 and p.isalpha() and script is None and region is None:
      script = p.title()
    elif (len(p) == 2 and p.isalpha()) or (len(p) == 3 and p.isdigit()):
      region = p.upper()
    else:
      rest.append(p.lower())
  return lang, script, region, rest


def normalize(code: str | None) -> str:
  """The canonical spelling of `code` (see the module docstring)."""
  try:
    lang, script, region, rest = split(code or '')
  except ValueError:  # empty, or separators only
    return UNDETERMINED
  canonical = '-'.join(p for p in (lang, script, region, *rest) if p)
  return _ALIASES.get(canonical, canonical)


def task_name_part(code: str) -> str:
  """`code` as part of a seqio task name, which allows no '-' ('zh-TW' -> 'zh_TW')."""
  return code.replace('-', '_')
