"""Backtranslation of one batch of texts: round trips through pivot languages, scored and filtered.

Shared by the single-machine job (mlit/translation/backtranslate_job.py) and the Apache Beam pipeline
(mlit/translation/backtranslate_beam.py), so both produce identical records.
"""

import dataclasses
import time
from typing import Sequence

import sacrebleu

from mlit.translation import backends as translation_backends


@dataclasses.dataclass(frozen=True)
class QualityFilter:
  """Keeps candidates that differ from the original but did not drift too far from it.

  A round trip that returns the original (or nearly: chrF >= max_chrf) adds no augmentation value;
  one below min_chrf has probably lost the meaning. Scores are sacrebleu sentence chrF in [0, 100].
  The floor 40 was chosen on 48 hand-labelled apertium round trips of emoji names
  (mlit/translation/labels/apertium_emoji_roundtrips.tsv): precision 0.80, recall 0.96 there,
  against 0.66 / 1.00 at 30 (tests/test_backtranslation_floor.py).
  """

  min_chrf: float = 40.0
  max_chrf: float = 95.0

  def verdict(self, original: str, candidate: str, chrf: float) -> str:
    if not candidate.strip():
      return 'empty'
    if _normalise(candidate) == _normalise(original) or chrf >= self.max_chrf:
      return 'near_identical'
    if chrf < self.min_chrf:
      return 'drifted'
    return 'kept'


def _normalise(text: str) -> str:
  return ' '.join(''.join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def score(original: str, candidate: str) -> tuple[float, float]:
  """Sentence-level (chrF, BLEU) of a candidate against the original text."""
  chrf = sacrebleu.sentence_chrf(candidate, [original]).score
  bleu = sacrebleu.sentence_bleu(candidate, [original]).score
  return round(chrf, 3), round(bleu, 3)


def _translate_with_retries(backend, lines, source, target, retries, retry_wait_s):
  last_error = None
  for attempt in range(retries + 1):
    try:
      return backend.translate(lines, source, target)
    except translation_backends.TranslationError as e:
      last_error = e
      if attempt < retries:
        time.sleep(retry_wait_s * (2**attempt))
  raise last_error


def backtranslate_batch(
  backend: translation_backends.TranslationBackend,
  ids: Sequence[str],
  texts: Sequence[str],
  *,
  source: str,
  pivots: Sequence[str],
  quality: QualityFilter = QualityFilter(),
  retries: int = 2,
  retry_wait_s: float = 0.5,
) -> tuple[list[dict], list[dict]]:
  """Round-trips `texts` through every pivot.

  Returns (records, failures): one record per input {id, text, candidates: [{pivot, pivot_text,
  text, chrf, bleu, verdict}]}, and one failure entry per (pivot, batch) whose translation failed after
  `retries` retries. A failed pivot leaves those texts without that candidate; it is recorded, never
  dropped silently.
  """
  records = [{'id': i, 'text': t, 'candidates': []} for i, t in zip(ids, texts)]
  failures = []
  for pivot in pivots:
    try:
      forward = _translate_with_retries(backend, texts, source, pivot, retries, retry_wait_s)
      back = _translate_with_retries(backend, forward, pivot, source, retries, retry_wait_s)
    except translation_backends.TranslationError as e:
      failures.append({'pivot': pivot, 'ids': list(ids), 'error': str(e)})
      continue
    for record, pivot_text, candidate in zip(records, forward, back):
      chrf, bleu = score(record['text'], candidate)
      record['candidates'].append(
        {
          'pivot': pivot,
          # The pivot-language text, so a reader can see where a round trip lost the meaning.
          'pivot_text': pivot_text,
          'text': candidate,
          'chrf': chrf,
          'bleu': bleu,
          'verdict': quality.verdict(record['text'], candidate, chrf),
        }
      )
  return records, failures


def summarise(records: Sequence[dict], failures: Sequence[dict]) -> dict:
  """Per pivot: kept, dropped per reason, mean chrF/BLEU of the kept candidates, failed texts."""
  summary = {}
  for record in records:
    for c in record['candidates']:
      s = summary.setdefault(
        c['pivot'], {'kept': 0, 'dropped': {}, 'chrf_sum': 0.0, 'bleu_sum': 0.0, 'failed': 0}
      )
      if c['verdict'] == 'kept':
        s['kept'] += 1
        s['chrf_sum'] += c['chrf']
        s['bleu_sum'] += c['bleu']
      else:
        s['dropped'][c['verdict']] = s['dropped'].get(c['verdict'], 0) + 1
  for f in failures:
    s = summary.setdefault(
      f['pivot'], {'kept': 0, 'dropped': {}, 'chrf_sum': 0.0, 'bleu_sum': 0.0, 'failed': 0}
    )
    s['failed'] += len(f['ids'])
  return summary


def merge_summaries(a: dict, b: dict) -> dict:
  out = {k: {**v, 'dropped': dict(v['dropped'])} for k, v in a.items()}
  for pivot, s in b.items():
    t = out.setdefault(
      pivot, {'kept': 0, 'dropped': {}, 'chrf_sum': 0.0, 'bleu_sum': 0.0, 'failed': 0}
    )
    for key in ('kept', 'chrf_sum', 'bleu_sum', 'failed'):
      t[key] += s[key]
    for reason, n in s['dropped'].items():
      t['dropped'][reason] = t['dropped'].get(reason, 0) + n
  return out


def finalise_summary(summary: dict) -> dict:
  """Replaces running sums with means, for printing and summary.json."""
  out = {}
  for pivot, s in sorted(summary.items()):
    kept = s['kept']
    out[pivot] = {
      'kept': kept,
      'dropped': s['dropped'],
      'failed': s['failed'],
      'mean_chrf_kept': round(s['chrf_sum'] / kept, 2) if kept else None,
      'mean_bleu_kept': round(s['bleu_sum'] / kept, 2) if kept else None,
    }
  return out
