"""Renders emoji with Pillow: Noto Color Emoji (colour bitmaps) and Symbola (outlines).

Glyphs are drawn once at a large size (Noto's bitmap strike is 109 px), cropped
to their ink and then placed, downscaled, on small square canvases: a centred
eval render and seeded augmentations (scale, offset, background colour).
"""

import dataclasses

import numpy as np
from PIL import Image, ImageDraw, ImageFont

NOTO_SIZE = 109  # the only size of Noto Color Emoji's CBDT strike
_SELECTORS = frozenset('\ufe0e\ufe0f')


@dataclasses.dataclass(frozen=True)
class Augment:
  """Ranges of the seeded augmentation."""

  min_scale: float = 0.6  # glyph's longer side as a fraction of the canvas
  max_scale: float = 1.0
  white_bg_prob: float = 0.25  # else a uniform random RGB background


def _ink_crop(rgba: Image.Image) -> Image.Image | None:
  box = rgba.getchannel('A').getbbox()
  return rgba.crop(box) if box else None


class NotoRenderer:
  """Colour emoji from NotoColorEmoji.ttf (needs Pillow with FreeType; raqm for sequences)."""

  def __init__(self, font_path: str):
    self.font = ImageFont.truetype(font_path, NOTO_SIZE)
    # One emoji (any sequence Noto has a ligature for) advances by one glyph width.
    self._advance = self.font.getlength('\U0001f600')

  def glyph(self, emoji: str) -> Image.Image | None:
    """RGBA crop of the emoji's ink, or None when Noto lacks it (several glyphs or none)."""
    if self.font.getlength(emoji) > 1.25 * self._advance:
      return None
    left, top, right, bottom = self.font.getbbox(emoji)
    im = Image.new('RGBA', (right + 8, bottom + 8), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((4, 4), emoji, font=self.font, embedded_color=True)
    return _ink_crop(im)


class SymbolaRenderer:
  """Monochrome black glyphs from Symbola: only single code points that its cmap has."""

  def __init__(self, font_path: str, size: int = NOTO_SIZE):
    from fontTools.ttLib import TTFont  # pylint: disable=g-import-not-at-top

    with TTFont(font_path, lazy=True) as font:  # closed: it holds the file open
      self.cmap = set(font.getBestCmap())
    self.font = ImageFont.truetype(font_path, size)

  def has(self, emoji: str) -> bool:
    cps = [c for c in emoji if c not in _SELECTORS]
    return len(cps) == 1 and ord(cps[0]) in self.cmap

  def glyph(self, emoji: str) -> Image.Image | None:
    if not self.has(emoji):
      return None
    text = ''.join(c for c in emoji if c not in _SELECTORS)
    left, top, right, bottom = self.font.getbbox(text)
    im = Image.new('RGBA', (right + 8, bottom + 8), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((4, 4), text, font=self.font, fill=(0, 0, 0, 255))
    return _ink_crop(im)


def place(
  glyph: Image.Image,
  size: int,
  scale: float = 0.875,
  offset: tuple[float, float] = (0.5, 0.5),
  background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
  """uint8 [size, size, 3]: glyph scaled so its longer side is scale*size.

  offset in [0,1]^2 positions it within the free margin (0.5, 0.5 = centred).
  """
  w, h = glyph.size
  side = max(1, round(scale * size))
  f = side / max(w, h)
  nw, nh = max(1, round(w * f)), max(1, round(h * f))
  small = glyph.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
  canvas = Image.new('RGBA', (size, size), tuple(background) + (255,))
  x = round(offset[0] * (size - nw))
  y = round(offset[1] * (size - nh))
  canvas.alpha_composite(small, (x, y))
  return np.asarray(canvas.convert('RGB'), dtype=np.uint8)


def augmentations(
  glyph: Image.Image, size: int, n: int, seed: int, index: int, aug: Augment = Augment()
) -> np.ndarray:
  """uint8 [n, size, size, 3], reproducible from (seed, index) alone."""
  rng = np.random.default_rng([seed, index])
  out = np.empty((n, size, size, 3), np.uint8)
  for k in range(n):
    scale = rng.uniform(aug.min_scale, aug.max_scale)
    offset = tuple(rng.uniform(0.0, 1.0, size=2))
    if rng.uniform() < aug.white_bg_prob:
      bg = (255, 255, 255)
    else:
      bg = tuple(int(v) for v in rng.integers(0, 256, size=3))
    out[k] = place(glyph, size, scale, offset, bg)
  return out
