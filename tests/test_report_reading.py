"""`mlit report` as a reader meets it: damaged side files, chance per language, what the numbers
mean, small languages in every section, and comparisons that say what they compare."""

import json
import os
import shutil

import matplotlib.pyplot as plt
import pytest
from test_report import WIT, ZS, write_run

from eval_multilingual import report, report_data, report_plots

HELDOUT = 'emoji_babel_imagenet_heldout/zeroshot_classification'


def _md(run_dir) -> str:
  return (run_dir / 'report' / 'report.md').read_text(encoding='utf-8')


def _per_class(gaps_de: dict | None = None) -> dict:
  entry = {
    'name_en': 'lemon',
    'name': 'Zitrone',
    'tokens_en': 1,
    'tokens': 2,
    'truncated': False,
    'collides_with_names': [],
    'confused_with_name': 'Banane',
  }
  gap = {
    'n_classes': 2,
    'n_english_right_language_wrong': 1,
    'n_language_right_english_wrong': 0,
    'english_right_language_wrong': [entry],
    'language_right_english_wrong': [],
  }
  return {'tasks': {ZS: {'gaps': {'de': gaps_de if gaps_de is not None else gap}}}}


@pytest.mark.parametrize(
  'content, message',
  [
    (
      json.dumps({'tasks': {ZS: {'gaps': {'de': 5}}}}).encode(),
      f'tasks.{ZS}.gaps.de is not an object',
    ),
    (
      json.dumps(_per_class({'n_classes': 'two'})).encode(),
      f"tasks.{ZS}.gaps.de.n_classes = 'two' is not a count",
    ),
    (b'[1, 2]', 'top level must be an object'),
    (b'{"tasks": {\n', 'invalid JSON at line 2 column 1'),
    ('{"tasks": "café"}'.encode('latin-1'), 'not UTF-8 text'),
  ],
)
def test_a_damaged_per_class_file_is_one_warning_and_the_rest_renders(
  tmp_path, capsys, content, message
):
  write_run(tmp_path / 'a', seed=1, evil=False)
  (tmp_path / 'a' / 'per_class.json').write_bytes(content)
  assert report.main([str(tmp_path / 'a')]) == 0
  err = capsys.readouterr().err
  line = f'warning: {tmp_path / "a" / "per_class.json"}: {message}'
  assert line in err and 'per-class errors left out' in err and 'Traceback' not in err, err
  md = _md(tmp_path / 'a')
  assert '## Summary' in md and '## Per language' in md
  assert 'Per-class errors' not in md and 'per_class.json' in md  # named under Input warnings


def _capture_figures(monkeypatch) -> list:
  figures = []
  monkeypatch.setattr(report_plots.plt, 'close', figures.append)
  return figures


def test_bars_mark_chance_over_each_bar(tmp_path, monkeypatch):
  data = write_run(tmp_path / 'a', seed=1, n_langs=6, evil=False)
  data['meta']['de'] = {'n_examples': 200, 'n_classes': 4}  # 4-way: chance 25%
  (tmp_path / 'a' / 'results.json').write_text(json.dumps(data))
  run = report_data.load_run(str(tmp_path / 'a'))
  col = report_data.Column(ZS, 'acc1')
  figures = _capture_figures(monkeypatch)
  report_plots.bars(run, col, str(tmp_path / 'bars.png'))
  ax = figures[0].axes[0]
  langs = [t.get_text() for t in ax.get_xticklabels()]
  marks = {
    round((s[0][0] + s[1][0]) / 2): s[0][1] for c in ax.collections for s in c.get_segments()
  }
  assert marks == {
    i: pytest.approx(100 * (0.25 if l == 'de' else 0.02)) for i, l in enumerate(langs)
  }
  assert not [l for l in ax.get_lines() if l.get_xdata()[0] == 0 and l.get_xdata()[-1] == 1]
  assert 'chance (per language)' in [t.get_text() for t in ax.get_legend().get_texts()]
  plt.close(figures[0])


