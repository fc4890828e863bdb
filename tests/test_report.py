"""`mlit report` on synthetic results.json files written by the test."""

import json
import math
import random

import pytest
from PIL import Image

from eval_multilingual import languages, report, report_data

ZS = 'emoji_cldr/zeroshot_classification'
WIT = 'wit/retrieval'
EVIL = '<script>alert(1)</script>'


def write_run(
  path, seed: int, boost: float = 0.0, n_langs: int = 14, evil: bool = True, with_stats: bool = True
):
  """A plausible run: English best, scores fall with data; deterministic per seed."""
  rng = random.Random(seed)
  codes = ['en', 'de', 'fr'] + [c for c in languages.WIT_LANGUAGES if c not in ('en', 'de', 'fr')][
    : n_langs - 3
  ]
  if evil:
    codes.append(EVIL)
  langs, meta, lstats, tstats, pq = {}, {}, {}, {}, {}
  for i, c in enumerate(codes):
    n_train = 0 if i % 13 == 7 else int(10 ** (7 - 5 * i / len(codes)) * rng.uniform(0.5, 2))
    base = 0.02 + 0.6 * math.log10(1 + n_train) / 7 + rng.uniform(-0.05, 0.05)
    acc = max(0.0, min(1.0, base + boost * (i > 0)))
    langs[c] = {
      ZS: {'acc1': acc, 'acc5': min(1.0, acc + 0.2)},
      WIT: {
        'image_retrieval_recall@1': acc * 0.5,
        'text_retrieval_recall@1': acc * 0.45,
        'image_retrieval_recall@5': min(1.0, acc * 0.9),
      },
    }
    meta[c] = {'n_examples': 200, 'n_classes': 50}
    lstats[c] = {'n_train_examples': n_train}
    script = languages.lookup(c).script
    tstats[c] = {
      'tokens_per_word': 1.3 if script == 'Latn' else 4.0,
      'byte_fallback_share': 0.0 if script == 'Latn' else 0.6,
      'unk_share': 0.0,
      'truncated_share': 0.05 if script == 'Latn' else 0.7,
      'n_texts': 100,
    }
    pq[c] = {'chrf': 55.0 + i}
  results = {
    'model': {'name': path.name, 'vocab': 'mc4 <vocab>'},
    'languages': langs,
    'macro': {ZS: {'acc1': sum(v[ZS]['acc1'] for v in langs.values()) / len(langs)}},
    'meta': meta,
  }
  path.mkdir(parents=True, exist_ok=True)
  (path / 'results.json').write_text(json.dumps(results), encoding='utf-8')
  if with_stats:
    (path / 'language_stats.json').write_text(json.dumps(lstats))
    (path / 'tokenizer_stats.json').write_text(json.dumps(tstats))
    (path / 'prompt_quality.json').write_text(json.dumps(pq))
  return results


def _is_png(path) -> bool:
  with open(path, 'rb') as f:
    if f.read(8) != b'\x89PNG\r\n\x1a\n':
      return False
  with Image.open(path) as im:
    im.verify()
  with Image.open(path) as im:
    return im.size[0] >= 300 and im.size[1] >= 200


