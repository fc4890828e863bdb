"""The one layout of a run directory (MODEL_DIR of `mlit train`, RUN_DIR of eval, report, demo).

  config.gin            the gin config as given (mlit.commands.gin_flags)
  operative_config.gin  the bindings training actually used
  initialization.json   what step 0 started from: the T5X / image / base-run load reports
  checkpoints/<step>/   Orbax checkpoints (mlit.checkpoints.run_state)
  metrics.jsonl         one record per logged step (mlit.training.progress_log)
  train/                TensorBoard events of the same steps
  data_stats.json       rows read, kept and skipped per reason (tasks.data_stats)
  language_stats.json   tuning examples per language (the trainer's; mlit eval copies the
                        evaluated model's into RUN_DIR)
  tokenizer_stats.json  vocabulary coverage per language (mlit coverage --stats-json)
  prompt_quality.json   round-trip chrF of translated prompts (mlit add-language)
  results.json          evaluation scores (mlit eval), beside results.csv and eval_config.gin
  report/               mlit report: index.html, report.md, plots
  timings.json          wall time per stage (mlit demo)

Writers and readers take their paths from here; tasks/ (which cannot import mlit) is given them.
"""

import os

CONFIG = 'config.gin'
OPERATIVE_CONFIG = 'operative_config.gin'
INITIALIZATION = 'initialization.json'
CHECKPOINTS = 'checkpoints'
METRICS = 'metrics.jsonl'
TENSORBOARD = 'train'
DATA_STATS = 'data_stats.json'
LANGUAGE_STATS = 'language_stats.json'
TOKENIZER_STATS = 'tokenizer_stats.json'
PROMPT_QUALITY = 'prompt_quality.json'
RESULTS = 'results.json'
RESULTS_CSV = 'results.csv'
EVAL_CONFIG = 'eval_config.gin'
REPORT = 'report'
TIMINGS = 'timings.json'


def config(run_dir: str) -> str:
  return os.path.join(run_dir, CONFIG)


def operative_config(run_dir: str) -> str:
  return os.path.join(run_dir, OPERATIVE_CONFIG)


def initialization(run_dir: str) -> str:
  return os.path.join(run_dir, INITIALIZATION)


def model_dir_of(path: str) -> str:
  """MODEL_DIR of a path that names it or its checkpoints/ directory (absolute)."""
  path = os.path.normpath(path)
  if os.path.basename(path) == CHECKPOINTS:
    path = os.path.dirname(path)
  return os.path.abspath(path)


def checkpoints(run_dir: str) -> str:
  return os.path.join(run_dir, CHECKPOINTS)


def metrics(run_dir: str) -> str:
  return os.path.join(run_dir, METRICS)


def tensorboard(run_dir: str) -> str:
  return os.path.join(run_dir, TENSORBOARD)


def data_stats(run_dir: str) -> str:
  return os.path.join(run_dir, DATA_STATS)


def language_stats(run_dir: str) -> str:
  return os.path.join(run_dir, LANGUAGE_STATS)


def tokenizer_stats(run_dir: str) -> str:
  return os.path.join(run_dir, TOKENIZER_STATS)


def prompt_quality(run_dir: str) -> str:
  return os.path.join(run_dir, PROMPT_QUALITY)


def results(run_dir: str) -> str:
  return os.path.join(run_dir, RESULTS)


def results_csv(run_dir: str) -> str:
  return os.path.join(run_dir, RESULTS_CSV)


def eval_config(run_dir: str) -> str:
  return os.path.join(run_dir, EVAL_CONFIG)


def report(run_dir: str) -> str:
  return os.path.join(run_dir, REPORT)


def timings(run_dir: str) -> str:
  return os.path.join(run_dir, TIMINGS)
