"""The --lang of `mlit add-language`: the project's one spelling (tasks.language_codes), or a
refusal that names the code to use. Beside the command, as it reads eval_multilingual's language
table (names and scripts).

Data, evaluation and prompt files key a language by its shortest code ('si', not 'sin' or 'sinh');
a three-letter ISO 639-3 (or 639-2/B) code of a language that has a two-letter one never matches
them, so it is refused with the two-letter code rather than written as a new key.
"""

import difflib
import re
import sys

from eval_multilingual import languages
from tasks import language_codes

# ISO 639-3 and 639-2/B codes -> ISO 639-1, for the languages mlit's tables name.
ISO639_3 = {
  'afr': 'af', 'amh': 'am', 'ara': 'ar', 'asm': 'as', 'aze': 'az', 'bel': 'be', 'bul': 'bg',
  'ben': 'bn', 'bod': 'bo', 'tib': 'bo', 'bre': 'br', 'bos': 'bs', 'cat': 'ca', 'ces': 'cs',
  'cze': 'cs', 'cym': 'cy', 'wel': 'cy', 'dan': 'da', 'deu': 'de', 'ger': 'de', 'ell': 'el',
  'gre': 'el', 'eng': 'en', 'epo': 'eo', 'spa': 'es', 'est': 'et', 'eus': 'eu', 'baq': 'eu',
  'fas': 'fa', 'per': 'fa', 'fin': 'fi', 'fao': 'fo', 'fra': 'fr', 'fre': 'fr', 'fry': 'fy',
  'gle': 'ga', 'gla': 'gd', 'glg': 'gl', 'guj': 'gu', 'hau': 'ha', 'heb': 'he', 'hin': 'hi',
  'hrv': 'hr', 'hat': 'ht', 'hun': 'hu', 'hye': 'hy', 'arm': 'hy', 'ind': 'id', 'ibo': 'ig',
  'isl': 'is', 'ice': 'is', 'ita': 'it', 'jpn': 'ja', 'jav': 'jv', 'kat': 'ka', 'geo': 'ka',
  'kaz': 'kk', 'khm': 'km', 'kan': 'kn', 'kor': 'ko', 'kur': 'ku', 'kir': 'ky', 'lat': 'la',
  'ltz': 'lb', 'lao': 'lo', 'lit': 'lt', 'lav': 'lv', 'mlg': 'mg', 'mri': 'mi', 'mao': 'mi',
  'mkd': 'mk', 'mac': 'mk', 'mal': 'ml', 'mon': 'mn', 'mar': 'mr', 'msa': 'ms', 'may': 'ms',
  'mlt': 'mt', 'mya': 'my', 'bur': 'my', 'nep': 'ne', 'nld': 'nl', 'dut': 'nl', 'nno': 'nn',
  'nob': 'nb', 'nor': 'no', 'oci': 'oc', 'ori': 'or', 'pan': 'pa', 'pol': 'pl', 'pus': 'ps',
  'por': 'pt', 'que': 'qu', 'ron': 'ro', 'rum': 'ro', 'rus': 'ru', 'kin': 'rw', 'san': 'sa',
  'snd': 'sd', 'sin': 'si', 'slk': 'sk', 'slo': 'sk', 'slv': 'sl', 'smo': 'sm', 'sna': 'sn',
  'som': 'so', 'sqi': 'sq', 'alb': 'sq', 'srp': 'sr', 'sot': 'st', 'sun': 'su', 'swe': 'sv',
  'swa': 'sw', 'tam': 'ta', 'tel': 'te', 'tgk': 'tg', 'tha': 'th', 'tir': 'ti', 'tuk': 'tk',
  'tgl': 'tl', 'ton': 'to', 'tur': 'tr', 'tat': 'tt', 'uig': 'ug', 'ukr': 'uk', 'urd': 'ur',
  'uzb': 'uz', 'vie': 'vi', 'vol': 'vo', 'wol': 'wo', 'xho': 'xh', 'yid': 'yi', 'yor': 'yo',
  'zho': 'zh', 'chi': 'zh', 'zul': 'zu',
}  # fmt: skip

