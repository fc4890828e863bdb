"""The one spelling of a language code, shared by the data (tasks), eval and reports.

Rule: BCP 47 subtags joined by '-', language lower case, Script title case, REGION upper case
('zh_hant' -> 'zh-Hant', 'pt-br' -> 'pt-BR'), all lower case after a singleton ('x-mine');
an empty code is 'und' (undetermined). Simplified Chinese of the mainland is plain 'zh' (as WIT,
XM3600 and mT5 name it), so langdetect's 'zh-cn' becomes 'zh', while Traditional Chinese keeps its
region ('zh-TW'): training data, evaluation and reports then count it apart from Simplified
Chinese under the same code.
"""

import difflib
import re
from typing import Sequence

from tasks.user_error import UserError

UNDETERMINED = 'und'
_ALIASES = {'zh-CN': 'zh'}


def _subtags(code: str) -> list[str]:
  return [p for p in re.split(r'[-_]', code.strip()) if p]


def _singleton_at(parts: list[str]) -> int:
  """Index of the first singleton ('x' private use, 'u' extension...), len(parts) if none."""
  if len(parts[0]) == 1:  # 'x-mine': private use from the start
    return 0
  return next((i for i, p in enumerate(parts) if len(p) == 1), len(parts))


def split(code: str) -> tuple[str, str | None, str | None, list[str]]:
  """BCP 47-ish tag ('-' or '_' between subtags) -> (language, Script, REGION, other subtags).

  Lenient: data files' codes are split whatever their shape (check_tag says what is wrong).
  Subtags from a singleton on ('x-mine', 'de-u-co-phonebk') are no script or region: lowercase.
  """
  parts = _subtags(code)
  if not parts:
    raise ValueError('empty language code')
  cut = max(_singleton_at(parts), 1)
  lang, script, region, rest = parts[0].lower(), None, None, []
  for p in parts[1:cut]:
    if len(p) == 4 and p.isalpha() and script is None and region is None:
      script = p.title()
    elif (len(p) == 2 and p.isalpha()) or (len(p) == 3 and p.isdigit()):
      region = p.upper()
    else:
      rest.append(p.lower())
  rest.extend(p.lower() for p in parts[cut:])
  return lang, script, region, rest


def is_private_use(code: str) -> bool:
  """'x-...' tags and the ISO 639 private-use range qaa..qtz."""
  lang = split(code)[0]
  return lang == 'x' or (len(lang) == 3 and 'qaa' <= lang <= 'qtz')


def _well_formed(p: str, i: int, cut: int, last: int) -> bool:
  """Whether subtag `p` at index i fits there; `cut` is where a singleton starts the tail."""
  if not (p.isascii() and p.isalnum()):
    return False
  if i >= cut:  # a singleton and what follows it: 1-8 characters, at least one after it
    return len(p) <= 8 and not i == cut == last
  return (
    (i == 1 and len(p) == 3 and p.isalpha())  # extended language ('zh-yue')
    or (len(p) == 4 and (p.isalpha() or p[0].isdigit()))  # script, or a variant ('1901')
    or (len(p) == 2 and p.isalpha())
    or (len(p) == 3 and p.isdigit())
    or 5 <= len(p) <= 8
  )


def check_tag(code: str) -> str | None:
  """Why `code` is not a well-formed BCP 47 tag ('-' or '_' between subtags), or None.

  For codes a user types; split and normalize take any code, as data files hold what they hold.
  """
  parts = _subtags(code)
  if not parts:
    return 'empty language code'
  cut, lang = _singleton_at(parts), parts[0]
  private = cut == 0 and lang.lower() == 'x' and len(parts) > 1
  if not private and not (lang.isascii() and lang.isalpha() and 2 <= len(lang) <= 8):
    return f'{lang!r} is not a language code (2-3 letters, ISO 639)'
  for i, p in enumerate(parts[1:], 1):
    if not _well_formed(p, i, cut, len(parts) - 1):
      return (
        f'{p!r} is not a script (4 letters), region (2 letters or 3 digits) or variant '
        '(5-8 characters)'
      )
  return None


def check_task_language(code: str) -> str | None:
  """Why `code`, typed into a task registration's `languages`, cannot name a language of the
  data, or None: check_tag's reasons, and a word ('french'), which BCP 47's 5-8 letter language
  subtags would admit but no data file uses."""
  why = check_tag(code)
  lang = _subtags(code)[0]
  if why is None and lang.isalpha() and len(lang) > 3:
    why = f"{lang!r} is not an ISO 639 code (2-3 letters, e.g. 'fr' for French)"
  if why is None and lang.lower() in _COUNTRY_NOT_LANGUAGE:
    meant = _OTHER_SPELLING[lang.lower()]
    why = f"{lang!r} is a country code, no language's (did you mean {meant!r}?)"
  return why


def typed_task_language(code: str, binding: str) -> str:
  """A code a user typed into a task registration's languages (`binding` names it), in the data's
  spelling ('zh_tw' -> 'zh-TW'); one that cannot name a language is one line, not a task that
  would stay empty."""
  why = check_task_language(code)
  if why:
    raise UserError(f'{binding}: {code!r}: {why}')
  return normalize(code)


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


# Codes a user may type for a language the data spell otherwise (deprecated ISO 639-1
# codes, Norwegian Bokmål for Norwegian, and country codes that are no language's: jp, cn...).
_OTHER_SPELLING = {
  'jp': 'ja',
  'cn': 'zh',
  'gr': 'el',
  'dk': 'da',
  'cz': 'cs',
  'ua': 'uk',
  'iw': 'he',
  'in': 'id',
  'ji': 'yi',
  'jw': 'jv',
  'mo': 'ro',
  'nb': 'no',
  'no': 'nb',
}


# Of those, the ones that are no language's code at all: a task of them stays empty.
_COUNTRY_NOT_LANGUAGE = frozenset({'jp', 'cn', 'gr', 'dk', 'cz', 'ua'})


def _suggest(code: str, available: set[str]) -> str:
  base = normalize(code)
  for c in (base, base.split('-')[0], _OTHER_SPELLING.get(base.split('-')[0], '')):
    if c in available:
      return c
  close = difflib.get_close_matches(code, sorted(available), n=1, cutoff=0.6)
  return close[0] if close else ''


def check_languages(languages: Sequence[str], available: set[str], where: str, source: str) -> None:
  """UserError naming the codes of `languages` (a binding, `where`) that are not `available`,
  each with the code it was probably meant as: '<where>: <source> 'jp' (did you mean 'ja'?)'."""
  unknown = [c for c in languages if c not in available]
  if not unknown:
    return
  named = ', '.join(
    f'{c!r}' + (f' (did you mean {s!r}?)' if (s := _suggest(c, available)) else '') for c in unknown
  )
  raise UserError(f'{where}: {source} {named}; available: {", ".join(sorted(available))}')
