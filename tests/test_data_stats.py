"""tasks.data_stats: the skipped-row counters' lines and logging."""

from tasks import data_stats


def test_rows_read_line_says_why_a_task_gave_no_batch():
  """The dry run's 'gave no batch' and the trainer's 'ran out of data' lines carry it."""
  data_stats.reset()
  try:
    for reason in ('missing_image', 'missing_image', 'not_a_photo'):
      data_stats.skip(reason)
    assert data_stats.rows_read_line() == 'rows kept 0, skipped 3 (missing_image 2, not_a_photo 1)'
  finally:
    data_stats.reset()


def test_a_skipped_row_read_again_is_logged_once(caplog):
  """Later epochs read the same bad rows: each place is logged once (still counted each time)."""
  data_stats.reset()
  try:
    with caplog.at_level('WARNING'):
      for _ in range(3):
        data_stats.skip('not_a_photo', 'yfcc.tsv:10')
      data_stats.skip('not_a_photo', 'yfcc.tsv:11')
    logged = [r.getMessage() for r in caplog.records if 'skipping row' in r.getMessage()]
    assert logged == [
      'skipping row (not_a_photo) at yfcc.tsv:10',
      'skipping row (not_a_photo) at yfcc.tsv:11',
    ]
    assert data_stats.snapshot()['skipped_rows'] == {'not_a_photo': 4}
  finally:
    data_stats.reset()


def test_truncation_warning_when_most_texts_are_cut():
  data_stats.reset()
  marks = lambda n, cut: {'truncated/text': [1] * cut + [0] * (n - cut)}  # noqa: E731
  data_stats.count_batch(marks(600, 600))
  # Under 1,000 texts only at the run's end; half cut is not "most".
  assert data_stats.truncation_warning({'text': 8}) is None
  assert data_stats.truncation_warning({'text': 8}, final=True).startswith(
    "warning: 100% of the first 600 'text' texts were longer than its 8 tokens (EOS included) and "
    'were cut: the model sees only their beginnings. Raise TASK_FEATURE_LENGTHS'
  )
  # The example doubles the cut feature's length (not a fixed 32, which may be the length now).
  warning = data_stats.truncation_warning({'text': 32, 'title': 16}, final=True)
  assert "--gin.TASK_FEATURE_LENGTHS=\"{'text': 64, 'title': 16}\"" in warning
  data_stats.count_batch(marks(400, 0))
  assert "60% of the first 1,000 'text' texts" in data_stats.truncation_warning({'text': 8})
  data_stats.count_batch(marks(200, 0))  # 600 of 1,200: half, not most
  assert data_stats.truncation_warning({'text': 8}, final=True) is None
  data_stats.reset()


def test_processes_reads_add_up_and_a_file_read_by_several_counts_once():
  """With fewer files than processes each process reads every file (seqio shards its rows):
  the run's corpus counts each file once; the reads themselves add up."""
  a = {'skipped_rows': {'bad_field': 2}, 'kept_rows': {'wit': 5}, 'files': [['wit', 'f', 5, {}]]}
  b = {
    'skipped_rows': {'bad_field': 1},
    'kept_rows': {'wit': 4},
    'files': [['wit', 'f', 5, {}], ['wit', 'g', 3, {'bad_field': 1}]],
  }
  both = data_stats.added_read_counts(a, b)
  assert both['skipped_rows'] == {'bad_field': 3} and both['kept_rows'] == {'wit': 9}
  corpus = data_stats.snapshot(data_stats.batch_counts(), both)['corpus']
  assert corpus == {'wit': {'files_read': 2, 'rows': 9, 'kept': 8, 'skipped': {'bad_field': 1}}}