# Scripts that count as the same writing system when texts are checked against --lang.
_SAME_SCRIPT = [{'Hani', 'Hans', 'Hant', 'Jpan', 'Hira', 'Kana'}, {'Hang', 'Kore'}]


def normalize_lang(code: str, flag: str = '--lang') -> str:
  """`code` in the project's spelling; a UserError for a malformed code, or naming the code to use
  for a three-letter code of a language that has a two-letter one. Prints a warning for a code
  mlit's language tables do not know."""
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  if not code or not code.strip():
    raise UserError(f'{flag}: empty language code')
  problem = language_codes.check_tag(code)
  if problem:
    word = _first_subtag(code)
    hint = '' if word.isalpha() and 2 <= len(word) <= 3 else _did_you_mean(word)
    raise UserError(f'{flag} {code}: {problem}{hint}')
  canonical = language_codes.normalize(code)
  lang, script, region, rest = language_codes.split(canonical)
  if lang in ISO639_3 and not languages.is_known(lang):
    short = '-'.join(p for p in (ISO639_3[lang], script, region, *rest) if p)
    raise UserError(
      f'{flag} {code}: {lang!r} is ISO 639-3 for {languages.lookup(ISO639_3[lang]).name}: use '
      f'{short!r} (the code data, prompt and evaluation files use)'
    )
  # Simplified Chinese of the mainland is plain 'zh' in this project (tasks.language_codes).
  if lang == 'zh' and script == 'Hans' and region in (None, 'CN') and not rest:
    return 'zh'
  unknown = unknown_lang(canonical)
  if unknown:
    print(f'warning: {flag} {code}: {unknown}', file=sys.stderr)
  return canonical


def unknown_lang(code: str) -> str | None:
  """Why a well-formed `code` gets no name or script from mlit's tables; None if they know it."""
  if languages.is_known(code):
    return None
  lang = language_codes.split(code)[0]
  if language_codes.is_private_use(code):
    return "a private-use code (x-..., qaa..qtz): mlit's language tables have no name for it"
  if len(lang) > 3:
    return f'{lang!r} is not an ISO 639 code (2-3 letters){_did_you_mean(lang)}'
  return (
    f"mlit's language tables have no name or script for {lang!r}: check that it is the ISO 639 "
    'code you mean'
  )


def _first_subtag(code: str) -> str:
  return re.split(r'[-_]', code.strip())[0].lower()


def _did_you_mean(word: str) -> str:
  """': did you mean ...' naming the known languages whose name is close to `word` ('greek' ->
  'el'), else a pointer to ISO 639."""
  known = {c for c in {*languages.WIT_LANGUAGES, *ISO639_3.values()} if languages.is_known(c)}
  names = {languages.lookup(c).name.lower(): c for c in sorted(known)}
  close = difflib.get_close_matches(word, list(names), n=3, cutoff=0.75)
  if not close:
    return ": use the language's ISO 639 code"
  return ': did you mean ' + ' or '.join(f'{names[n]!r} ({n.title()})' for n in close) + '?'


def script_mismatch(lang: str, texts: list[str], sample: int = 200) -> str | None:
  """A warning when the texts are mostly in another script than a known `lang` is written in."""
  if not texts or not languages.is_known(lang):
    return None
  expected = languages.lookup(lang).script
  if expected in ('Zzzz', 'Zyyy'):
    return None
  found = languages.detect_script(' '.join(texts[:sample]))
  same = found == expected or any({found, expected} <= group for group in _SAME_SCRIPT)
  if same or found in ('Zyyy', 'Zzzz'):
    return None
  info = languages.lookup(lang)
  return (
    f'--lang {lang} is {info.name}, written in {info.script_name}, but the texts are mostly '
    f'{languages.SCRIPT_NAMES.get(found, found)} ({found}): check --lang'
  )
