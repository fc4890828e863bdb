"""Training progress: terminal lines, TensorBoard events, MODEL_DIR/metrics.jsonl.

Only process 0 writes. Throughput is measured between two log points, so
compilation time does not distort it after the first interval. A resumed run
first drops the records past its restored step (written after that checkpoint by
the killed run), so every step appears once in metrics.jsonl; TensorBoard is told
the same with a purge step.
"""

import json
import os
import sys
import time
from typing import Mapping

import jax

from mlit import job_progress, run_layout


def log(msg: str) -> None:
  """A status line on stderr, printed by process 0 only (one line per run, not one per host)."""
  if jax.process_index() == 0:
    print(msg, file=sys.stderr, flush=True)


def drop_records_after(path: str, step: int) -> None:
  """Rewrites the JSONL file at `path` keeping the records up to `step` (and no torn last line)."""
  if not os.path.exists(path):
    return
  kept = []
  with open(path, encoding='utf-8', errors='replace') as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut short by a kill
      if (
        isinstance(record, dict) and isinstance(record.get('step'), int) and record['step'] <= step
      ):
        kept.append(json.dumps(record) + '\n')
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.writelines(kept)
  os.replace(tmp, path)


def summary_writer_class():
  """tensorboardX's SummaryWriter, imported without PyTorch: tensorboardX imports torch when it
  is installed (about 2 s of a run's start) only to accept torch tensors, and mlit writes floats.
  A process that has torch loaded already keeps it."""
  blocked = 'torch' not in sys.modules
  if blocked:
    sys.modules['torch'] = None  # `import torch` raises ImportError, which tensorboardX expects
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  finally:
    if blocked:
      del sys.modules['torch']
  return SummaryWriter


class ProgressLog:
  """Writes one record per log step to the terminal, TensorBoard and JSONL."""

  def __init__(self, model_dir: str, total_steps: int, batch_size: int, start_step: int):
    self._total = total_steps
    self._batch = batch_size
    self._last_step = start_step
    self._last_time = time.time()
    # The first interval after a (re)start carries set-up and compilation: no ETA from it.
    self._first = True
    self._main = jax.process_index() == 0
    self._writer = None
    self._jsonl = None
    if self._main:
      # purge_step: TensorBoard hides events at or after it from the earlier files. The
      # suffix keeps a resume within the same second from overwriting the killed run's file.
      self._writer = summary_writer_class()(
        run_layout.tensorboard(model_dir),
        purge_step=start_step + 1 if start_step else None,
        filename_suffix=f'.from{start_step:010d}',
      )
      path = run_layout.metrics(model_dir)
      drop_records_after(path, start_step)
      self._jsonl = open(path, 'a')

  def write(self, step: int, metrics: Mapping[str, float]) -> dict:
    now = time.time()
    steps = max(step - self._last_step, 1)
    dt = max(now - self._last_time, 1e-9)
    rate = steps * self._batch / dt
    record = {
      'step': step,
      **{k: float(v) for k, v in metrics.items()},
      'pairs_per_sec': rate,
      'eta_sec': None if self._first else (self._total - step) * dt / steps,
    }
    self._last_step, self._last_time, self._first = step, now, False
    if not self._main:
      return record
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for k, v in record.items():
      if k != 'step' and v is not None:
        self._writer.add_scalar(k, v, step)
    self._writer.flush()
    extra = ''.join(
      f' {k} {v:.4g}' for k, v in sorted(metrics.items()) if k in ('lr', 'temperature')
    )
    duplicates = {
      k[: -len('duplicate_rows')].rstrip('/'): v
      for k, v in sorted(metrics.items())
      if k.endswith('duplicate_rows')
    }
    if duplicates:  # train.train.duplicates_as_negatives=False: the step's rows with one left out
      extra += ' duplicate rows' + ''.join(
        f' {name} {v:.0f}' if len(duplicates) > 1 else f' {v:.0f}' for name, v in duplicates.items()
      )
    if 'bt_replaced_share' in metrics:
      extra += (
        f' bt replaced {100 * metrics["bt_replaced_share"]:.3g}% of texts so far'
        f' ({100 * metrics["bt_candidates_share"]:.3g}% have candidates)'
      )
    print(
      f'step {step}/{self._total} loss {record["loss"]:.4f}{extra} '
      f'pairs/s {rate:.1f} ETA '
      + ('?' if record['eta_sec'] is None else job_progress.format_eta(record['eta_sec'])),
      file=sys.stderr,
      flush=True,
    )
    return record

  def close(self) -> None:
    if self._main:
      self._writer.close()
      self._jsonl.close()
