"""The default chrF floor against hand-labelled apertium round trips (meaning kept or not)."""

import pathlib

import pytest

from mlit.translation import backtranslation

LABELS = (
  pathlib.Path(__file__).resolve().parent.parent
  / 'mlit/translation/labels/apertium_emoji_roundtrips.tsv'
)


def _rows():
  lines = [l for l in LABELS.read_text(encoding='utf-8').splitlines() if not l.startswith('#')]
  header = lines[0].split('\t')
  return [dict(zip(header, l.split('\t'))) for l in lines[1:]]


def precision_recall(rows, quality):
  kept = [
    r for r in rows if quality.verdict(r['text'], r['round_trip'], float(r['chrf'])) == 'kept'
  ]
  good = [r for r in rows if r['meaning_kept'] == '1']
  true_kept = sum(r['meaning_kept'] == '1' for r in kept)
  return true_kept / len(kept), true_kept / len(good)


def test_labelled_chrf_is_what_the_filter_computes():
  rows = _rows()
  assert 40 <= len(rows) <= 60 and {r['meaning_kept'] for r in rows} == {'0', '1'}
  for r in rows:
    chrf, _ = backtranslation.score(r['text'], r['round_trip'])
    assert chrf == pytest.approx(float(r['chrf']), abs=0.05), r


def test_default_floor_precision_and_recall_as_documented():
  rows = _rows()
  default = backtranslation.QualityFilter()
  assert default.min_chrf == 40.0
  # The numbers the README and QualityFilter's docstring give.
  assert precision_recall(rows, default) == pytest.approx((24 / 30, 24 / 25))
  old = backtranslation.QualityFilter(min_chrf=30.0)
  assert precision_recall(rows, old) == pytest.approx((25 / 38, 25 / 25))
