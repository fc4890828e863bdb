"""Images as users have them, read by mlit.load's preprocessing (mlit/inference/preprocess.py)
and the evaluation's image store: 16-bit grey, 32-bit samples, decompression bombs. No model
needed; tests on a trained run are in test_inference.py."""

import numpy as np
import pytest
from PIL import Image

from eval_multilingual.datasets import image_store
from mlit.inference import preprocess
from tasks.user_error import UserError


def _grey16(tmp_path):
  """A 16-bit grey PNG (PIL mode I;16) of a ramp, and the 8-bit ramp it holds."""
  grey8 = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
  path = tmp_path / 'ramp16.png'
  Image.fromarray(grey8.astype(np.uint16) * 257).save(path)
  with Image.open(path) as im:
    assert im.mode == 'I;16'
  return path, grey8


def test_16_bit_grey_keeps_its_top_8_bits(tmp_path):
  """convert('RGB') clips 16-bit grey above 255 to white (the whole image, but for black)."""
  path, grey8 = _grey16(tmp_path)
  want = preprocess.to_unit_range(np.repeat(grey8[..., None], 3, -1))
  got = preprocess.load_images([str(path)], 64)[0]
  np.testing.assert_array_equal(got, want)
  with Image.open(path) as im:  # a PIL image given directly, too
    np.testing.assert_array_equal(preprocess.load_images([im], 64)[0], want)
  # The evaluation reads its image store the same way.
  store = image_store.LocalImageStore(str(tmp_path), image_size=64)
  np.testing.assert_allclose(store.load(['ramp16'])[0], want, atol=1e-6)


def test_32_bit_samples_are_refused_not_clipped(tmp_path):
  path = tmp_path / 'float.tif'
  Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(path)
  with pytest.raises(UserError, match=rf"{path}: 32-bit float samples \(PIL mode 'F'\)"):
    preprocess.load_images([str(path)], 8)


def test_a_decompression_bomb_is_an_unreadable_image(tmp_path, monkeypatch):
  """Pillow's DecompressionBombError is no OSError: it escaped as a traceback, and stopped
  `mlit embed --images` of a whole folder at that file instead of skipping it. It says how large
  the image is and PIL's limit (it was only 'not a readable image')."""
  path = tmp_path / 'big.png'
  Image.new('L', (30, 30)).save(path)
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 400)  # 900 pixels > twice the limit
  with pytest.raises(UserError, match=rf"{path}: too large \(900 pixels, PIL's limit 800\)") as e:
    preprocess.load_images([str(path)], 8)
  assert e.value.reason == "too large (900 pixels, PIL's limit 800)"
