"""`mlit demo --compare`'s summary: English with its interval, median language, seed spread.

The variants themselves run through `mlit demo` in tests/test_demo_pipeline.py.
"""

import json

import pytest

from eval_multilingual import report_data
from mlit.commands import demo, demo_compare

TASK = demo_compare.TASK


def _results(path, scores, n=371):
  path.mkdir(parents=True, exist_ok=True)
  results = {
    'languages': {lang: {TASK: {'acc1': s}} for lang, s in scores.items()},
    'meta': {lang: {TASK: {'n_examples': n}} for lang in scores},
  }
  (path / 'results.json').write_text(json.dumps(results))


def test_summary_reads_each_run_and_the_seed_spread(tmp_path):
  _results(tmp_path, {'en': 0.16, 'de': 0.12, 'ja': 0.10})
  _results(tmp_path / 'compare' / 'seed1', {'en': 0.14, 'de': 0.13, 'ja': 0.11})
  _results(tmp_path / 'compare' / 'seed2', {'en': 0.18, 'de': 0.09, 'ja': 0.10})
  _results(tmp_path / 'compare' / 'english_only', {'en': 0.20, 'de': 0.01, 'ja': 0.0})
  summary = demo_compare.summarize(str(tmp_path), ['seed1', 'seed2', 'english_only', 'emoji_vit'])
  runs = summary['runs']
  assert list(runs) == ['base', 'seed1', 'seed2', 'english_only']  # emoji_vit never ran
  assert runs['base']['median_language_top1'] == 0.12
  assert runs['english_only']['median_language_top1'] == 0.01
  assert runs['base']['english_95ci'] == pytest.approx(report_data.wilson(0.16, 371))
  seeds = summary['seeds']
  assert seeds['english_top1'] == pytest.approx({'mean': 0.16, 'min': 0.14, 'max': 0.18, 'n': 3})
  assert (
    seeds['median_language_top1']['min'] == 0.10 and seeds['median_language_top1']['max'] == 0.13
  )
  md = demo_compare.summary_markdown(summary)
  assert '| english_only | tuned on English texts only | 20.0% |' in md
  assert 'English mean 16.0% (range 14.0%-18.0%)' in md


def test_unknown_variant_is_one_line_and_exit_2(capsys):
  with pytest.raises(SystemExit) as e:
    demo.main(['--run_dir', 'unused', '--compare', 'seed1,nope'])
  assert e.value.code == 2
  assert "unknown --compare variants ['nope']" in capsys.readouterr().err


def test_compare_without_base_results_is_one_line_and_exit_2(tmp_path, capsys):
  assert demo_compare.compare(str(tmp_path), ['seed1'], []) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'results.json missing' in err
  assert not (tmp_path / 'compare').exists()  # no variant ran
