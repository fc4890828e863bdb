"""Parses Unicode emoji-test.txt: fully-qualified emoji with group and subgroup."""

import collections
import dataclasses
import re

SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))  # Fitzpatrick modifiers
_LINE = re.compile(r'^([0-9A-Fa-f ]+);\s*([a-z-]+)\s*#\s*(\S+)\s+E(\d+\.\d+)\s+(.*)$')


@dataclasses.dataclass(frozen=True)
class Emoji:
  emoji: str
  codepoints: tuple[int, ...]
  group: str
  subgroup: str
  english: str  # the short name in emoji-test.txt (for logs; CLDR gives the real names)
  version: str  # Emoji version that introduced it, e.g. '13.0'

  @property
  def key(self) -> str:
    """The emoji without U+FE0F, which is how CLDR annotations spell it."""
    return self.emoji.replace('\ufe0f', '')


@dataclasses.dataclass
class EmojiTest:
  emoji: list[Emoji]
  version: str  # the file's 'Version:' header
  skipped: collections.Counter  # reason -> count


def parse_emoji_test(path: str) -> EmojiTest:
  """Reads emoji-test.txt; keeps fully-qualified emoji without skin-tone modifiers."""
  group = subgroup = None
  version = 'unknown'
  out, skipped = [], collections.Counter()
  with open(path, encoding='utf-8') as f:
    for lineno, raw in enumerate(f, 1):
      line = raw.strip()
      if not line:
        continue
      if line.startswith('#'):
        body = line[1:].strip()
        if body.startswith('group:'):
          group = body[len('group:') :].strip()
        elif body.startswith('subgroup:'):
          subgroup = body[len('subgroup:') :].strip()
        elif body.startswith('Version:'):
          version = body[len('Version:') :].strip()
        continue
      m = _LINE.match(line)
      if not m:
        skipped['malformed_line'] += 1
        continue
      if group is None or subgroup is None:
        raise ValueError(f'{path}:{lineno}: emoji line before any group/subgroup header')
      status = m.group(2)
      if status != 'fully-qualified':
        skipped[status] += 1
        continue
      cps = tuple(int(c, 16) for c in m.group(1).split())
      if any(c in SKIN_TONES for c in cps):
        skipped['skin_tone_variant'] += 1
        continue
      emoji = ''.join(chr(c) for c in cps)
      if m.group(3) != emoji:
        skipped['codepoints_mismatch_comment'] += 1
        continue
      out.append(Emoji(emoji, cps, group, subgroup, m.group(5).strip(), m.group(4)))
  if not out:
    raise ValueError(f'{path}: no fully-qualified emoji found (is it emoji-test.txt?)')
  return EmojiTest(out, version, skipped)
