"""mlit's malloc settings: merged into GLIBC_TUNABLES, opt-out, and their effect in a real process."""

import os
import subprocess
import sys

import pytest

from mlit.commands import malloc_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_glibc = pytest.mark.skipif(
  not malloc_settings.applies(), reason='GLIBC_TUNABLES is glibc-only'
)

# After the program's entry has re-executed it: how many chunks malloc serves by mmap while a
# 64 MB array is alive (the defaults map every block above 32 MB; the settings map none), and the
# tunables the process runs with.
_PROGRAM = """
import ctypes, os, numpy as np
from mlit.commands import malloc_settings
malloc_settings.reexec_with_settings()
class Info(ctypes.Structure):
  _fields_ = [(n, ctypes.c_size_t) for n in
              'arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost'.split()]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
a = np.ones(16 << 20, np.float32)
print(mallinfo2().hblks, os.environ.get('GLIBC_TUNABLES', ''))
"""


def _environment_without_settings(**extra) -> dict:
  keep = {
    k: v for k, v in os.environ.items() if k not in ('GLIBC_TUNABLES', malloc_settings.OPT_OUT)
  }
  return {**keep, **extra}


def _run(**env):
  env = _environment_without_settings(**env)
  out = subprocess.run(
    [sys.executable, '-c', _PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True, check=True
  ).stdout.split()
  assert len(out) in (1, 2), out  # one line: the program ran once after the re-exec
  return int(out[0]), out[1] if len(out) > 1 else ''


@needs_glibc
def test_reexec_sets_the_tunables_and_malloc_stops_mapping():
  mapped, tunables = _run()
  assert set(tunables.split(':')) == {f'{k}={v}' for k, v in malloc_settings.SETTINGS.items()}
  system_mapped, system_tunables = _run(MLIT_MALLOC='system')
  assert system_tunables == ''
  assert system_mapped >= 1
  assert mapped == 0


def test_users_tunables_win_and_the_merge_is_idempotent():
  if not malloc_settings.applies():
    assert malloc_settings.environment({'A': '1'}) == {'A': '1'}
    return
  env = malloc_settings.environment({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=4:glibc.x=1'})
  items = env['GLIBC_TUNABLES'].split(':')
  assert items[:2] == ['glibc.malloc.arena_max=4', 'glibc.x=1']
  assert 'glibc.malloc.mmap_max=0' in items and len(items) == 4
  assert malloc_settings.environment(env) == env
  assert malloc_settings.environment({'MLIT_MALLOC': 'system'}) == {'MLIT_MALLOC': 'system'}


@needs_glibc
def test_the_mlit_entry_reexecutes_with_the_settings():
  program = (
    'import os, sys; from mlit.commands import cli; sys.argv = ["mlit", "--help"]; '
    'print("tunables:", os.environ.get("GLIBC_TUNABLES")); sys.exit(cli.program_main())'
  )
  env = _environment_without_settings()
  out = subprocess.run(
    [sys.executable, '-c', program], cwd=ROOT, env=env, capture_output=True, text=True, check=True
  ).stdout
  seen = [line for line in out.splitlines() if line.startswith('tunables:')]
  # The entry ran once without the settings, re-executed itself, and ran once with them.
  assert seen[0] == 'tunables: None' and 'glibc.malloc.arena_max=1' in seen[1], seen
  assert len(seen) == 2 and 'usage: mlit' in out


def test_an_unknown_opt_out_value_is_reported(capsys):
  env = malloc_settings.environment({'MLIT_MALLOC': 'off'})
  if malloc_settings.applies():
    assert 'glibc.malloc.arena_max=1' in env['GLIBC_TUNABLES']
    assert "MLIT_MALLOC='off' is not a known value" in capsys.readouterr().err


@needs_glibc
@pytest.mark.parametrize('module', ['mlit.training.train', 'eval_multilingual.run'])
def test_python_m_commands_reexecute_before_their_heavy_imports(module):
  # Each module is imported once across the re-execution (-X importtime logs every process's
  # imports to the shared stderr): `python -m` re-executes above its imports, not after them.
  # --verbose: the command's imports are otherwise made while stderr is silenced.
  proc = subprocess.run(
    [sys.executable, '-X', 'importtime', '-m', module, '--help', '--verbose'],
    cwd=ROOT,
    env=_environment_without_settings(),
    capture_output=True,
    text=True,
    check=False,
  )
  imported = [line.rsplit('|', 1)[-1].strip() for line in proc.stderr.splitlines() if '|' in line]
  assert imported.count('jax') == 1 and imported.count('mlit.commands.malloc_settings') == 2
