"""Report statistics: Wilson intervals, minimum n, comparisons against the intervals, escaping."""

import json
import os
import re

import pytest

from eval_multilingual import report_data, tables

ZS = 'emoji_cldr/zeroshot_classification'
RET = 'emoji_cldr/retrieval'
ACC = report_data.Column(ZS, 'acc1')


def _run(tmp_path, name, scores: dict, n: dict):
  """results.json with per-task counts as mlit eval writes them (meta[lang][task])."""
  langs = {l: {ZS: {'acc1': s}, RET: {'image_retrieval_recall@1': s}} for l, s in scores.items()}
  meta = {
    l: {
      'n_examples': 2 * n[l],
      ZS: {'n_examples': n[l], 'n_classes': n[l]},
      RET: {'n_examples': n[l], 'n_texts': n[l] + 1, 'n_images': n[l]},
    }
    for l in scores
  }
  d = tmp_path / name
  d.mkdir()
  (d / 'results.json').write_text(json.dumps({'languages': langs, 'meta': meta, 'macro': {}}))
  return report_data.load_run(str(d))


def test_wilson_matches_the_closed_form():
  lo, hi = report_data.wilson(0.5, 10)
  assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
  assert report_data.wilson(0.0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
  assert report_data.wilson(1.0, 2)[1] == 1.0 and report_data.wilson(1.0, 2)[0] < 0.35


def test_small_languages_are_marked_last_and_out_of_the_macro(tmp_path):
  run = _run(tmp_path, 'a', {'en': 0.4, 'de': 0.3, 'rm': 0.75}, {'en': 100, 'de': 80, 'rm': 4})
  assert report_data.n_trials(run, 'rm', ACC) == 4
  recall = report_data.Column(RET, 'image_retrieval_recall@1')
  assert report_data.n_trials(run, 'en', recall) == 101  # text->image: one query per text
  assert report_data.ordered_languages(run, ACC) == ['en', 'de', 'rm']
  s = report_data.summarize(run, ACC, threshold=0.05)
  assert s.small == ['rm'] and s.n == 2 and s.macro == pytest.approx(0.35)
  s_all = report_data.summarize(run, ACC, threshold=0.05, min_n=1)
  assert s_all.small == [] and s_all.macro == pytest.approx((0.4 + 0.3 + 0.75) / 3)


def test_delta_outside_intervals(tmp_path):
  base = _run(tmp_path, 'base', {'en': 0.40, 'de': 0.30}, {'en': 2000, 'de': 10})
  other = _run(tmp_path, 'other', {'en': 0.50, 'de': 0.60}, {'en': 2000, 'de': 10})
  assert report_data.delta_outside_intervals(base, other, 'en', ACC) is True
  # +30 points on 10 examples is inside the intervals.
  assert report_data.delta_outside_intervals(base, other, 'de', ACC) is False


def test_markdown_escapes_data_text():
  md = tables.markdown(['Language'], [['<b>x</b> | *y* [z](u)']])
  assert '<b>' not in md and '&lt;b&gt;' in md and '\\|' in md and '\\*y\\*' in md
  assert '\\[z\\](u)' in md


def test_eval_copies_the_trainers_tuning_counts(tmp_path):
  import gin  # pylint: disable=g-import-not-at-top
  from eval_multilingual import encoders, run  # pylint: disable=g-import-not-at-top

  model_dir, run_dir = tmp_path / 'train', tmp_path / 'eval'
  model_dir.mkdir()
  run_dir.mkdir()
  (model_dir / 'language_stats.json').write_text('{"de": {"n_train_examples": 7}}')
  gin.parse_config(
    'from __gin__ import dynamic_registration\n'
    'from eval_multilingual import encoders\n'
    f'encoders.from_mlit_checkpoint.checkpoint_dir = "{model_dir}"\n'
  )
  assert gin.get_bindings(encoders.from_mlit_checkpoint)['checkpoint_dir'] == str(model_dir)
  record = run.copy_tuning_counts(str(run_dir), {'fingerprint': 'F'})
  results = {'languages': {'de': {}}, 'model': {'fingerprint': 'F'}, 'tuning_counts': record}
  (run_dir / 'results.json').write_text(json.dumps(results))
  loaded = report_data.load_run(str(run_dir))
  assert report_data.n_tuning_examples(loaded, 'de') == 7 and not loaded.warnings
  assert loaded.counts_note == (
    "Tuning examples: unknown, from the evaluated model's "
    + os.path.join('..', 'train', 'language_stats.json')
  )
  # results.json of another model beside these counts: not shown, and a warning says why.
  (run_dir / 'results.json').write_text(json.dumps(dict(results, model={'fingerprint': 'G'})))
  other = report_data.load_run(str(run_dir))
  assert report_data.n_tuning_examples(other, 'de') is None
  assert 'holds the tuning counts of model F, not of the evaluated G' in other.warnings[0]
  # Counts without a record (written before eval recorded them, or by hand): shown, and the
  # report says their model is not recorded.
  (run_dir / 'results.json').write_text('{"languages": {"de": {}}}')
  bare = report_data.load_run(str(run_dir))
  assert report_data.n_tuning_examples(bare, 'de') == 7
  assert 'not recorded' in bare.counts_note


def test_report_marks_small_languages_and_says_whether_deltas_are_beyond_the_intervals(tmp_path):
  from eval_multilingual import report  # pylint: disable=g-import-not-at-top

  n = {'en': 400, 'de': 300, 'rm': 4}
  base = _run(tmp_path, 'base', {'en': 0.40, 'de': 0.30, 'rm': 0.75}, n)
  other = _run(tmp_path, 'other <b>', {'en': 0.55, 'de': 0.31, 'rm': 0.25}, n)
  paths = report.build(base, [other], str(tmp_path / 'out'), 0.05, 1)
  md = open(paths['md'], encoding='utf-8').read()
  lines = md.splitlines()
  # rm (4 names at 75%) is listed last, marked, and out of the macro (mean of en and de).
  table = [l for l in lines if l.startswith('| ') and ' | en | ' in l or ' | rm | ' in l]
  assert ' | rm | ' in table[-1] and '(n=4 †)' in table[-1]
  summary = next(l for l in lines if l.startswith('| emoji_cldr top-1 acc |'))
  assert summary.startswith('| emoji_cldr top-1 acc | 2 | 35.0 |')
  assert any('under 20 examples' in l and '(rm)' in l for l in lines)
  assert '<b>' not in md and 'other &lt;b&gt;' in md
  # Comparison rows: each run's score with its interval and n, the delta, beyond both or not.
  de_row = next(
    l
    for l in lines
    if re.search(r'\| de \| 30\.0 \| [^|]+ \(n=300\) \| 31\.0 \| [^|]+ \(n=300\) \| \+1\.0 \|', l)
  )
  en_row = next(
    l
    for l in lines
    if re.search(r'\| en \| 40\.0 \| [^|]+ \(n=400\) \| 55\.0 \| [^|]+ \(n=400\) \| \+15\.0 \|', l)
  )
  assert de_row.rstrip(' |').endswith('no') and en_row.rstrip(' |').endswith('yes')
  # The comparison's headline over en and de (rm has 4 names: left out): +15 and +1 points.
  assert (
    'other &lt;b&gt;: mean Δ +8.0, median Δ +8.0 points over 2 languages with at least 20 '
    'examples; beyond both 95% CIs in 1 (1 up, 0 down).'
  ) in lines
  assert report.main([str(tmp_path / 'base'), '--min-n', '2', '--out', str(tmp_path / 'o2')]) == 0
  md2 = (tmp_path / 'o2' / 'report.md').read_text(encoding='utf-8')
  assert '| emoji_cldr top-1 acc | 3 |' in md2
