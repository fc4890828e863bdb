"""TensorFlow runs the input pipeline on the host; the accelerators belong to JAX.

TensorFlow creates every GPU it can see on its first operation and reserves most of that GPU's
memory, which JAX then cannot have; seqio and tf.data need only the CPU. So TF is shown no GPU,
as T5X and big_vision do.

TensorFlow's C++ logging also prints INFO lines when it loads (oneDNN, CUDA stubs) whatever
TF_CPP_MIN_LOG_LEVEL says (TF 2.21), and listing its devices probes CUDA, which logs a failed
cuInit at ERROR level on a machine without a GPU. The `mlit` commands that use TensorFlow load it
first inside `stderr_silenced` (mlit/commands/cli.py), so a user's terminal shows none of that;
the others (cli.WITHOUT_TENSORFLOW, the demo's stages before training) never import it.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def stderr_silenced():
  """Hides what native code writes to stderr (file descriptor 2) inside the block; an exception
  raised inside still propagates, and is reported after it."""
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def keep_tensorflow_on_host() -> None:
  """Hides GPUs from TensorFlow (idempotent; JAX still sees them)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  if tf.config.get_visible_devices('GPU'):
    try:
      tf.config.set_visible_devices([], 'GPU')
    except RuntimeError as e:  # TF already created its devices: too late to hide them
      tf.get_logger().warning('TensorFlow keeps its GPUs (%s); JAX may lack their memory', e)
