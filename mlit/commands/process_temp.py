"""Each command process's own temporary folder, removed when the process ends, Ctrl-C included.

TensorFlow's autograph writes every function it converts (seqio's and tf.data's maps) to a
`__autograph_generated_file*.py` in the temporary folder and removes it at a normal exit only. A
command that ends without teardown (`end_without_teardown`: after Ctrl-C, or when a process of a
multi-process run is lost) left them behind, about a dozen per run. Pointing `tempfile` at a
folder of the process's own, removed at exit either way, keeps the system's temporary folder as
it was; a child process (the demo's stages) makes its own.
"""

import atexit
import logging
import os
import shutil
import sys
import tempfile

_PREFIX = 'mlit-'
_owned: tuple[int, str] | None = None  # (pid, folder) of the folder this process made


def use_own_folder() -> str:
  """Makes this process's folder under the temporary folder (TMPDIR) and points `tempfile` at
  it; removed at exit. Call once, at a process's entry, before libraries write temporary files."""
  global _owned
  path = tempfile.mkdtemp(prefix=_PREFIX, dir=tempfile.gettempdir())
  tempfile.tempdir = path
  _owned = (os.getpid(), path)
  # Registered before the libraries' own clean-ups, so it runs after them (atexit is last-in,
  # first-out) and they find their files.
  atexit.register(remove_own_folder)
  return path


def remove_own_folder() -> None:
  """Removes the folder this process made; a forked child that reaches its exit handlers leaves
  its parent's folder alone."""
  if _owned and _owned[0] == os.getpid():
    shutil.rmtree(_owned[1], ignore_errors=True)


def end_without_teardown(code: int) -> None:
  """Ends the process at once with `code`: output flushed, the temporary folder removed, no
  interpreter teardown and no exit handlers. For where teardown cannot finish: threads left
  running by Ctrl-C (tf.data readers, XLA compiling) can crash it, and jax.distributed's
  shutdown barrier waits for processes that are gone."""
  logging.shutdown()
  sys.stdout.flush()
  sys.stderr.flush()
  remove_own_folder()
  os._exit(code)  # pylint: disable=protected-access
