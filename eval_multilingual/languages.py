"""Language metadata: code -> English name and writing system (ISO 15924).

Covers the CLDR emoji-annotation locales (e.g. 'sr_Latn', 'zh_Hant', 'yue_Hans') and the 108 WIT
languages (e.g. 'iw', 'be-tarask', 'zh-TW'). Codes not in the table are split into BCP 47 subtags
(language, script, region); when nothing is known the script is detected from sample text with
`unicodedata` character names.
"""

import collections
import dataclasses
import unicodedata

from tasks import language_codes

# Base language -> (English name, default script). Written for this project.
_BASE = {
  'af': ('Afrikaans', 'Latn'),
  'am': ('Amharic', 'Ethi'),
  'an': ('Aragonese', 'Latn'),
  'ar': ('Arabic', 'Arab'),
  'arz': ('Egyptian Arabic', 'Arab'),
  'as': ('Assamese', 'Beng'),
  'ast': ('Asturian', 'Latn'),
  'az': ('Azerbaijani', 'Latn'),
  'azb': ('South Azerbaijani', 'Arab'),
  'ba': ('Bashkir', 'Cyrl'),
  'bar': ('Bavarian', 'Latn'),
  'be': ('Belarusian', 'Cyrl'),
  'bg': ('Bulgarian', 'Cyrl'),
  'bn': ('Bangla', 'Beng'),
  'br': ('Breton', 'Latn'),
  'bs': ('Bosnian', 'Latn'),
  'ca': ('Catalan', 'Latn'),
  'ccp': ('Chakma', 'Cakm'),
  'ce': ('Chechen', 'Cyrl'),
  'ceb': ('Cebuano', 'Latn'),
  'chr': ('Cherokee', 'Cher'),
  'ckb': ('Central Kurdish', 'Arab'),
  'cs': ('Czech', 'Latn'),
  'cv': ('Chuvash', 'Cyrl'),
  'cy': ('Welsh', 'Latn'),
  'da': ('Danish', 'Latn'),
  'de': ('German', 'Latn'),
  'doi': ('Dogri', 'Deva'),
  'dsb': ('Lower Sorbian', 'Latn'),
  'el': ('Greek', 'Grek'),
  'en': ('English', 'Latn'),
  'eo': ('Esperanto', 'Latn'),
  'es': ('Spanish', 'Latn'),
  'et': ('Estonian', 'Latn'),
  'eu': ('Basque', 'Latn'),
  'fa': ('Persian', 'Arab'),
  'fi': ('Finnish', 'Latn'),
  'fil': ('Filipino', 'Latn'),
  'fo': ('Faroese', 'Latn'),
  'fr': ('French', 'Latn'),
  'fy': ('Western Frisian', 'Latn'),
  'ga': ('Irish', 'Latn'),
  'gd': ('Scottish Gaelic', 'Latn'),
  'gl': ('Galician', 'Latn'),
  'gu': ('Gujarati', 'Gujr'),
  'ha': ('Hausa', 'Latn'),
  'he': ('Hebrew', 'Hebr'),
  'hi': ('Hindi', 'Deva'),
  'hr': ('Croatian', 'Latn'),
  'hsb': ('Upper Sorbian', 'Latn'),
  'ht': ('Haitian Creole', 'Latn'),
  'hu': ('Hungarian', 'Latn'),
  'hy': ('Armenian', 'Armn'),
  'ia': ('Interlingua', 'Latn'),
  'id': ('Indonesian', 'Latn'),
  'ig': ('Igbo', 'Latn'),
  'io': ('Ido', 'Latn'),
  'is': ('Icelandic', 'Latn'),
  'it': ('Italian', 'Latn'),
  'iw': ('Hebrew', 'Hebr'),
  'ja': ('Japanese', 'Jpan'),
  'jv': ('Javanese', 'Latn'),
  'ka': ('Georgian', 'Geor'),
  'kab': ('Kabyle', 'Latn'),
  'kk': ('Kazakh', 'Cyrl'),
  'kl': ('Kalaallisut', 'Latn'),
  'km': ('Khmer', 'Khmr'),
  'kn': ('Kannada', 'Knda'),
  'ko': ('Korean', 'Kore'),
  'kok': ('Konkani', 'Deva'),
  'ku': ('Kurdish', 'Latn'),
  'ky': ('Kyrgyz', 'Cyrl'),
  'la': ('Latin', 'Latn'),
  'lah': ('Lahnda', 'Arab'),
  'lb': ('Luxembourgish', 'Latn'),
  'lmo': ('Lombard', 'Latn'),
  'lo': ('Lao', 'Laoo'),
  'lt': ('Lithuanian', 'Latn'),
  'lv': ('Latvian', 'Latn'),
  'mai': ('Maithili', 'Deva'),
  'mg': ('Malagasy', 'Latn'),
  'mi': ('Maori', 'Latn'),
  'mk': ('Macedonian', 'Cyrl'),
  'ml': ('Malayalam', 'Mlym'),
  'mn': ('Mongolian', 'Cyrl'),
  'mni': ('Manipuri', 'Beng'),
  'mr': ('Marathi', 'Deva'),
  'ms': ('Malay', 'Latn'),
  'mt': ('Maltese', 'Latn'),
  'my': ('Burmese', 'Mymr'),
  'nan': ('Min Nan Chinese', 'Latn'),
  'nds': ('Low German', 'Latn'),
  'ne': ('Nepali', 'Deva'),
  'nl': ('Dutch', 'Latn'),
  'nn': ('Norwegian Nynorsk', 'Latn'),
  'no': ('Norwegian', 'Latn'),
  'nb': ('Norwegian Bokmal', 'Latn'),
  'nv': ('Navajo', 'Latn'),
  'oc': ('Occitan', 'Latn'),
  'om': ('Oromo', 'Latn'),
  'or': ('Odia', 'Orya'),
  'pa': ('Punjabi', 'Guru'),
  'pcm': ('Nigerian Pidgin', 'Latn'),
  'pl': ('Polish', 'Latn'),
  'ps': ('Pashto', 'Arab'),
  'pt': ('Portuguese', 'Latn'),
  'qu': ('Quechua', 'Latn'),
  'quz': ('Cusco Quechua', 'Latn'),
  'rm': ('Romansh', 'Latn'),
  'ro': ('Romanian', 'Latn'),
  'root': ('Root locale', 'Zyyy'),
  'ru': ('Russian', 'Cyrl'),
  'rw': ('Kinyarwanda', 'Latn'),
  'sa': ('Sanskrit', 'Deva'),
  'sat': ('Santali', 'Olck'),
  'sc': ('Sardinian', 'Latn'),
  'sco': ('Scots', 'Latn'),
  'sd': ('Sindhi', 'Arab'),
  'si': ('Sinhala', 'Sinh'),
  'sk': ('Slovak', 'Latn'),
  'sl': ('Slovenian', 'Latn'),
  'so': ('Somali', 'Latn'),
  'sq': ('Albanian', 'Latn'),
  'sr': ('Serbian', 'Cyrl'),
  'su': ('Sundanese', 'Latn'),
  'sv': ('Swedish', 'Latn'),
  'sw': ('Swahili', 'Latn'),
  'ta': ('Tamil', 'Taml'),
  'te': ('Telugu', 'Telu'),
  'tg': ('Tajik', 'Cyrl'),
  'th': ('Thai', 'Thai'),
  'ti': ('Tigrinya', 'Ethi'),
  'tk': ('Turkmen', 'Latn'),
  'tl': ('Tagalog', 'Latn'),
  'to': ('Tongan', 'Latn'),
  'tr': ('Turkish', 'Latn'),
  'tt': ('Tatar', 'Cyrl'),
  'ug': ('Uyghur', 'Arab'),
  'uk': ('Ukrainian', 'Cyrl'),
  'ur': ('Urdu', 'Arab'),
  'uz': ('Uzbek', 'Latn'),
  'vec': ('Venetian', 'Latn'),
  'vi': ('Vietnamese', 'Latn'),
  'vo': ('Volapuk', 'Latn'),
  'war': ('Waray', 'Latn'),
  'wo': ('Wolof', 'Latn'),
  'xh': ('Xhosa', 'Latn'),
  'xmf': ('Mingrelian', 'Geor'),
  'yi': ('Yiddish', 'Hebr'),
  'yo': ('Yoruba', 'Latn'),
  'yue': ('Cantonese', 'Hant'),
  'zh': ('Chinese', 'Hans'),
  'zu': ('Zulu', 'Latn'),
}

