"""Texts as users type and see them: what counts as empty, how wide a label prints, how a file
name that is not UTF-8 prints and goes into JSON.
"""

import re
import unicodedata


def is_blank(text: str) -> bool:
  """Whitespace and invisible format characters only (zero-width space U+200B, joiners, BOM
  U+FEFF, direction marks: Unicode category Cf): such a text looks empty and would embed as the
  end-of-text token alone."""
  return all(c.isspace() or unicodedata.category(c) == 'Cf' for c in text)


def display_width(text: str) -> int:
  """Terminal columns: wide and full-width characters (CJK) take two, combining marks and format
  characters none (Devanagari's vowel signs, Arabic's harakat, ZWJ)."""
  width = 0
  for c in text:
    if unicodedata.combining(c) or unicodedata.category(c) in ('Mn', 'Me', 'Cf'):
      continue
    width += 2 if unicodedata.east_asian_width(c) in ('W', 'F') else 1
  return width


def pad(text: str, width: int) -> str:
  """text left-aligned in `width` terminal columns (str.ljust counts characters, not columns)."""
  return text + ' ' * max(0, width - display_width(text))


def printable(name: str) -> str:
  """A file name as os.listdir gives it, printable: bytes that are not UTF-8 (held as surrogate
  escapes, which print() refuses) show as \\xff."""
  return name.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


_LONE_SURROGATE = re.compile('[\ud800-\udfff]')


def json_text(text: str) -> str:
  """JSON (json.dumps's output, ensure_ascii=False) writable as UTF-8: a file name's surrogate
  escapes (bytes that are not UTF-8) become \\udcff escapes, which json.load reads back to the
  very str os.listdir gave; other characters stay readable."""
  return _LONE_SURROGATE.sub(lambda m: f'\\u{ord(m.group()):04x}', text)
