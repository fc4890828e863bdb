"""YFCC100m tasks on made-up files in both metadata layouts, plain/.gz/.bz2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import seqio
import task_files
import tensorflow as tf
from spm_fixture import spm_model_path  # noqa: F401

import gin
from tasks import (
  data_stats,
  feature_converter,
  signals,
  token_preprocessors,
  vocabularies,
  yfcc,
  yfcc_source,
)

LENGTHS = {'title': 16, 'description': 16, 'tags': 16}


def _good_rows(layout, n=6, start=100):
  return [
    task_files.yfcc_row(
      start + i,
      f'Harbour boats {i}',
      f'<p>The boats in <b>the harbour</b> &amp; the sea {i}</p>',
      ['boat', 'sea', f'tag{i}'],
      layout=layout,
      line=i,
    )
    for i in range(n)
  ]


def _examples(name, lengths=LENGTHS, seed=3):
  task = seqio.get_mixture_or_task(name)
  ds = task.get_dataset(lengths, split='train', shuffle=False, seed=seed)
  return list(ds.as_numpy_iterator())


@pytest.mark.parametrize(
  'layout,suffix', [('multimedia_commons', ''), ('webscope', '.gz'), ('multimedia_commons', '.bz2')]
)
def test_layouts_and_compression(tmp_path, vocab, layout, suffix):
  path = task_files.write_lines(str(tmp_path / f'meta.tsv{suffix}'), _good_rows(layout))
  yfcc.register_yfcc(str(tmp_path / 'meta.tsv*'), layout='auto')
  exs = _examples('yfcc100m_full')
  assert [e['example_id'] for e in exs] == [str(100 + i).encode() for i in range(6)]
  ex = exs[2]
  assert vocab.decode(ex['title'].tolist()) == 'Harbour boats 2'
  desc = vocab.decode(ex['description'].tolist())
  assert desc and 'The boats in the harbour & the sea 2'.startswith(desc)
  assert ex['title'][-1] == 1 and ex['title'].dtype == np.int32
  assert set(vocab.decode(ex['tags'].tolist())[:3]) <= set('boatseg2 ,.;:!?-/|\n')
  assert ex['language'] == b'en'
  assert os.path.exists(path)


def test_wrong_explicit_layout_counts_rows(tmp_path, vocab):
  task_files.write_lines(str(tmp_path / 'm.tsv'), _good_rows('webscope', 3))
  yfcc.register_yfcc(str(tmp_path / 'm.tsv'), layout='multimedia_commons')
  assert _examples('yfcc100m_full') == []
  assert data_stats.snapshot()['skipped_rows'] == {'wrong_column_count': 3}


def test_malformed_rows_skipped_and_counted(tmp_path, vocab):
  """Every good row comes out; each bad one is counted under its reason."""
  good = _good_rows('multimedia_commons', 8)
  bad = [
    '\t'.join(['1', '2', '3']),  # wrong column count
    task_files.yfcc_row(201, '50%+off', encode=False),  # bad percent-escape
    task_files.yfcc_row(202, 'caf%FF%FE', encode=False),  # escape decodes to non-UTF-8
    task_files.yfcc_row(203, '', '', []),  # all signals empty
    task_files.yfcc_row(204, 'IMG_0001', '', []),  # title filtered -> all empty
    task_files.yfcc_row(205, 'Unreadable picture file'),  # corrupt image bytes
    task_files.yfcc_row(206, 'No image on disk'),  # missing image
    task_files.yfcc_row(207, 'A video clip', marker='1'),  # not a photo
  ]
  raw_bad = [
    task_files.yfcc_row(208, 'ok').encode()[:40]
    + b'\xff\xfe'
    + task_files.yfcc_row(208, 'ok').encode()[40:]
  ]  # invalid UTF-8 line
  lines = [r for pair in zip(good, bad) for r in pair]
  task_files.write_lines(str(tmp_path / 'meta.tsv.gz'), lines, raw_bad)
  img = tmp_path / 'img'
  for pid in [100 + i for i in range(8)] + [201, 202, 203, 204, 207, 208]:
    task_files.write_image(str(img / f'{pid}.jpg'))
  (img / '205.jpg').write_bytes(b'\xff\xd8\xff\xe0 this is not a jpeg')
  yfcc.register_yfcc(str(tmp_path / 'meta.tsv.gz'), image_dir=str(img))
  exs = _examples('yfcc100m_full', {**LENGTHS})
  assert sorted(e['example_id'] for e in exs) == [str(100 + i).encode() for i in range(8)]
  assert exs[0]['image'].shape == (224, 224, 3)
  assert -1.0 <= exs[0]['image'].min() and exs[0]['image'].max() <= 1.0
  stats = data_stats.snapshot()
  assert stats['skipped_rows'] == {
    'wrong_column_count': 1,
    'bad_percent_encoding': 1,
    'invalid_utf8': 2,
    'all_signals_empty': 2,
    'unreadable_image': 1,
    'missing_image': 1,
    'not_a_photo': 1,
  }
  assert stats['kept_rows'] == {'yfcc100m': 8}
  path = data_stats.write_json(str(tmp_path / 'run' / 'data_stats.json'))
  assert '"unreadable_image": 1' in open(path).read()


def test_clip_subset_and_language_tasks(tmp_path, vocab, caplog):
  rows = _good_rows('multimedia_commons', 4) + [
    task_files.yfcc_row(
      300 + i,
      f'Der Hund spielt im Garten {i}',
      'Ein schöner Tag am See mit der Familie',
      ['hund'],
      line=9,
    )
    for i in range(3)
  ]
  task_files.write_lines(str(tmp_path / 'm.tsv.bz2'), rows)
  task_files.write_subset(str(tmp_path / 'yfcc100m_subset_data.tsv'), [101, 103, 301], header=True)
  counts_path = str(tmp_path / 'language_stats.json')
  names = yfcc.register_yfcc(
    str(tmp_path / 'm.tsv.bz2'), subset_ids_path=str(tmp_path / 'yfcc100m_subset_data.tsv')
  )
  assert names == ['yfcc100m_full', 'yfcc100m_clip']
  assert [e['example_id'] for e in _examples('yfcc100m_clip')] == [b'101', b'103', b'301']
  from tasks import language_mixture  # pylint: disable=g-import-not-at-top

  counts = language_mixture.count_languages(
    seqio.get_mixture_or_task('yfcc100m_full').source, output_path=counts_path
  )
  assert counts == {'en': 4, 'de': 3}
  names = yfcc.register_yfcc(
    str(tmp_path / 'm.tsv.bz2'), language_counts_path=counts_path, temperature=2.0
  )
  assert 'yfcc100m_full.de' in names and 'yfcc100m_full.languages' in names
  assert {e['language'] for e in _examples('yfcc100m_full.de')} == {b'de'}
  assert len(_examples('yfcc100m_full.de')) == 3
  mix = seqio.get_mixture_or_task('yfcc100m_full.languages')
  rates = {t.name: mix.get_rate(t) for t in mix.tasks}
  assert rates['yfcc100m_full.de'] == pytest.approx(3**0.5 / (3**0.5 + 2))
  # A language asked for that the counts give 0: left out of the mixture, and said.
  with open(counts_path, 'w') as f:
    json.dump({'en': {'n_train_examples': 4}, 'fr': {'n_train_examples': 0}}, f)
  caplog.clear()
  yfcc.register_yfcc(
    str(tmp_path / 'm.tsv.bz2'), language_counts_path=counts_path, languages=['en', 'fr']
  )
  assert [t.name for t in seqio.get_mixture_or_task('yfcc100m_full.languages').tasks] == [
    'yfcc100m_full.en'
  ]
  assert [r.getMessage() for r in caplog.records if 'counted 0' in r.getMessage()] == [
    f'register_yfcc.languages: fr counted 0 examples in {counts_path}: left out of the mixture '
    'yfcc100m_full.languages (their tasks stay registered)'
  ]


def test_signal_modes_and_seeded_tags(tmp_path, vocab):
  rows = [
    task_files.yfcc_row(
      400 + i, f'Title number {i}' if i % 2 else '', '', ['alpha', 'beta', 'gamma', 'delta'], line=i
    )
    for i in range(12)
  ]
  task_files.write_lines(str(tmp_path / 'm.tsv'), rows)
  yfcc.register_yfcc(str(tmp_path / 'm.tsv'), mode='joint', detect_languages=False)
  long_tags = {**LENGTHS, 'tags': 64}  # no truncation: check every tag survives
  a = _examples('yfcc100m_full', long_tags, seed=7)
  b = _examples('yfcc100m_full', long_tags, seed=7)
  c = _examples('yfcc100m_full', long_tags, seed=8)
  tags = [vocab.decode(e['tags'].tolist()) for e in a]
  assert tags == [vocab.decode(e['tags'].tolist()) for e in b]  # seeded
  assert tags != [vocab.decode(e['tags'].tolist()) for e in c]
  assert len(set(tags)) > 3  # orders and joiners vary per example
  for t in tags:  # every tag survives, once
    assert sorted(
      w for w in t.replace('\n', ' ').translate(str.maketrans(',.;:!?-/|', ' ' * 9)).split()
    ) == ['alpha', 'beta', 'delta', 'gamma']
  assert all(e['description'].tolist() == [1] for e in a)  # empty -> [EOS]

  yfcc.register_yfcc(str(tmp_path / 'm.tsv'), mode='per_image', detect_languages=False)
  exs = _examples('yfcc100m_full', {'text': 16}, seed=5)
  chosen = [e['signal'] for e in exs]
  assert b'description' not in chosen  # empty signals are never sampled
  assert {b'title', b'tags'} == set(chosen)
  for e in exs:
    if e['signal'] == b'title':
      assert vocab.decode(e['text'].tolist()).startswith('Title number')

  yfcc.register_yfcc(str(tmp_path / 'm.tsv'), mode='title', detect_languages=False)
  assert len(_examples('yfcc100m_full', {'text': 16})) == 6

  with pytest.raises(ValueError, match="register_yfcc.mode 'nope': not a YFCC signal mode"):
    yfcc.register_yfcc(str(tmp_path / 'm.tsv'), mode='nope')


def test_backtranslation_replaces_signals_before_selection(tmp_path, vocab):
  rows = [
    task_files.yfcc_row(600 + i, f'Title number {i}', '', ['alpha', 'beta'], line=i)
    for i in range(6)
  ]
  task_files.write_lines(str(tmp_path / 'm.tsv'), rows)
  bt = tmp_path / 'bt'
  bt.mkdir()
  with open(bt / 'candidates-00000.jsonl', 'w') as f:  # `mlit backtranslate` records
    for i in range(6):
      f.write(
        json.dumps(
          {
            'id': f'{600 + i}/title',
            'text': f'Title number {i}',
            'candidates': [
              {'pivot': 'es', 'text': f'Headline {i}', 'chrf': 60, 'bleu': 20, 'verdict': 'kept'}
            ],
          }
        )
        + '\n'
      )
  gin.bind_parameter('tasks.backtranslation.maybe_backtranslate.candidates_dir', str(bt))
  gin.bind_parameter('tasks.backtranslation.maybe_backtranslate.probability', 1.0)
  yfcc.register_yfcc(str(tmp_path / 'm.tsv'), mode='joint', detect_languages=False)
  exs = _examples('yfcc100m_full')
  assert [vocab.decode(e['title'].tolist()) for e in exs] == [f'Headline {i}' for i in range(6)]
  assert all(e['bt_fired'] == 1 and e['bt_texts'] == 3 for e in exs)
  # per_image picks after substitution, so '<id>/title' candidates still apply.
  yfcc.register_yfcc(str(tmp_path / 'm.tsv'), mode='per_image', detect_languages=False)
  picked = [
    (e['signal'], vocab.decode(e['text'].tolist()))
    for e in _examples('yfcc100m_full', {'text': 16})
  ]
  titles = [t for s, t in picked if s == b'title']
  assert titles and all(t.startswith('Headline') for t in titles), picked


def test_per_batch_signal_selection():
  ds = tf.data.Dataset.from_tensor_slices(
    {
      'title': np.full((40, 4), 5, np.int32),
      'description': np.full((40, 4), 6, np.int32),
      'tags': np.full((40, 4), 7, np.int32),
      'image_embedding': np.zeros((40, 3), np.float32),
    }
  ).batch(4)
  out = list(signals.select_signal_per_batch(ds, seed=1).as_numpy_iterator())
  assert all(set(b) == {'text', 'image_embedding'} for b in out)
  picked = [int(np.unique(b['text']).item()) for b in out]  # one signal per batch
  assert set(picked) == {5, 6, 7}
  again = [
    int(np.unique(b['text']).item())
    for b in signals.select_signal_per_batch(ds, seed=1).as_numpy_iterator()
  ]
  assert again == picked


def test_truncation_is_counted_with_sticky_eos(tmp_path, vocab):
  long = ' '.join(['sunset over the sea'] * 10)
  rows = [
    task_files.yfcc_row(500, 'Short boat', long, ['sea']),
    task_files.yfcc_row(501, 'Short dog', 'Small lake', ['sea']),
  ]
  task_files.write_lines(str(tmp_path / 'm.tsv'), rows)
  yfcc.register_yfcc(str(tmp_path / 'm.tsv'), detect_languages=False)
  exs = _examples('yfcc100m_full')
  assert len(exs[0]['description']) == 16 and exs[0]['description'][-1] == 1
  # Marked in-graph per example; the batch consumer (trainer) counts the marks.
  assert [e['truncated/description'] for e in exs] == [1, 0]
  assert data_stats.snapshot()['texts'] == {}
  for e in exs:
    data_stats.count_batch(e)
  texts = data_stats.snapshot()['texts']
  assert texts['description'] == {'n_texts': 2, 'n_truncated': 1, 'truncated_share': 0.5}
  assert texts['title']['n_truncated'] == 0


def _graph_ops(ds):
  graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())  # pylint: disable=protected-access
  ops = {n.op for n in graph.node}
  for fn in graph.library.function:
    ops.update(n.op for n in fn.node_def)
  return ops


def test_trim_marks_truncation_in_graph_without_py_functions(vocab):
  features = vocabularies.output_features(['text'], vocab, None)
  lengths = {'text': 16}
  texts = tf.ragged.constant([list(range(3, 18)), list(range(3, 19)), [5]])  # 15, 16, 1 tokens
  # Ragged rows of rank 1 come out as RaggedTensors of ragged_rank 0: make them dense.
  ds = tf.data.Dataset.from_tensor_slices({'text': texts}).map(
    lambda ex: {'text': tf.convert_to_tensor(ex['text'])}
  )
  out = token_preprocessors.trim_and_count(ds, features, lengths)
  exs = list(out.as_numpy_iterator())
  # 15 tokens + EOS fit in 16; 16 tokens are cut to 15 + a sticky EOS.
  assert [int(e['truncated/text']) for e in exs] == [0, 1, 0]
  assert exs[1]['text'].tolist() == list(range(3, 18)) + [1]
  batched = feature_converter.LiTFeatureConverter()(out, lengths).batch(2)
  ops = _graph_ops(batched)
  assert 'ParallelMapDatasetV2' in ops or 'MapDataset' in ops  # the graph was read
  assert not ops & {'PyFunc', 'PyFuncStateless', 'EagerPyFunc'}, ops


_ENDLESS_INPUT = """
import sys, gin
from mlit.training import input_pipeline as train_data
from tasks import data_stats, yfcc
gin.bind_parameter("tasks.vocabularies.vocabulary.path", sys.argv[1])
yfcc.register_yfcc(sys.argv[2], detect_languages=False)
batches, info = train_data.make_input("yfcc100m_full", {"title": 16, "description": 16,
                                      "tags": 16}, 32, seed=1)
