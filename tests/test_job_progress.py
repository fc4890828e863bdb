"""mlit.job_progress: the done/total, rate and ETA line long jobs print."""

from mlit import job_progress


class _Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_rate_and_eta_count_only_this_runs_work():
  clock = _Clock()
  progress = job_progress.Progress(6243, 'texts', clock=clock)
  assert progress.eta() is None  # nothing done yet: no rate to extrapolate
  progress.skip(2000)  # shards a killed run finished
  clock.now += 10
  progress.advance(1000)
  assert progress.done == 3000 and progress.rate() == 100.0
  assert progress.line() == '3,000 of 6,243 texts, 100.0 texts/s, ETA 0:32'
  assert progress.line(rate_text='41.2 images/s') == '3,000 of 6,243 texts, 41.2 images/s, ETA 0:32'


def test_rate_leaves_out_the_first_piece_of_work_once_there_is_a_second():
  clock = _Clock()
  progress = job_progress.Progress(643, 'evaluations', clock=clock)
  clock.now += 9.0  # compilation and warm-up
  progress.advance()
  assert progress.rate() == 1 / 9.0 and progress.eta() == '1:36:18'
  for _ in range(10):
    clock.now += 0.5
    progress.advance()
  assert progress.rate() == 2.0 and progress.eta() == '5:16'  # 632 left at 2 per second


def test_eta_format():
  assert job_progress.format_eta(59.9) == '0:59'
  assert job_progress.format_eta(3 * 3600 + 4 * 60 + 5) == '3:04:05'
  assert job_progress.format_eta(-3) == '0:00'