# Full tags whose name or script is not composed from subtags.
_SPECIAL = {
  'be-tarask': ('Belarusian (Taraskievica)', 'Cyrl'),
  'zh-TW': ('Chinese (Traditional, Taiwan)', 'Hant'),
  'zh-HK': ('Chinese (Traditional, Hong Kong)', 'Hant'),
}

# ISO 15924 code -> English name (the scripts this table and the detector produce).
SCRIPT_NAMES = {
  'Arab': 'Arabic',
  'Armn': 'Armenian',
  'Beng': 'Bangla',
  'Cakm': 'Chakma',
  'Cher': 'Cherokee',
  'Cyrl': 'Cyrillic',
  'Deva': 'Devanagari',
  'Ethi': 'Ethiopic',
  'Geor': 'Georgian',
  'Grek': 'Greek',
  'Gujr': 'Gujarati',
  'Guru': 'Gurmukhi',
  'Hang': 'Hangul',
  'Hani': 'Han',
  'Hans': 'Han (Simplified)',
  'Hant': 'Han (Traditional)',
  'Hebr': 'Hebrew',
  'Hira': 'Hiragana',
  'Jpan': 'Japanese',
  'Kana': 'Katakana',
  'Khmr': 'Khmer',
  'Knda': 'Kannada',
  'Kore': 'Korean',
  'Laoo': 'Lao',
  'Latn': 'Latin',
  'Mlym': 'Malayalam',
  'Mong': 'Mongolian',
  'Mymr': 'Myanmar',
  'Olck': 'Ol Chiki',
  'Orya': 'Odia',
  'Sinh': 'Sinhala',
  'Taml': 'Tamil',
  'Telu': 'Telugu',
  'Thaa': 'Thaana',
  'Thai': 'Thai',
  'Tibt': 'Tibetan',
  'Tfng': 'Tifinagh',
  'Zyyy': 'Common',
  'Zzzz': 'Unknown',
}