def test_scores_among_fewer_candidates_are_marked_with_their_chance(tmp_path):
  data = write_run(tmp_path / 'a', seed=1, evil=False)
  data['meta']['de'] = {'n_examples': 200, 'n_classes': 4}
  (tmp_path / 'a' / 'results.json').write_text(json.dumps(data))
  assert report.main([str(tmp_path / 'a')]) == 0
  md = _md(tmp_path / 'a')
  de = next(l for l in md.splitlines() if l.startswith('| German | de |'))
  assert f'| {100 * data["languages"]["de"][ZS]["acc1"]:.1f} (4-way) |' in de
  assert '| 50 (2.0) | 1 |' in md  # Summary: usual candidates (chance %), how many fewer
  assert 'fewest first: German (de) 4, chance 25.0%.' in md
  assert report.FEWER_CANDIDATES_NOTE in md


def _small_language_run(tmp_path) -> str:
  """Hausa scored on 3 images in the emoji-ImageNet, text-statistics and per-class sections."""
  data = write_run(tmp_path / 'a', seed=1, evil=False)
  text = {'text_length': 24, 'names_truncated_share': 0.0, 'texts_truncated_share': 0.0}
  data['languages']['ha'] = {HELDOUT: {'acc1': 0.0, 'acc5': 1.0}}
  data['meta']['ha'] = {HELDOUT: {'n_examples': 3, 'n_classes': 24, 'text': text}}
  (tmp_path / 'a' / 'results.json').write_text(json.dumps(data))
  per_class = _per_class()
  per_class['tasks'][HELDOUT] = per_class['tasks'].pop(ZS)
  per_class['tasks'][HELDOUT]['gaps']['ha'] = per_class['tasks'][HELDOUT]['gaps'].pop('de')
  (tmp_path / 'a' / 'per_class.json').write_text(json.dumps(per_class))
  return str(tmp_path / 'a')


def test_small_languages_are_marked_in_every_section(tmp_path):
  run_dir = _small_language_run(tmp_path)
  assert report.main([run_dir]) == 0
  md = _md(tmp_path / 'a')
  ci = report_data.wilson(1.0 - 1.0, 3)
  assert f'| Hausa (ha) | 3 † | 24 | 0.0 | 100.0 | 0.0–{100 * ci[1]:.1f} |' in md  # emoji ImageNet
  assert '| Hausa (ha) | 3 † | 24 | 0.0 | 0.0 |' in md  # truncation and collisions
  assert '| Hausa (ha) † | 2 | 1 | 0 |' in md  # per-class counts
  assert '| Hausa (ha) † | lemon | Zitrone |' in md
  # A note under each of the three sections, beside the one in "How to read this report".
  assert md.count('†: scored on fewer than 20 examples (--min-n)') == 4
  assert report.main([run_dir, '--min-n', '3']) == 0  # --min-n reaches these sections
  assert '3 †' not in _md(tmp_path / 'a') and 'Hausa (ha) †' not in _md(tmp_path / 'a')


def test_the_report_says_how_to_read_it(tmp_path):
  write_run(tmp_path / 'a', seed=1, evil=False)
  os.remove(tmp_path / 'a' / 'prompt_quality.json')  # no chrF anywhere: no empty column
  stats = json.loads((tmp_path / 'a' / 'language_stats.json').read_text())
  del stats['fr']  # not in the counts: no tuning examples, shown 0
  (tmp_path / 'a' / 'language_stats.json').write_text(json.dumps(stats))
  (tmp_path / 'a' / 'per_class.json').write_text(json.dumps(_per_class()))
  assert report.main([str(tmp_path / 'a')]) == 0
  md = _md(tmp_path / 'a')
  page = (tmp_path / 'a' / 'report' / 'index.html').read_text(encoding='utf-8')
  for text in (
    'How to read this report',
    'Wilson score interval',
    'images for zero-shot accuracy; for recall the query side, texts for T→I and images for I→T',
    'T→I R@k (text to image)',
    'Median of rest: the median over every language except English, leaving out those under '
    '--min-n',
    'percentage points (pp)',
  ):
    assert text in md and text in page, text
  assert '| English − median (pp) |' in md
  assert 'Prompt chrF' not in md
  assert '| French | fr | Latn | 0 |' in md
  assert '| Language | Classes compared |' in md and '| German (de) | 2 | 1 | 0 |' in md


