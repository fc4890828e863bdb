"""The commands that mlit's gin files print in their header comments resolve as printed."""

import pathlib
import shlex

import gin
from mlit.commands import gin_flags
from mlit.training import input_pipeline

REPO = pathlib.Path(__file__).resolve().parents[1]


def _header_command(gin_file: str) -> list:
  """The flags of the indented command in the file's leading comment."""
  lines = []
  for line in (REPO / 'gin' / gin_file).read_text().splitlines():
    if not line.startswith('#'):
      break
    if line.startswith('#   '):
      lines.append(line[1:].strip().rstrip('\\'))
  return [a for a in shlex.split(' '.join(lines)) if a.startswith('--')]


def test_lit_tune_example_names_a_task_its_flags_register():
  """It named 'yfcc100m_full', which no flag of it registers: 'not a registered seqio task'."""
  flags = _header_command('runs/lit_tune.gin')
  assert '--gin_file=runs/lit_tune.gin' in flags
  gin_flags.parse_flags(flags, 'lit_tune.gin example')
  task = input_pipeline.mixture_or_task(gin.query_parameter('%MIXTURE_OR_TASK_NAME'))
  assert 'image_embedding' in task.output_features