# Region subtags that appear in CLDR annotation locales.
_REGIONS = {
  '001': 'World',
  '419': 'Latin America',
  'AU': 'Australia',
  'BA': 'Bosnia & Herzegovina',
  'BJ': 'Benin',
  'BR': 'Brazil',
  'CA': 'Canada',
  'CH': 'Switzerland',
  'CN': 'China',
  'GB': 'United Kingdom',
  'HK': 'Hong Kong',
  'IN': 'India',
  'KE': 'Kenya',
  'MX': 'Mexico',
  'NE': 'Niger',
  'PT': 'Portugal',
  'SA': 'Saudi Arabia',
  'TW': 'Taiwan',
  'US': 'United States',
}

# First word(s) of a Unicode character name -> ISO 15924 code, for script detection.
_NAME_PREFIX_TO_SCRIPT = {
  'LATIN': 'Latn',
  'CYRILLIC': 'Cyrl',
  'GREEK': 'Grek',
  'ARABIC': 'Arab',
  'HEBREW': 'Hebr',
  'ARMENIAN': 'Armn',
  'GEORGIAN': 'Geor',
  'DEVANAGARI': 'Deva',
  'BENGALI': 'Beng',
  'GURMUKHI': 'Guru',
  'GUJARATI': 'Gujr',
  'ORIYA': 'Orya',
  'TAMIL': 'Taml',
  'TELUGU': 'Telu',
  'KANNADA': 'Knda',
  'MALAYALAM': 'Mlym',
  'SINHALA': 'Sinh',
  'THAI': 'Thai',
  'LAO': 'Laoo',
  'TIBETAN': 'Tibt',
  'MYANMAR': 'Mymr',
  'KHMER': 'Khmr',
  'ETHIOPIC': 'Ethi',
  'HANGUL': 'Hang',
  'HIRAGANA': 'Hira',
  'KATAKANA': 'Kana',
  'CJK': 'Hani',
  'THAANA': 'Thaa',
  'CHEROKEE': 'Cher',
  'MONGOLIAN': 'Mong',
  'OL': 'Olck',
  'CHAKMA': 'Cakm',
  'TIFINAGH': 'Tfng',
}

