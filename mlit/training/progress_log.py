"""Training progress: terminal lines, TensorBoard events, MODEL_DIR/metrics.jsonl.

Only process 0 writes. Throughput is measured between two log points, so
compilation time does not distort it after the first interval.
"""

import json
import os
import sys
import time
from typing import Mapping

import jax


def _fmt_eta(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}:{m:02d}:{s:02d}' if h else f'{m}:{s:02d}'


class ProgressLog:
  """Writes one record per log step to the terminal, TensorBoard and JSONL."""

  def __init__(self, model_dir: str, total_steps: int, batch_size: int, start_step: int):
    self._total = total_steps
    self._batch = batch_size
    self._last_step = start_step
    self._last_time = time.time()
    self._main = jax.process_index() == 0
    self._writer = None
    self._jsonl = None
    if self._main:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

      self._writer = SummaryWriter(os.path.join(model_dir, 'train'))
      self._jsonl = open(os.path.join(model_dir, 'metrics.jsonl'), 'a')

  def write(self, step: int, metrics: Mapping[str, float]) -> dict:
    now = time.time()
    steps = max(step - self._last_step, 1)
    dt = max(now - self._last_time, 1e-9)
    rate = steps * self._batch / dt
    record = {
      'step': step,
      **{k: float(v) for k, v in metrics.items()},
      'pairs_per_sec': rate,
      'eta_sec': (self._total - step) * dt / steps,
    }
    self._last_step, self._last_time = step, now
    if not self._main:
      return record
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for k, v in record.items():
      if k != 'step':
        self._writer.add_scalar(k, v, step)
    self._writer.flush()
    extra = ''.join(
      f' {k} {v:.4g}'
      for k, v in sorted(metrics.items())
      if k in ('lr', 'bt_fired_rate', 'temperature')
    )
    print(
      f'step {step}/{self._total} loss {record["loss"]:.4f}{extra} '
      f'pairs/s {rate:.1f} ETA {_fmt_eta(record["eta_sec"])}',
      file=sys.stderr,
      flush=True,
    )
    return record

  def close(self) -> None:
    if self._main:
      self._writer.close()
      self._jsonl.close()