for _ in range(10):
  batch = next(batches)  # the endless iterator stays alive (reading ahead) until exit
print(sorted(batch), info.text_keys, data_stats.snapshot()["texts"]["title"]["n_texts"])
"""


@pytest.mark.slow
def test_endless_input_iterator_exits_promptly(tmp_path, spm_model_path):  # noqa: F811
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  # Enough rows that the generator source is still reading ahead at exit; without the
  # trainer's atexit close this exit hung (or aborted) about every other run.
  task_files.write_lines(str(tmp_path / 'm.tsv.gz'), _good_rows('webscope', 500))
  proc = subprocess.run(
    [sys.executable, '-c', _ENDLESS_INPUT, spm_model_path, str(tmp_path / 'm.tsv.gz')],
    env={**os.environ, 'PYTHONPATH': root, 'CUDA_VISIBLE_DEVICES': ''},
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  # The model's batch has no truncation marks; they were counted (10 batches of 32).
  assert proc.stdout.split('\n')[-2] == (
    "['description', 'tags', 'title'] ('description', 'tags', 'title') 320"
  )


def test_reader_signature_matches_rows(tmp_path):
  task_files.write_lines(str(tmp_path / 'm.tsv'), _good_rows('webscope', 1))
  reader = yfcc_source.YfccReader(detect_languages=False)
  (row,) = list(reader(str(tmp_path / 'm.tsv')))
  assert set(row) == set(reader.output_signature)
  with pytest.raises(ValueError, match='layout'):
    yfcc_source.YfccReader(layout='flickr')


@pytest.mark.parametrize('layout', ['multimedia_commons', 'webscope'])
def test_auto_layout_survives_a_broken_first_row(tmp_path, layout):
  """A first line with the other layout's column count must not lock the file to that layout."""
  good = _good_rows(layout, 30)
  other = 'webscope' if layout == 'multimedia_commons' else 'multimedia_commons'
  width = yfcc_source.LAYOUTS[other].num_columns
  cols = good[0].split('\t')
  broken = '\t'.join((cols + ['extra'] * 2)[:width])  # cut or padded to the other count
  path = task_files.write_lines(str(tmp_path / 'm.tsv'), [broken] + good)
  data_stats.reset()
  rows = list(yfcc_source.YfccReader(detect_languages=False)(path))
  assert [r['example_id'] for r in rows] == [str(100 + i) for i in range(30)]
  stats = data_stats.snapshot()
  assert stats['skipped_rows'] == {'wrong_column_count': 1}
  assert stats['kept_rows'] == {'yfcc100m': 30}


def test_corpus_counts_one_pass_while_reads_repeat(tmp_path, vocab):
  """data_stats 'corpus' counts each file once, however often the input re-reads it."""
  good = _good_rows('multimedia_commons', 5)
  bad = ['only\tthree\tcolumns', task_files.yfcc_row(300, '', '', [])]
  task_files.write_lines(str(tmp_path / 'a.tsv'), good[:3] + bad[:1])
  task_files.write_lines(str(tmp_path / 'b.tsv'), good[3:] + bad[1:])
  yfcc.register_yfcc(str(tmp_path / '*.tsv'), detect_languages=False)
  task = seqio.get_mixture_or_task('yfcc100m_full')
  ds = task.get_dataset(LENGTHS, split='train', shuffle=True, seed=1, num_epochs=None)
  list(ds.take(17).as_numpy_iterator())  # three epochs and more
  stats = data_stats.snapshot()
  assert stats['corpus'] == {
    'yfcc100m': {
      'files_read': 2,
      'rows': 7,
      'kept': 5,
      'skipped': {'wrong_column_count': 1, 'all_signals_empty': 1},
    }
  }
  assert stats['kept_rows']['yfcc100m'] >= 15  # every read counts there