def test_the_by_script_table_counts_per_score_and_says_its_order(tmp_path):
  data = write_run(tmp_path / 'a', seed=1, evil=False)
  del data['languages']['de'][WIT]  # one language fewer for the retrieval scores
  (tmp_path / 'a' / 'results.json').write_text(json.dumps(data))
  assert report.main([str(tmp_path / 'a')]) == 0
  md = _md(tmp_path / 'a')
  latin = [l for l in data['languages'] if report_data.language_info(None, l).script == 'Latn']
  row = next(l for l in md.splitlines() if l.startswith('| Latin (Latn) |'))
  assert f'({len(latin)}) |' in row and f'({len(latin) - 1}) |' in row
  assert 'Scripts sorted by median emoji_cldr top-1 acc, highest first.' in md


def test_comparing_a_run_with_itself_is_said(tmp_path, capsys):
  write_run(tmp_path / 'a', seed=1, evil=False)
  assert report.main([str(tmp_path / 'a'), '--compare', str(tmp_path / 'a')]) == 0
  err = capsys.readouterr().err
  assert f'--compare {tmp_path / "a"}: the same run directory as RUN_DIR' in err
  (tmp_path / 'copy').mkdir()
  os.rename(tmp_path / 'a' / 'report', tmp_path / 'old_report')
  shutil.copytree(tmp_path / 'a', tmp_path / 'copy' / 'a')
  assert report.main([str(tmp_path / 'a'), '--compare', str(tmp_path / 'copy' / 'a')]) == 0
  err = capsys.readouterr().err
  assert 'the same model as RUN_DIR (results.json model.name a)' in err
  md = _md(tmp_path / 'a')
  assert '| Language | Code | a | a 95% CI | copy/a | copy/a 95% CI | Δ copy/a |' in md


def test_a_compared_run_sharing_no_evaluation_is_said(tmp_path, capsys):
  """The same model evaluated on other datasets (WIT against XM3600) was warned to be 'the run
  with itself', and a run of other evaluations left every compared column empty, unsaid."""
  data = write_run(tmp_path / 'a', seed=1, evil=False)
  other = {
    'languages': {
      l: {f'other/{t}': m for t, m in ts.items()} for l, ts in data['languages'].items()
    }
  }
  other['meta'] = {
    l: {f'other/{t}': m for t, m in ts.items()} for l, ts in data.get('meta', {}).items()
  }
  (tmp_path / 'b').mkdir()
  (tmp_path / 'b' / 'results.json').write_text(json.dumps({**data, **other}))
  assert report.main([str(tmp_path / 'a'), '--compare', str(tmp_path / 'b')]) == 0
  err = capsys.readouterr().err
  assert f'--compare {tmp_path / "b"}: shares no evaluation with RUN_DIR (it has other/' in err
  assert 'its columns stay empty' in err and 'the same model' not in err


def test_a_report_of_the_current_folder_is_named_after_it(tmp_path, monkeypatch):
  write_run(tmp_path / 'demo', seed=1, evil=False)
  monkeypatch.chdir(tmp_path / 'demo')
  assert report.main(['.']) == 0
  assert _md(tmp_path / 'demo').startswith('# Language report: demo\n')


def test_comparison_rows_only_for_scored_languages(tmp_path):
  a = write_run(tmp_path / 'a', seed=1, evil=False)
  b = write_run(tmp_path / 'b', seed=2, evil=False)
  del a['languages']['de'][ZS]
  del b['languages']['de'][ZS]  # neither run scored German on the zero-shot task
  b['languages']['xx-new'] = {ZS: {'acc1': 0.5}}  # only the other run has it
  (tmp_path / 'a' / 'results.json').write_text(json.dumps(a))
  (tmp_path / 'b' / 'results.json').write_text(json.dumps(b))
  assert report.main([str(tmp_path / 'a'), '--compare', str(tmp_path / 'b')]) == 0
  md = _md(tmp_path / 'a')
  zs_table = md.split('### emoji_cldr top-1 acc')[1].split('###')[0]
  assert '| German | de |' not in zs_table and '| French | fr |' in zs_table
  assert 'Scored only in the other run, not shown: b: xx-new.' in zs_table