def test_report_html_md_and_plots(tmp_path):
  data = write_run(tmp_path / 'a', seed=1)
  assert report.main([str(tmp_path / 'a')]) == 0
  out = tmp_path / 'a' / 'report'
  page = (out / 'index.html').read_text(encoding='utf-8')
  assert EVIL not in page and '&lt;script&gt;alert(1)&lt;/script&gt;' in page
  assert 'mc4 &lt;vocab&gt;' in page
  assert page.count('<script') == 0  # self-contained and inert: no scripts at all
  assert page.count('data:image/png;base64,') >= 6
  assert 'src="http' not in page and 'href=' not in page
  pngs = sorted(p.name for p in out.glob('*.png'))
  assert any(p.startswith('bars_') for p in pngs)
  assert any(p.startswith('vs_data_') for p in pngs)
  assert any(p.startswith('scripts_') for p in pngs)
  assert all(_is_png(out / p) for p in pngs)
  md = (out / 'report.md').read_text(encoding='utf-8')
  assert '| English | en | Latn |' in md
  accs = {l: v[ZS]['acc1'] for l, v in data['languages'].items()}
  rest = sorted(v for l, v in accs.items() if l != 'en')
  median = (rest[len(rest) // 2 - 1] + rest[len(rest) // 2]) / 2  # 14 others: even count
  macro = sum(accs.values()) / len(accs)
  headline = (
    f'| emoji_cldr top-1 acc | {len(accs)} | {100 * macro:.1f} | '
    f'{100 * accs["en"]:.1f} | {100 * median:.1f} | '
    f'{100 * (accs["en"] - median):+.1f} |'
  )
  assert headline in md
  assert '## By script' in md and '| Latin (Latn) |' in md


def test_summary_numbers(tmp_path):
  write_run(tmp_path / 'a', seed=3, evil=False)
  data = json.loads((tmp_path / 'a' / 'results.json').read_text())
  # Force one language under chance (1/50) and one just above the threshold.
  data['languages']['de'][ZS]['acc1'] = 0.01
  data['languages']['fr'][ZS]['acc1'] = 0.06
  (tmp_path / 'a' / 'results.json').write_text(json.dumps(data))
  run = report_data.load_run(str(tmp_path / 'a'))
  col = report_data.Column(ZS, 'acc1')
  s = report_data.summarize(run, col, threshold=0.05)
  accs = {l: v[ZS]['acc1'] for l, v in data['languages'].items()}
  assert s.n == len(accs)
  assert s.macro == pytest.approx(sum(accs.values()) / len(accs))
  rest = sorted(v for l, v in accs.items() if l != 'en')
  assert s.median_rest == pytest.approx(
    (rest[len(rest) // 2 - 1] + rest[len(rest) // 2]) / 2
    if len(rest) % 2 == 0
    else rest[len(rest) // 2]
  )
  assert s.english == accs['en']
  assert 'de' in s.below_chance and 'fr' not in s.below_chance
  assert s.below_threshold == sorted(l for l, v in accs.items() if v < 0.05)
  assert sum(n for _, n, *_ in s.by_script) == len(accs)
  assert report_data.chance(run, 'de', col) == pytest.approx(1 / 50)
  assert report_data.chance(run, 'de', report_data.Column(WIT, 'image_retrieval_recall@5')) == (
    pytest.approx(5 / 200)
  )


def test_compare_deltas(tmp_path):
  a = write_run(tmp_path / 'a', seed=1)
  b = write_run(tmp_path / 'b', seed=1, boost=0.1, with_stats=False)
  del b['languages']['de']  # a language missing from one run has no delta
  for run, name in ((a, 'a'), (b, 'b')):  # the zero-shot scores rest on 200 images each
    run['meta'] = {lang: {ZS: {'n_examples': 200}} for lang in run['languages']}
    (tmp_path / name / 'results.json').write_text(json.dumps(run))
  out = tmp_path / 'cmp'
  assert (
    report.main([str(tmp_path / 'a'), '--compare', str(tmp_path / 'b'), '--out', str(out)]) == 0
  )
  ra, rb = report_data.load_run(str(tmp_path / 'a')), report_data.load_run(str(tmp_path / 'b'))
  d = report_data.deltas(ra, rb, report_data.Column(ZS, 'acc1'))
  assert 'de' not in d
  for lang, delta in d.items():
    assert delta == pytest.approx(
      b['languages'][lang][ZS]['acc1'] - a['languages'][lang][ZS]['acc1']
    )
  assert d['en'] == 0.0
  md = (out / 'report.md').read_text(encoding='utf-8')
  # Row of a boosted language in the comparison table: a and b with their 95% Wilson intervals
  # and n, the delta in points, and whether it lies beyond both intervals (checkable beside it).
  fr_a, fr_b = a['languages']['fr'][ZS]['acc1'], b['languages']['fr'][ZS]['acc1']
  (lo_a, hi_a), (lo_b, hi_b) = report_data.wilson(fr_a, 200), report_data.wilson(fr_b, 200)
  beyond = 'yes' if hi_a < lo_b or hi_b < lo_a else 'no'
  row = (
    f'| French | fr | {100 * fr_a:.1f} | {100 * lo_a:.1f}–{100 * hi_a:.1f} (n=200) | '
    f'{100 * fr_b:.1f} | {100 * lo_b:.1f}–{100 * hi_b:.1f} (n=200) | '
    f'{100 * (fr_b - fr_a):+.1f} | {beyond} |'
  )
  assert row in md, md
  delta_pngs = list(out.glob('delta_*.png'))
  assert delta_pngs and all(_is_png(p) for p in delta_pngs)
  assert (out / 'index.html').read_text(encoding='utf-8').count('data:image/png') >= 9


def test_bad_results_are_clear_errors(tmp_path, capsys):
  (tmp_path / 'r').mkdir()
  assert report.main([str(tmp_path / 'r')]) == 2
  assert 'results.json: no such file' in capsys.readouterr().err
  (tmp_path / 'r' / 'results.json').write_text('{"languages": [1]}')
  assert report.main([str(tmp_path / 'r')]) == 2
  assert 'key "languages" missing or not an object' in capsys.readouterr().err
  (tmp_path / 'r' / 'results.json').write_text(
    json.dumps({'languages': {'en': {ZS: {'acc1': 'high', 'acc5': 0.5}}}})
  )
  run = report_data.load_run(str(tmp_path / 'r'))
  assert run.results['languages']['en'][ZS] == {'acc5': 0.5}
  assert any('languages.en.' + ZS + '.acc1' in w for w in run.warnings)
  assert report.main([str(tmp_path / 'r')]) == 0  # still renders what is valid


@pytest.mark.parametrize('value', [1.7, -0.2])
def test_a_score_outside_zero_one_is_named_and_ignored(tmp_path, capsys, value):
  results = write_run(tmp_path / 'r', 0, evil=False)
  results['languages']['de'][ZS]['acc1'] = value  # edited by hand
  # Counts per task, as mlit eval writes them; one not whole, one language without any.
  results['meta'] = {c: {ZS: {'n_examples': 200}, WIT: {'n_examples': 90}} for c in results['meta']}
  results['meta']['fr'][ZS]['n_examples'] = 370.5
  del results['meta']['en']
  (tmp_path / 'r' / 'results.json').write_text(json.dumps(results))
  run = report_data.load_run(str(tmp_path / 'r'))
  assert 'acc1' not in run.results['languages']['de'][ZS]
  assert run.warnings == [
    f'{tmp_path / "r" / "results.json"}: languages.de.{ZS}.acc1 = {value} is not a share in '
    '[0, 1]; ignored',
    f'{tmp_path / "r" / "results.json"}: meta.fr.{ZS}.n_examples = 370.5 is not a positive '
    'whole number',
    f'{tmp_path / "r" / "results.json"}: 2 language/task results have no example count '
    f'(meta.LANG.TASK.n_examples), so no interval or min-n mark: en {ZS}, en {WIT}',
  ]
  assert report.main([str(tmp_path / 'r')]) == 0  # was 'error: math domain error'
  assert 'is not a share in [0, 1]' in capsys.readouterr().err


def test_results_not_utf8_is_one_line_naming_the_file(tmp_path, capsys):
  (tmp_path / 'r').mkdir()
  (tmp_path / 'r' / 'results.json').write_bytes('{"model": "café"}'.encode('latin-1'))
  assert report.main([str(tmp_path / 'r')]) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'results.json: not UTF-8 text' in err, err


def test_bad_flags_and_empty_results_are_one_line(tmp_path, capsys):
  write_run(tmp_path / 'a', seed=1, evil=False)
  a = str(tmp_path / 'a')
  for flags, message in (
    (['--threshold', '5'], '--threshold 5: a fraction in (0, 1] is expected (5% is 0.05)'),
    (['--threshold', '0'], '--threshold 0: a fraction in (0, 1]'),
    (['--min-n', '-3'], '--min-n -3: a count of examples, 0 or more'),
    (['--recall-k', '7'], '--recall-k 7: the results have recall@k for k in 1, 5'),
    (
      ['--sort-by', 'nope/task'],
      '--sort-by nope/task: no such score in the results; it can sort by: ' + ZS + ':acc1,',
    ),
    (  # in results.json, but not a column: the message says what it can sort by
      ['--sort-by', f'{ZS}:acc5'],
      f'--sort-by {ZS}:acc5: in the results, but the report shows and sorts by top-1 accuracy '
      f'and recall@k (--recall-k) only; it can sort by: {ZS}:acc1, {WIT}:image_retrieval',
    ),
  ):
    assert report.main([a, *flags]) == 2, flags
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(f'mlit report: error: {message}'), err
  (tmp_path / 'e').mkdir()
  (tmp_path / 'e' / 'results.json').write_text('{"languages": {}, "macro": {}, "meta": {}}')
  assert report.main([str(tmp_path / 'e')]) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'no language has results; nothing to report' in err
  assert report.main([a, '--recall-k', '5']) == 0  # a k the results have


def test_sorted_by_the_main_score_and_every_kind_plotted(tmp_path):
  """A task scored in 3 languages that sorts first by name does not set the order; with more
  score columns than the old cap of 6 the retrieval scores are still plotted."""
  data = write_run(tmp_path / 'a', seed=2, evil=False)
  babel = 'emoji_babel_imagenet_heldout/zeroshot_classification'
  for i, (lang, scores) in enumerate(data['languages'].items()):
    if i < 3:
      scores[babel] = {'acc1': 0.9 - 0.3 * i}
    for t in range(5):
      scores[f'extra{t}/zeroshot_classification'] = {'acc1': 0.1}
  (tmp_path / 'a' / 'results.json').write_text(json.dumps(data))
  assert report.main([str(tmp_path / 'a')]) == 0
  out = tmp_path / 'a' / 'report'
  md = (out / 'report.md').read_text(encoding='utf-8')
  assert '\nSorted by emoji_cldr top-1 acc.\n' in md
  header = next(l for l in md.splitlines() if l.startswith('| Language | Code |'))
  assert header.split(' | ')[len(report.LANG_HEADERS)] == 'emoji_cldr top-1 acc %'
  ranked = sorted(data['languages'], key=lambda l: -data['languages'][l][ZS]['acc1'])
  lines = md.splitlines()
  start = lines.index(header) + 2  # after the header and its rule
  assert [r.split(' | ')[1] for r in lines[start : start + 3]] == ranked[:3]
  pngs = {p.name for p in out.glob('bars_*.png')}
  assert {
    'bars_wit_retrieval_image_retrieval_recall_1.png',
    f'bars_{ZS.replace("/", "_")}_acc1.png',
  } <= pngs
  # --sort-by picks another score; the caption names it.
  assert report.main([str(tmp_path / 'a'), '--sort-by', f'{babel}:acc1']) == 0
  md = (out / 'report.md').read_text(encoding='utf-8')
  assert '\nSorted by emoji_babel_imagenet_heldout top-1 acc.\n' in md


def test_script_legend_names_every_script():
  import matplotlib.pyplot as plt

  from eval_multilingual import report_plots

  scripts = [
    'Latn',
    'Cyrl',
    'Arab',
    'Deva',
    'Hani',
    'Grek',
    'Hebr',
    'Thai',
    'Jpan',
    'Kore',
    'Beng',
    'Taml',
    'Ethi',
    'Geor',
  ]
  colors = report_plots.script_colors(scripts)
  fig, ax = plt.subplots()
  report_plots._legend(ax, colors, set(scripts))
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  plt.close(fig)
  assert len(labels) == 13 and labels[-1].startswith('other scripts (')
  grey = sorted(s for s in scripts if colors[s] == report_plots._OTHER)
  assert len(grey) == 2 and all(s in labels[-1] for s in grey)


def test_no_empty_plots_when_no_language_has_min_n(tmp_path, capsys):
  # Every language's zero-shot score rests on 200 examples: at --min-n 500 none is plotted, and
  # the report says so instead of drawing empty axes (the WIT scores here record no n: plotted).
  data = write_run(tmp_path / 'a', seed=1)
  data['meta'] = {lang: {ZS: {'n_examples': 200}} for lang in data['languages']}
  (tmp_path / 'a' / 'results.json').write_text(json.dumps(data), encoding='utf-8')
  assert report.main([str(tmp_path / 'a'), '--min-n', '500']) == 0
  out = tmp_path / 'a' / 'report'
  pngs = [p.name for p in out.glob('*.png')]
  assert not [p for p in pngs if 'emoji_cldr' in p] and [p for p in pngs if 'wit' in p]
  assert 'no plots of emoji_cldr top-1 acc' in (out / 'report.md').read_text(encoding='utf-8')
  assert 'no language has 500 examples or more (--min-n)' in capsys.readouterr().err
