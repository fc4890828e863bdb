"""Deterministic language identification with langdetect.

langdetect samples n-grams at random; fixing DetectorFactory.seed makes every call
on the same text return the same language. Short texts are too unreliable and get
'und'. Codes are spelled by tasks.language_codes ('zh-cn' -> 'zh', 'zh-tw' -> 'zh-TW').
"""

import functools

import langdetect
from langdetect import DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

import gin
from tasks.language_codes import UNDETERMINED, normalize

_SEED = 0


@functools.cache
def _load_profiles():
  DetectorFactory.seed = _SEED
  langdetect.detector_factory.init_factory()


@gin.configurable
def detect_language(text: str, min_length: int = 10) -> str:
  """Language code of `text` (language_codes.normalize), or 'und' when shorter than min_length
  or unknown."""
  text = text.strip()
  if len(text) < min_length:
    return UNDETERMINED
  _load_profiles()
  DetectorFactory.seed = _SEED
  try:
    code = langdetect.detect(text)
  except LangDetectException:
    return UNDETERMINED
  return normalize(code)
