"""Backtranslation: real apertium round trips, the quality filter, the job (resume, failures,
rejected rows), the Beam pipeline, and the training-time substitution preprocessor."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from mlit.translation import backends as translation_backends
from mlit.translation import backtranslate_job as backtranslate
from mlit.translation import backtranslation as backtranslation_core
from tasks import backtranslation
from tasks.user_error import UserError

CAPTIONS = [
  ('1', 'a small dog is running on the beach'),
  ('2', 'the old church in the centre of the city'),
  ('3', 'two children playing football in the park'),
  ('4', 'sunset over the mountains with red clouds'),
  ('5', 'a cat sleeping on a chair near the window'),
]

# A translator program for plumbing tests: "forward" reverses the words, "back" reverses them again
# and drops the last word of long texts, so some round trips change the text and some do not.
FAKE_TRANSLATOR = textwrap.dedent("""
    import sys, time
    source, target, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(delay)
    for line in sys.stdin:
        words = line.split()[::-1]
        if target == "en" and len(words) > 6:
            words = words[:-1]
        print(" ".join(words))
""")


def _write_tsv(path, rows, extra_lines=()):
  with open(path, 'wb') as f:
    for i, t in rows:
      f.write(f'{i}\t{t}\n'.encode())
    for line in extra_lines:
      f.write(line)


def _fake_backend(tmp_path, delay=0.0):
  script = tmp_path / 'fake_translator.py'
  script.write_text(FAKE_TRANSLATOR)
  return translation_backends.CommandBackend(
    f'{sys.executable} {script} {{source}} {{target}} {delay}'
  )


apertium = pytest.mark.skipif(
  not translation_backends.ApertiumBackend().supports('en', 'es')
  and os.environ.get('CI') != 'true',
  reason='apertium eng-spa not installed (make test installs it; CI never skips)',
)


@apertium
def test_apertium_round_trip_is_a_real_translation():
  backend = translation_backends.ApertiumBackend()
  texts = [t for _, t in CAPTIONS]
  spanish = backend.translate(texts, 'en', 'es')
  assert len(spanish) == len(texts)
  assert 'perro' in spanish[0].lower() and 'playa' in spanish[0].lower()
  back = backend.translate(spanish, 'es', 'en')
  assert len(back) == len(texts)
  assert 'dog' in back[0].lower()
  chrf = [backtranslation_core.score(o, b)[0] for o, b in zip(texts, back)]
  assert all(0 < c <= 100 for c in chrf)


@apertium
def test_apertium_catalan_round_trip_through_job(tmp_path):
  _write_tsv(tmp_path / 'in.tsv', CAPTIONS)
  summary = backtranslate.run(
    str(tmp_path / 'in.tsv'),
    str(tmp_path / 'out'),
    source='en',
    pivots=['es', 'ca'],
    backend=translation_backends.ApertiumBackend(),
    log=lambda *_: None,
  )
  assert summary['texts'] == len(CAPTIONS)
  for pivot in ('es', 'ca'):
    s = summary['pivots'][pivot]
    assert s['kept'] + sum(s['dropped'].values()) == len(CAPTIONS)
    assert s['failed'] == 0
  records = list(backtranslate.iter_records(str(tmp_path / 'out')))
  assert [r['id'] for r in records] == [i for i, _ in CAPTIONS]
  assert {c['pivot'] for c in records[0]['candidates']} == {'es', 'ca'}


def test_quality_filter_verdicts():
  q = backtranslation_core.QualityFilter(min_chrf=30, max_chrf=95)
  original = 'a small dog is running on the beach'
  assert q.verdict(original, 'A small dog is running on the beach.', 100.0) == 'near_identical'
  chrf, _ = backtranslation_core.score(original, 'a little dog runs on the beach')
  assert q.verdict(original, 'a little dog runs on the beach', chrf) == 'kept'
  chrf, _ = backtranslation_core.score(original, 'quantum chromodynamics lecture')
  assert chrf < 30
  assert q.verdict(original, 'quantum chromodynamics lecture', chrf) == 'drifted'
  assert q.verdict(original, '   ', 0.0) == 'empty'


def test_job_counts_rejected_rows_and_records_failures(tmp_path):
  bad = [b'only-one-column\n', b'7\t\xff\xfe broken utf8\n', b'8\t   \n']
  _write_tsv(tmp_path / 'in.tsv', CAPTIONS, bad)

  def run_job(out, pivot, backend, **kwargs):  # returns (summary, log lines)
    lines = []
    summary = backtranslate.run(
      str(tmp_path / 'in.tsv'),
      str(tmp_path / out),
      source='en',
      pivots=[pivot],
      backend=backend,
      log=lines.append,
      **kwargs,
    )
    return summary, lines

  def run_fake():  # the fake translator, 2 texts a shard
    return run_job('out', 'xx', _fake_backend(tmp_path), examples_per_shard=2)

  summary, lines = run_fake()
  assert summary['texts'] == len(CAPTIONS)
  # Progress counts the readable rows (5 of 8 lines), so the last shard ends at 5 of 5, ETA 0:00.
  progress = [l for l in lines if l.startswith('shard ')]
  assert [l.split(';')[0] for l in progress] == [
    f'shard {i} of 3: 0 failed batches' for i in (1, 2, 3)
  ]
  assert progress[0].split('; ')[1].startswith('2 of 5 texts, ')
  assert progress[-1].split('; ')[1].startswith('5 of 5 texts, ') and progress[-1].endswith(
    'ETA 0:00'
  )
  assert summary['rejected_rows'] == 3
  rejected = [json.loads(l) for l in open(tmp_path / 'out' / 'rejected_rows.jsonl')]
  assert sorted(r['line'] for r in rejected) == [6, 7, 8]
  verdicts = summary['pivots']['xx']
  assert verdicts['kept'] + sum(verdicts['dropped'].values()) == len(CAPTIONS)
  [pivot] = [l for l in lines if l.startswith('pivot ')]
  kept = verdicts['kept']
  assert pivot.startswith(f'pivot xx: kept {kept} of 5 texts, dropped {5 - kept}')
  assert ', failed 0; mean chrF of kept ' in pivot and "{'" not in pivot  # words, not a dict
  # The demo's English texts through ca (README): reasons by count, words instead of a dict.
  demo = {'kept': 843, 'dropped': {'drifted': 1024, 'near_identical': 4376}, 'failed': 0}
  assert backtranslate.pivot_line('ca', dict(demo, mean_chrf_kept=60.34), 6243) == (
    'pivot ca: kept 843 of 6,243 texts, dropped 5,400 (near-identical 4,376, drifted 1,024), '
    'failed 0; mean chrF of kept 60.34'
  )

  # Run again on the finished directory: nothing to translate, and it says so once.
  again, lines = run_fake()
  assert again == summary
  assert [l for l in lines if not l.startswith('pivot ')] == [
    'resumed: 3 of 3 shards already complete (5 texts)',
    '3 input rows rejected (wrong_column_count 1, invalid_utf8 1, empty_text 1; see '
    'rejected_rows.jsonl)',
  ]

  # Other settings on the same --out would mix two jobs' shards: refused, naming what changed.
  with pytest.raises(UserError, match=r"pivots \['xx'\] then, \['yy'\] now"):
    run_job('out', 'yy', _fake_backend(tmp_path), examples_per_shard=2)
  with pytest.raises(UserError, match=r'min_chrf 40.0 then, 90.0 now'):
    run_job(
      'out',
      'xx',
      _fake_backend(tmp_path),
      examples_per_shard=2,
      quality=backtranslation_core.QualityFilter(90.0),
    )

  failing = translation_backends.CommandBackend('false')
  summary, lines = run_job('fail', 'es', failing, retries=1)
  assert summary['pivots']['es']['failed'] == len(CAPTIONS)
  assert 'pivot es: kept 0 of 5 texts, dropped 0, failed 5' in lines
  records = list(backtranslate.iter_records(str(tmp_path / 'fail')))
  assert len(records) == len(CAPTIONS) and all(r['candidates'] == [] for r in records)


def test_job_resumes_after_sigkill(tmp_path):
  rows = [(str(i), f'caption number {i} with several extra words here') for i in range(8)]
  _write_tsv(tmp_path / 'in.tsv', rows)
  script = tmp_path / 'fake_translator.py'
  script.write_text(FAKE_TRANSLATOR)
  out = tmp_path / 'out'
  cmd = [
    sys.executable,
    '-m',
    'mlit.translation.backtranslate_job',
    '--input',
    str(tmp_path / 'in.tsv'),
    '--out',
    str(out),
    '--pivots',
    'xx',
    '--examples_per_shard',
    '2',
    '--backend',
    f'command:{sys.executable} {script} {{source}} {{target}} 0.4',
  ]
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while not (out / 'candidates-00000.jsonl').exists() and time.time() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  done_before = sorted(p.name for p in out.glob('candidates-*.jsonl'))
  assert 1 <= len(done_before) < 4, done_before
  first_shard = (out / 'candidates-00000.jsonl').read_bytes()

  resumed = subprocess.run(
    cmd[:-1] + [f'command:{sys.executable} {script} {{source}} {{target}} 0'],
    check=True,
    capture_output=True,
    text=True,
  )
  assert (out / 'candidates-00000.jsonl').read_bytes() == first_shard
  # The resumed run says first what it found done, then goes on past it, counting it as done.
  first, second = resumed.stdout.splitlines()[:2]
  k = len(done_before)
  assert first == f'resumed: {k} of 4 shards already complete ({2 * k} texts)'
  assert second.startswith(f'shard {k + 1} of 4: 0 failed batches; {2 * (k + 1)} of 8 texts')
  assert len(list(out.glob('candidates-*.jsonl'))) == 4
  records = list(backtranslate.iter_records(str(out)))
  assert [r['id'] for r in records] == [i for i, _ in rows]

  reference = tmp_path / 'reference'
  reference_cmd = [str(reference) if c == str(out) else c for c in cmd[:-1]]
  subprocess.run(
    reference_cmd + [f'command:{sys.executable} {script} {{source}} {{target}} 0'],
    check=True,
    capture_output=True,
  )
  assert list(backtranslate.iter_records(str(reference))) == records


@pytest.mark.slow
def test_beam_pipeline_matches_single_machine_job(tmp_path):
  from apache_beam.options import pipeline_options  # pylint: disable=import-outside-toplevel

  from mlit.translation import backtranslate_beam  # pylint: disable=import-outside-toplevel
  from tasks import beam_pipeline  # pylint: disable=import-outside-toplevel

  _write_tsv(tmp_path / 'in.tsv', CAPTIONS, [b'broken row without tab\n', *_REPEATED_IDS])
  script = tmp_path / 'fake_translator.py'
  script.write_text(FAKE_TRANSLATOR)
  spec = f'command:{sys.executable} {script} {{source}} {{target}} 0'
  with beam_pipeline.new_pipeline(pipeline_options.PipelineOptions([])) as pipeline:
    backtranslate_beam.build_pipeline(
      pipeline,
      str(tmp_path / 'in.tsv'),
      str(tmp_path / 'beam'),
      source='en',
      pivots=['xx'],
      backend_spec=spec,
    )
  beam_records = []
  for path in (tmp_path / 'beam').glob('candidates-*.jsonl'):
    beam_records += [json.loads(l) for l in open(path)]
  backtranslate.run(
    str(tmp_path / 'in.tsv'),
    str(tmp_path / 'single'),
    source='en',
    pivots=['xx'],
    backend=translation_backends.make_backend(spec),
    log=lambda *_: None,
  )
  single = list(backtranslate.iter_records(str(tmp_path / 'single')))
  assert sorted(beam_records, key=lambda r: r['id']) == single
  summary = json.load(open(tmp_path / 'beam' / 'summary.json'))
  assert summary['pivots'] == backtranslate.summarise_dir(str(tmp_path / 'single'))['pivots']
  rejected = []
  for path in (tmp_path / 'beam').glob('rejected_rows*.jsonl'):
    rejected += [json.loads(l) for l in open(path)]
  reasons = sorted(r['reason'].split(':')[0] for r in rejected)
  assert reasons == [
    'duplicate_id',
    'duplicate_id',
    'duplicate_row',
    'wrong_column_count',
  ]
  single_rejected = [json.loads(l) for l in open(tmp_path / 'single' / 'rejected_rows.jsonl')]
  assert sorted(r['reason'].split(':')[0] for r in single_rejected) == reasons


# An id on two rows with one text (translated once) and an id on two rows with two texts (which
# text its round trips belong to is unknown: neither is translated).
_REPEATED_IDS = [
  b'6\ta bird on a branch\n',
  b'7\ta red apple on the table\n',
  b'6\ta bird on a branch\n',
  b'7\ta blue car in the street\n',
]


def _fake_job(tmp_path):
  """`TMP/in.tsv` through the fake translator (source en, pivot xx) into TMP/out: (summary, log
  lines)."""
  lines = []
  summary = backtranslate.run(
    str(tmp_path / 'in.tsv'),
    str(tmp_path / 'out'),
    source='en',
    pivots=['xx'],
    backend=_fake_backend(tmp_path),
    log=lines.append,
  )
  return summary, lines


def test_repeated_ids_are_translated_once_or_rejected(tmp_path):
  _write_tsv(tmp_path / 'in.tsv', CAPTIONS, _REPEATED_IDS)
  summary, lines = _fake_job(tmp_path)
  records = list(backtranslate.iter_records(str(tmp_path / 'out')))
  assert [r['id'] for r in records] == ['1', '2', '3', '4', '5', '6']
  assert summary['texts'] == 6 and summary['rejected_rows'] == 3
  rejected = [json.loads(l) for l in open(tmp_path / 'out' / 'rejected_rows.jsonl')]
  assert [(r['line'], r['reason'].split(':')[0]) for r in rejected] == [
    (7, 'duplicate_id'),
    (8, 'duplicate_row'),
    (9, 'duplicate_id'),
  ]
  assert "id '7' is on 2 rows with different texts (first at line 7)" in rejected[0]['reason']
  assert rejected[1]['reason'] == 'duplicate_row: the id and text of line 6, translated once'
  assert '3 input rows rejected (duplicate_id 2, duplicate_row 1; see rejected_rows.jsonl)' in lines


def _candidates_dir(tmp_path, n, k):
  out = tmp_path / 'cands'
  out.mkdir()
  with open(out / 'candidates-00000.jsonl', 'w') as f:
    for i in range(n):
      cands = [
        {'pivot': f'p{j}', 'text': f'bt{j} of {i}', 'chrf': 50, 'bleu': 10, 'verdict': 'kept'}
        for j in range(k)
      ]
      cands.append(
        {'pivot': 'zz', 'text': 'dropped', 'chrf': 99, 'bleu': 99, 'verdict': 'near_identical'}
      )
      f.write(json.dumps({'id': str(i), 'text': f'orig {i}', 'candidates': cands}) + '\n')
  return str(out)


def _substituted(directory, n, probability, seed, features=('text',)):
  examples = {'example_id': [str(i) for i in range(n)]}
  for feature in features:
    examples[feature] = [f'orig {i}' for i in range(n)]
  ds = tf.data.Dataset.from_tensor_slices(examples)
  import seqio  # pylint: disable=import-outside-toplevel

  with seqio.map_seed_manager(seed):
    ds = backtranslation.maybe_backtranslate(
      ds, candidates_dir=directory, probability=probability, text_features=features
    )
  return list(ds.as_numpy_iterator())


def test_substitution_rate_choice_and_determinism(tmp_path):
  n, k, p = 4000, 3, 0.1
  directory = _candidates_dir(tmp_path, n, k)
  out = _substituted(directory, n, p, seed=1)
  fired = np.array([e['bt_fired'] for e in out])
  # Binomial(n, p): mean 400, sd 19; a 5-sd bound fails only if the rate is wrong.
  assert abs(fired.sum() - n * p) < 5 * np.sqrt(n * p * (1 - p))
  texts = [e['text'].decode() for e in out]
  for e, t in zip(out, texts):
    i = e['example_id'].decode()
    assert t == f'orig {i}' if not e['bt_fired'] else t.startswith('bt') and t.endswith(f'of {i}')
  assert 'dropped' not in texts
  chosen = np.bincount([int(t[2]) for t in texts if t.startswith('bt')], minlength=k)
  expected = fired.sum() / k
  assert np.all(np.abs(chosen - expected) < 5 * np.sqrt(expected)), chosen
  assert _substituted(directory, n, p, seed=1) == out
  assert _substituted(directory, n, p, seed=2) != out


def test_signals_are_substituted_independently(tmp_path):
  directory = _candidates_dir(tmp_path, 2000, 2)
  out = _substituted(directory, 2000, 0.5, seed=3, features=('title', 'tags'))
  title = np.array([e['title'].decode().startswith('bt') for e in out])
  tags = np.array([e['tags'].decode().startswith('bt') for e in out])
  assert abs(title.mean() - 0.5) < 0.06 and abs(tags.mean() - 0.5) < 0.06
  assert 0.15 < (title & tags).mean() < 0.35  # independent: about 0.25, not 0.5
  assert np.array_equal(np.array([e['bt_fired'] for e in out]), title.astype(int) + tags)


def test_coverage_warning_with_and_without_a_gin_bound_directory():
  none_matched = {'texts': 1000, 'with_candidates': 0}
  assert 'round trip in bt/:' in backtranslation.coverage_warning(none_matched, 'bt/')
  # A task that binds candidates_dir itself: gin knows no directory, the warning still comes.
  assert 'round trip in its candidates directory:' in backtranslation.coverage_warning(
    none_matched, None
  )
  assert backtranslation.coverage_warning({'texts': 1000, 'with_candidates': 1}, None) is None
  assert backtranslation.coverage_warning({'texts': 999, 'with_candidates': 0}, None) is None
  # A run that ends before 1,000 texts is told at its last step.
  few = {'texts': 320, 'with_candidates': 0}
  assert 'none of the first 320 texts' in backtranslation.coverage_warning(few, 'bt/', final=True)


def test_preprocessor_is_noop_without_candidates_and_checks_inputs(tmp_path):
  ds = tf.data.Dataset.from_tensor_slices({'example_id': ['1'], 'text': ['x']})
  assert backtranslation.maybe_backtranslate(ds) is ds
  with pytest.raises(FileNotFoundError, match='mlit backtranslate'):
    backtranslation.maybe_backtranslate(ds, candidates_dir=str(tmp_path / 'none'), probability=0.1)
  bad = tmp_path / 'bad'
  bad.mkdir()
  (bad / 'candidates-00000.jsonl').write_text('{not json\n')
  backtranslation._candidates.cache_clear()
  with pytest.raises(UserError, match='candidates-00000.jsonl:1: not a backtranslation record'):
    backtranslation.maybe_backtranslate(ds, candidates_dir=str(bad), probability=0.1)
  # BT_PROBABILITY outside [0, 1] or not a number is one line naming it, before any candidate is
  # read (a negative one turned backtranslation off without a word).
  for p in (-0.1, 1.5, '0.5', float('nan'), True):
    with pytest.raises(UserError, match=r'maybe_backtranslate.probability \(BT_PROBABILITY\)'):
      backtranslation.maybe_backtranslate(ds, candidates_dir=str(bad), probability=p)


def test_round_trips_of_another_text_under_the_id_are_counted_not_used(tmp_path):
  """A job run on other texts under the same ids (a regenerated dataset reusing its keys): their
  round trips would caption the image with something else, so they are not used, and counted.
  Case and whitespace do not count as another text (a TSV turns tabs and newlines into spaces)."""
  directory = _candidates_dir(tmp_path, 40, 2)
  examples = {'example_id': [str(i) for i in range(40)], 'text': [f'orig {i}' for i in range(40)]}
  examples['text'][:10] = [f'another caption {i}' for i in range(10)]
  examples['text'][10:20] = [f'  ORIG\t{i}\n' for i in range(10, 20)]
  import seqio  # pylint: disable=import-outside-toplevel

  with seqio.map_seed_manager(0):
    ds = backtranslation.maybe_backtranslate(
      tf.data.Dataset.from_tensor_slices(examples), candidates_dir=directory, probability=1.0
    )
  out = list(ds.as_numpy_iterator())
  assert [e['text'].decode() for e in out[:10]] == examples['text'][:10]
  assert all(e['text'].decode().startswith('bt') for e in out[10:])
  assert [int(e['bt_other_text']) for e in out] == [1] * 10 + [0] * 30
  assert [int(e['bt_candidates']) for e in out] == [0] * 10 + [1] * 30
  assert [int(e['bt_fired']) for e in out] == [0] * 10 + [1] * 30
  counts = {'texts': 1280, 'with_candidates': 960, 'other_text': 320}
  assert backtranslation.coverage_warning(counts, 'bt/') == (
    'warning: backtranslation: 320 of the first 1,280 texts have round trips in bt/ under their '
    "id that were translated from another text (the job ran on other texts than the task's): "
    "those texts are not replaced; run `mlit backtranslate` on the task's own texts"
  )


def test_texts_of_another_language_than_the_jobs_source_keep_their_text(tmp_path):
  """`mlit backtranslate --source en` (apertium) on English and French captions, as a user with
  a multilingual set runs it: French read as English comes back mangled and is kept by the
  filter ('un triangle rouge' -> 'a rouge of triangle' through Catalan). Substitution replaces
  only the examples whose language (`<feature>_lang`, else `language`) is the source or unknown."""
  rows = [
    ('0', 'a red triangle on a white table'),
    ('1', 'un triangle rouge'),
    ('2', 'un cercle vert'),
  ]
  _write_tsv(tmp_path / 'in.tsv', rows)
  out = str(tmp_path / 'out')
  backtranslate.run(
    str(tmp_path / 'in.tsv'),
    out,
    source='en',
    pivots=['ca'],
    backend=translation_backends.ApertiumBackend(),
    log=lambda *_: None,
  )
  kept = {
    r['id']: [c['text'] for c in r['candidates'] if c['verdict'] == 'kept']
    for r in backtranslate.iter_records(out)
  }
  assert kept['1'], kept  # the filter cannot tell: a mangled round trip is kept
  backtranslation._candidates.cache_clear()
  examples = {
    'example_id': ['0', '1', '2', '0'],
    'text': [t for _, t in rows] + [rows[0][1]],
    'language': ['en', 'fr', 'und', 'fr'],
    'text_lang': ['', '', '', 'en'],  # the feature's own language wins over the example's
  }
  import seqio  # pylint: disable=import-outside-toplevel

  with seqio.map_seed_manager(0):
    ds = backtranslation.maybe_backtranslate(
      tf.data.Dataset.from_tensor_slices(examples), candidates_dir=out, probability=1.0
    )
  got = list(ds.as_numpy_iterator())
  assert [int(e['bt_other_language']) for e in got] == [0, 1, 0, 0]
  assert [int(e['bt_other_text']) for e in got] == [0, 0, 0, 0]  # their own texts, translated
  assert got[1]['text'].decode() == 'un triangle rouge'  # French: kept as it is
  fired = [int(e['bt_fired']) for e in got]
  assert fired[0] == fired[3] == 1 and fired[1] == 0  # English (by `language`, by `text_lang`)
  assert fired[2] == int(bool(kept['2']))  # 'und': not known to be another language
  assert 'translated from en' in backtranslation.describe(out, 1.0)
  counts = {'texts': 1000, 'with_candidates': 600, 'other_language': 400}
  assert backtranslation.coverage_warning(counts, 'bt/') == (
    'warning: backtranslation: 400 of the first 1,000 texts have round trips in bt/ but are in '
    'another language than the one it translated from (--source): the job read them as that '
    'language, so their round trips are mangled; those texts are not replaced. Give `mlit '
    "backtranslate` only the source language's texts"
  )


def test_a_job_that_has_not_finished_is_said_at_the_start(tmp_path):
  directory = _candidates_dir(tmp_path, 3, 1)
  backtranslation._candidates.cache_clear()
  lines = backtranslation.describe(directory, 0.1).splitlines()
  assert lines[0] == f'backtranslation: p = 0.1; 3 texts with 3 kept round trips in {directory}'
  assert lines[1] == (
    f'warning: {directory} has no summary.json: the `mlit backtranslate` job writing it has not '
    'finished (1 candidates files so far); texts of its missing shards are not replaced until the '
    'same command completes it'
  )
  (tmp_path / 'cands' / 'summary.json').write_text('{}')
  assert len(backtranslation.describe(directory, 0.1).splitlines()) == 1


@apertium
def test_apertium_keeps_short_lines_apart():
  # apertium joins lines separated by a single newline into one sentence; each must stay its own.
  out = translation_backends.ApertiumBackend().translate(
    ['cat', 'dog', '', 'the red house'], 'en', 'es'
  )
  assert [o.lower() for o in out[:3]] == ['gato', 'perro', '']
  assert 'casa' in out[3].lower()


def test_jsonl_rows_name_what_is_wrong():
  parse = lambda line: backtranslate.parse_row(line.encode() + b'\n', is_jsonl=True)  # noqa: E731
  assert parse('{"id": 1, "text": "a dog"}') == ('1', 'a dog')
  assert parse('{"id": 1}') == 'missing field text'
  assert parse('{"caption": "a dog"}') == 'missing field id and text'
  assert parse('[1, 2]') == 'bad_json: a list, not an object with id and text'
  assert parse('{"id": 1,').startswith('bad_json: ')
  assert parse('   ') is None
  assert parse('{"id": "", "text": "a dog"}') == 'empty_id'
  tsv = lambda line: backtranslate.parse_row(line.encode() + b'\n', is_jsonl=False)  # noqa: E731
  assert tsv('id\ttext').startswith('header_row: ') and tsv('ID\tText ').startswith('header_row')
  assert tsv('\ta dog') == 'empty_id' and tsv('7\t ') == 'empty_text'
  assert tsv('id7\ta dog') == ('id7', 'a dog')
  assert tsv('a\tb\tc\td').startswith('wrong_column_count: 4 tab-separated columns, not 2')
  # A row may give its language; with the job's --source, another one is set aside.
  src = lambda line, jsonl=False: backtranslate.parse_row(line.encode(), jsonl, 'en')  # noqa: E731
  assert src('7\ta dog\ten') == src('7\ta dog\ten-GB') == src('7\ta dog\tund') == ('7', 'a dog')
  assert src('7\ta dog\t') == ('7', 'a dog')  # an empty language: not known
  assert src('7\tun chien\tfr').startswith('other_language: fr, not --source en: ')
  assert src('{"id": 7, "text": "ein Hund", "language": "de"}', True).startswith(
    'other_language: de'
  )
  assert src('id\ttext\tlanguage').startswith('header_row: ')
  assert tsv('7\tun chien\tfr') == ('7', 'un chien')  # no --source given: not checked


def test_rows_in_another_language_than_source_are_set_aside_by_the_job(tmp_path):
  """A TSV with a language column (as a multilingual set is exported): rows of --source and of
  unknown language are translated, the others set aside with their line and counted."""
  _write_tsv(tmp_path / 'in.tsv', [('1', 'a dog\ten'), ('2', 'un chien\tfr'), ('3', 'a cat\tund')])
  with open(tmp_path / 'in.tsv', 'ab') as f:
    f.write(b'4\tein Hund\tde\n')
  summary, lines = _fake_job(tmp_path)
  assert [r['id'] for r in backtranslate.iter_records(str(tmp_path / 'out'))] == ['1', '3']
  assert summary['texts'] == 2 and summary['rejected_rows'] == 2
  rejected = [json.loads(l) for l in open(tmp_path / 'out' / 'rejected_rows.jsonl')]
  assert [(r['line'], r['reason'].split(':')[0]) for r in rejected] == [
    (2, 'other_language'),
    (4, 'other_language'),
  ]
  assert '2 input rows rejected (other_language 2; see rejected_rows.jsonl)' in lines


def _cli_error(argv, capsys) -> str:
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  assert cli.main(['backtranslate', *argv]) == 2
  err = capsys.readouterr().err.strip()
  assert '\n' not in err and err.startswith('mlit backtranslate: error: '), err
  return err


def test_an_input_without_texts_is_one_line_and_records_nothing(tmp_path, capsys):
  """An empty input, or one of only malformed rows, is exit 2 naming the file (and the rejected
  rows), not exit 0 with an empty summary; no job.json is kept, so the fixed input runs there."""
  (tmp_path / 'empty.tsv').write_bytes(b'\n')
  out = tmp_path / 'bt'
  _fake_backend(tmp_path)  # writes the translator program
  fake = [
    '--backend',
    f'command:{sys.executable} {tmp_path / "fake_translator.py"} {{source}} {{target}} 0',
  ]
  argv = ['--input', str(tmp_path / 'empty.tsv'), '--out', str(out), '--pivots', 'xx', *fake]
  err = _cli_error(argv, capsys)
  assert f'no texts read from {tmp_path / "empty.tsv"}: it has no non-blank row' in err
  assert not out.exists()
  _write_tsv(tmp_path / 'bad.tsv', [], [b'only-one-column\n', b'8\t   \n'])
  argv = ['--input', str(tmp_path / 'bad.tsv'), '--out', str(out), '--pivots', 'xx', *fake]
  err = _cli_error(argv, capsys)
  assert err.endswith(
    f'no texts read from {tmp_path / "bad.tsv"} (2 rows rejected, the first at line 1: '
    'wrong_column_count: 1 tab-separated columns, not 2 (id, text) or 3 (and language); see '
    f'{out / "rejected_rows.jsonl"})'
  )
  assert os.listdir(out) == ['rejected_rows.jsonl']
  assert [json.loads(l)['line'] for l in (out / 'rejected_rows.jsonl').open()] == [1, 2]
  _write_tsv(tmp_path / 'bad.tsv', CAPTIONS[:2])
  summary = backtranslate.run(
    str(tmp_path / 'bad.tsv'),
    str(out),
    source='en',
    pivots=['xx'],
    backend=_fake_backend(tmp_path),
    log=lambda line: None,
  )
  assert summary['texts'] == 2 and summary['rejected_rows'] == 0


def test_pivots_is_neither_abbreviated_nor_repeated(tmp_path, capsys):
  _write_tsv(tmp_path / 'in.tsv', CAPTIONS[:1])
  argv = ['--input', str(tmp_path / 'in.tsv'), '--out', str(tmp_path / 'bt'), '--pivots', 'es']
  assert 'unrecognized arguments: --pivot ca' in _cli_error([*argv, '--pivot', 'ca'], capsys)
  assert '--pivots given twice (es and ca)' in _cli_error([*argv, '--pivots', 'ca'], capsys)
  assert not (tmp_path / 'bt').exists()


def test_beam_job_without_texts_is_one_line(tmp_path, capsys):
  from mlit.translation import backtranslate_beam  # pylint: disable=import-outside-toplevel

  _write_tsv(tmp_path / 'bad.tsv', [], [b'only-one-column\n', b'8\t   \n'])
  _fake_backend(tmp_path)  # writes the translator program
  spec = f'command:{sys.executable} {tmp_path / "fake_translator.py"} {{source}} {{target}} 0'
  argv = ['--out', str(tmp_path / 'bt'), '--pivots', 'xx', '--backend', spec]
  with pytest.raises(SystemExit) as e:
    backtranslate_beam.main(['--input', str(tmp_path / 'bad.tsv'), *argv])
  assert e.value.code == 2
  assert capsys.readouterr().err == (
    f'mlit backtranslate-beam: error: no texts read from {tmp_path / "bad.tsv"} (2 rows rejected: '
    f'see {tmp_path / "bt"}/rejected_rows-*.jsonl)\n'
  )
  _write_tsv(tmp_path / 'good.tsv', CAPTIONS[:2])
  assert backtranslate_beam.main(['--input', str(tmp_path / 'good.tsv'), *argv]) == 0


def test_beam_options_beam_refuses_are_one_line_before_any_output(tmp_path, capsys):
  """A misspelt --runner after -- was Beam's traceback (the same check as ingest and cache-tasks)."""
  from mlit.translation import backtranslate_beam  # pylint: disable=import-outside-toplevel

  _write_tsv(tmp_path / 'good.tsv', CAPTIONS[:2])
  argv = ['--input', str(tmp_path / 'good.tsv'), '--out', str(tmp_path / 'bt'), '--pivots', 'de']
  with pytest.raises(SystemExit) as e:
    backtranslate_beam.main([*argv, '--', '--runner=DirectRuner'])
  assert e.value.code == 2
  [line] = capsys.readouterr().err.strip().splitlines()[-1:]
  assert line.startswith(
    'mlit backtranslate-beam: error: the Beam options after -- (--runner=DirectRuner): '
    'Unexpected pipeline runner: DirectRuner.'
  ), line
  assert not (tmp_path / 'bt').exists()


