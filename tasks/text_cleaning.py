"""Cleaning of YFCC100m free text (URL-encoded, HTML-laden) and the paper's title filter."""

import html
import re
import urllib.parse

_BAD_PERCENT = re.compile(r'%(?![0-9A-Fa-f]{2})')
_HTML_TAG = re.compile(r'<[^<>]*>')
_URL = re.compile(r'(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)\S+', re.IGNORECASE)
_SPACE = re.compile(r'\s+')
_TITLE_PREFIXES = ('dsc', 'img', 'picture')


class BadTextError(ValueError):
  """A field that cannot be decoded; `reason` is a data_stats skip reason."""

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason


def url_decode(text: str) -> str:
  """Decodes percent-encoding with '+' as space; raises BadTextError when invalid."""
  match = _BAD_PERCENT.search(text)
  if match:
    raise BadTextError(
      'bad_percent_encoding',
      f'bad percent-escape at char {match.start()}: {text[match.start() : match.start() + 3]!r}',
    )
  raw = urllib.parse.unquote_to_bytes(text.replace('+', ' '))
  try:
    return raw.decode('utf-8')
  except UnicodeDecodeError as e:
    raise BadTextError('invalid_utf8', f'percent-decoded bytes are not UTF-8: {e}') from e


def clean_text(text: str) -> str:
  """Removes HTML tags and entities and URLs, and collapses whitespace."""
  text = _HTML_TAG.sub(' ', text)
  text = html.unescape(text)
  # Entities may have hidden tags (&lt;b&gt;): strip what unescaping revealed.
  text = _HTML_TAG.sub(' ', text)
  text = _URL.sub(' ', text)
  return _SPACE.sub(' ', text).strip()


def keep_title(title: str) -> bool:
  """The paper's (Appendix C) title filter: False for camera-default/numeric titles."""
  if not title:
    return False
  lower = title.lower()
  if lower.startswith(_TITLE_PREFIXES) or lower == 'image':
    return False
  chars = [c for c in title if not c.isspace()]
  digits = sum(c.isdigit() for c in chars)
  return digits * 2 <= len(chars)


def clean_tags(field: str) -> list[str]:
  """Comma-separated, URL-encoded user tags -> list of cleaned, non-empty tags."""
  tags = (clean_text(url_decode(t)) for t in field.split(','))
  return [t for t in tags if t]
