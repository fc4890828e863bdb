"""The steps `mlit demo`, `demo --compare` and `add-language run` start import mlit's own packages,
whatever folders stand in the user's working directory."""

import os
import subprocess
import sys

import pytest

from mlit.commands import add_language_run, child_process, demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_safe_path = pytest.mark.skipif(
  sys.version_info < (3, 11), reason='PYTHONSAFEPATH needs Python 3.11'
)


@pytest.fixture
def project_with_tasks_folder(tmp_path, monkeypatch):
  """A user's project with its own `tasks/` package, the working directory of the command."""
  (tmp_path / 'tasks').mkdir()
  (tmp_path / 'tasks' / '__init__.py').write_text("raise ImportError('the project tasks folder')\n")
  monkeypatch.chdir(tmp_path)
  return tmp_path


@needs_safe_path
def test_add_language_step_imports_mlits_tasks(project_with_tasks_folder, capfd):
  # Without the child environment the project's `tasks/` folder wins over mlit's.
  add_language_run._step('renders', [sys.executable, '-m', 'tasks.emoji_cldr', '--help'])
  out, err = capfd.readouterr()
  assert 'the project tasks folder' not in out + err
  assert 'renders' in out and 'usage:' in out


@needs_safe_path
def test_demo_stage_imports_mlits_tasks(project_with_tasks_folder, capfd):
  # The report stage on a run with nothing in it fails with the report's own one-line error.
  run_dir = str(project_with_tasks_folder / 'run')
  assert demo.main(['--run_dir', run_dir, '--stages', 'report']) != 0
  out, err = capfd.readouterr()
  assert 'the project tasks folder' not in out + err
  assert "mlit demo: stage 'report' failed" in err


def test_environment_keeps_the_users_path_after_mlits(monkeypatch):
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join(['/opt/their_modules', ROOT]))
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '1')  # as importing seqio leaves it
  env = child_process.environment()
  assert env['PYTHONPATH'].split(os.pathsep) == [ROOT, '/opt/their_modules']
  assert env['PYTHONSAFEPATH'] == '1'
  assert env['TF_CPP_MIN_LOG_LEVEL'] == '2'


@needs_safe_path
def test_checkout_runs_without_install_from_elsewhere(project_with_tasks_folder):
  # The child finds mlit through PYTHONPATH alone (no install, no working directory on the path).
  env = child_process.environment()
  proc = subprocess.run(
    [sys.executable, '-S', '-c', 'import tasks, mlit; print(tasks.__file__)'],
    env=env,
    capture_output=True,
    text=True,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == os.path.join(ROOT, 'tasks', '__init__.py')