# Scripts written without spaces between words: coverage counts tokens per character there.
NO_SPACE_SCRIPTS = frozenset(
  {'Hani', 'Hans', 'Hant', 'Jpan', 'Hira', 'Kana', 'Thai', 'Laoo', 'Khmr', 'Mymr', 'Tibt'}
)


@dataclasses.dataclass(frozen=True)
class Language:
  code: str
  name: str
  script: str

  @property
  def script_name(self) -> str:
    return SCRIPT_NAMES.get(self.script, self.script)


def char_script(ch: str) -> str | None:
  """ISO 15924 code of one character, or None for digits, punctuation, spaces and symbols."""
  try:
    name = unicodedata.name(ch)
  except ValueError:
    return None
  first = name.split(' ', 1)[0]
  if first == 'OL' and not name.startswith('OL CHIKI'):
    return None
  return _NAME_PREFIX_TO_SCRIPT.get(first)


def detect_script(text: str) -> str:
  """Dominant script of `text` (ISO 15924); 'Jpan'/'Kore' when kana/hangul mix with Han."""
  counts = collections.Counter(s for s in map(char_script, text) if s)
  if not counts:
    return 'Zyyy'
  if counts['Hira'] or counts['Kana']:
    return 'Jpan'
  if counts['Hang']:
    return 'Kore' if counts['Hani'] else 'Hang'
  return counts.most_common(1)[0][0]


def lookup(code: str, sample_text: str | None = None) -> Language:
  """Metadata for `code`; unknown codes keep the code as name and detect script from text."""
  for key in (code, code.replace('_', '-')):
    if key in _SPECIAL:
      return Language(code, *_SPECIAL[key])
  lang, script, region, rest = language_codes.split(code)
  base = _BASE.get(lang)
  name = base[0] if base else code
  qualifiers = []
  if script:
    qualifiers.append(
      {'Hans': 'Simplified', 'Hant': 'Traditional'}.get(script, SCRIPT_NAMES.get(script, script))
    )
  if region:
    qualifiers.append(_REGIONS.get(region, region))
  qualifiers.extend(rest)
  if base and qualifiers:
    name = '%s (%s)' % (name, ', '.join(qualifiers))
  if script is None:
    if lang in ('zh', 'yue') and region in ('TW', 'HK', 'MO'):
      script = 'Hant'
    elif base:
      script = base[1]
    elif sample_text:
      script = detect_script(sample_text)
    else:
      script = 'Zzzz'
  return Language(code, name, script)


def is_known(code: str) -> bool:
  """Whether the table knows the language (not only the subtags' shape)."""
  if code in _SPECIAL or code.replace('_', '-') in _SPECIAL:
    return True
  try:
    return language_codes.split(code)[0] in _BASE
  except ValueError:
    return False


def uses_spaces(code_or_script: str) -> bool:
  """False for scripts written without word spaces (count tokens per character there)."""
  script = code_or_script if code_or_script in SCRIPT_NAMES else lookup(code_or_script).script
  return script not in NO_SPACE_SCRIPTS


# The 108 WIT language tags (as they appear in the WIT 'language' column).
WIT_LANGUAGES = (
  'af an ar arz ast az azb ba bar be be-tarask bg bn br bs ca ce ceb ckb cs cv cy da de el en '
  'eo es et eu fa fi fil fr fy ga gl hi hr hsb ht hu hy ia id io is it iw ja jv ka kk kn ko la '
  'lah lb lmo lt lv mg mk ml mn mr ms my nan nds ne nl nn no nv oc pa pl pt qu ro ru sco si sk '
  'sl sq sr sr-Latn sv sw ta te tg th tr tt uk ur uz vec vi vo war xmf yue zh zh-TW'
).split()
