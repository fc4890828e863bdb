"""A command process's own temporary folder (mlit.commands.process_temp): removed when the process
ends, normally or without teardown (Ctrl-C), and never by a forked child's exit."""

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent

_SCRIPT = """
import os, sys, tempfile
from mlit.commands import process_temp

own = process_temp.use_own_folder()
print(own, flush=True)
with tempfile.NamedTemporaryFile(suffix='.py', delete=False) as f:  # as autograph writes its files
  f.write(b'x = 1')
assert os.path.dirname(f.name) == own
pid = os.fork()
if pid == 0:
  sys.exit(0)  # a child's exit runs the exit handlers it inherited
os.waitpid(pid, 0)
assert os.path.isfile(f.name), 'a forked child removed its parent folder'
if sys.argv[1] == 'without-teardown':
  process_temp.end_without_teardown(130)
"""


def _run(tmp_path, how):
  proc = subprocess.run(
    [sys.executable, '-c', _SCRIPT, how],
    cwd=REPO,
    env={**os.environ, 'TMPDIR': str(tmp_path), 'PYTHONPATH': str(REPO)},
    capture_output=True,
    text=True,
    check=False,
  )
  return proc


def test_the_folder_goes_at_a_normal_exit_and_without_teardown(tmp_path):
  for how, code in (('normal', 0), ('without-teardown', 130)):
    proc = _run(tmp_path, how)
    assert proc.returncode == code, proc.stderr
    own = pathlib.Path(proc.stdout.strip())
    assert own.parent == tmp_path and own.name.startswith('mlit-')
    assert not list(tmp_path.iterdir()), how
