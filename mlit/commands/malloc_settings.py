"""glibc malloc settings for mlit's processes: keep freed memory instead of returning it each step.

A jitted step on CPU allocates its large temporaries through malloc. With glibc's defaults they
are mmap-ed, freed back to the OS and mapped again every step: about 427,000 minor page faults per
mT5-small step at batch 256 (~1.7 GB of pages zeroed again). Keeping freed memory in one arena
(no mmap-ed chunks, no trimming) takes that to 0 after the first step; the demo's training steps
ran about 20% faster with the same losses (README, Benchmarks). The price: a process keeps its
peak heap until it exits.

glibc reads GLIBC_TUNABLES once, at process start, so a command re-executes itself with them
(`reexec_with_settings`, from `mlit.commands.cli.program_main`, which a command module run as
`python -m` reaches above its heavy imports through `cli.run_if_main`) and a parent hands them to
its children (`environment`).
MLIT_MALLOC=system keeps the system's defaults; settings already in GLIBC_TUNABLES win.
"""

import os
import sys

# glibc tunable -> value. arena_max=1 matters: with several arenas, large blocks freed by XLA's
# threads are still unmapped (measured: mmap_max=0 and trim_threshold alone leave the faults).
SETTINGS = {
  'glibc.malloc.mmap_max': '0',
  'glibc.malloc.trim_threshold': str(64 << 30),
  'glibc.malloc.arena_max': '1',
}
OPT_OUT = 'MLIT_MALLOC'  # =system: leave malloc as the system has it


def applies() -> bool:
  """Linux with glibc (musl, macOS and Windows have no GLIBC_TUNABLES)."""
  try:
    libc = os.confstr('CS_GNU_LIBC_VERSION') or ''
  except (ValueError, OSError, AttributeError):  # no such name here: not glibc
    return False
  return sys.platform.startswith('linux') and libc.startswith('glibc')


def environment(env=None) -> dict:
  """env (default os.environ) with SETTINGS merged into GLIBC_TUNABLES; unchanged where the
  settings cannot apply or the user opted out."""
  env = dict(os.environ if env is None else env)
  if env.get(OPT_OUT) == 'system' or not applies():
    return env
  items = [t for t in env.get('GLIBC_TUNABLES', '').split(':') if t]
  present = {t.split('=', 1)[0] for t in items}
  added = [f'{k}={v}' for k, v in SETTINGS.items() if k not in present]
  if added and env.get(OPT_OUT):  # a value that means nothing is said, not ignored (once)
    print(
      f"mlit: {OPT_OUT}={env[OPT_OUT]!r} is not a known value (only 'system', which keeps the "
      "system's malloc defaults); using mlit's malloc settings",
      file=sys.stderr,
    )
  items += added
  env['GLIBC_TUNABLES'] = ':'.join(items)
  return env


def reexec_with_settings() -> None:
  """Re-executes this process's command line with the settings, unless it already has them.

  Call first thing in a program's entry, before threads start; never from library code (it
  replaces the process). The re-executed process finds its environment complete and goes on.
  """
  env = environment()
  if env.get('GLIBC_TUNABLES') == os.environ.get('GLIBC_TUNABLES') or not sys.orig_argv:
    return  # already set, or not applicable; no command line to repeat (embedded Python)
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