def test_counts_that_cannot_run_are_one_line_errors(tmp_path, capsys):
  """No pivot (--pivots ,) ran to exit 0 translating nothing, --batch_size 0 put a shard in one
  translator call, --examples_per_shard 0 and --retries -1 ended in a traceback."""
  _write_tsv(tmp_path / 'in.tsv', CAPTIONS[:1])
  argv = ['--input', str(tmp_path / 'in.tsv'), '--out', str(tmp_path / 'bt')]
  assert "--pivots ',': no pivot language given" in _cli_error([*argv, '--pivots', ','], capsys)
  argv.extend(['--pivots', 'es'])
  for flag, value, least in [
    ('--batch_size', '0', 1),
    ('--examples_per_shard', '0', 1),
    ('--retries', '-1', 0),
  ]:
    err = _cli_error([*argv, flag, value], capsys)
    assert err.startswith(f'mlit backtranslate: error: {flag} must be >= {least}, got {value}')
  assert not (tmp_path / 'bt').exists()


def test_a_job_that_keeps_no_round_trip_says_what_it_read(tmp_path):
  """text<TAB>language rows given as id<TAB>text: each text is 'en', every round trip is
  dropped, and the last lines say so with the first row as read, not only 'kept 0 of 3'."""
  _write_tsv(tmp_path / 'in.tsv', [(t, 'en') for t in ('a red circle', 'a cat', 'two dogs')])
  lines = []
  backtranslate.run(
    str(tmp_path / 'in.tsv'),
    str(tmp_path / 'out'),
    source='en',
    pivots=['es'],
    backend=translation_backends.ApertiumBackend(),
    log=lines.append,
  )
  assert lines[-1] == (
    'warning: no round trip of the 3 texts was kept: check that the input is '
    "id<TAB>text[<TAB>language] rows of --source en (the first row read: id 'a red circle', "
    "text 'en')"
  )
