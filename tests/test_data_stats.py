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
