"""Shared test setup: each test starts with an empty, unlocked gin config.

Runs of mlit.training.train/eval parse and finalize (lock) gin in the test process; without this, the
next test's gin parsing depends on which test ran before it.

One XLA compilation cache for the session (a fresh temporary directory, removed at exit), for this
process and every subprocess a test starts (they inherit the environment): many tests compile the
same tiny train steps in new processes or new jit objects (resume, kills, meshes, the demo's
stages). Measured on the resume/SIGKILL/NaN tests: 120 s -> 74 s of CPU.

Temporary files go under pytest's folders (one per test), for the processes a test starts (TMPDIR)
and for the test's own process (`tempfile.tempdir`, which Python fixes at its first use): a process
the test kills (SIGKILL, a lost coordinator) cannot remove its temporary folder
(mlit/commands/process_temp.py), and libraries leave theirs (tfds's `tmp*tfds` for a dataset it has
not prepared); the system's temporary folder would keep them.
"""

import atexit
import os
import shutil
import tempfile

import pytest

import gin

if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:  # set before any test imports jax
  _XLA_CACHE = tempfile.mkdtemp(prefix='mlit_tests_xla_')
  atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _XLA_CACHE
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')


@pytest.fixture(autouse=True)
def _temp_folder_per_test(tmp_path_factory, monkeypatch):
  folder = str(tmp_path_factory.mktemp('tmpdir'))
  monkeypatch.setenv('TMPDIR', folder)
  monkeypatch.setattr(tempfile, 'tempdir', folder)


@pytest.fixture(autouse=True)
def _fresh_gin_config():
  yield
  gin.clear_config()
  # gin.finalize() (run by mlit.training.train/eval) locks gin for the process; a later test that
  # imports a module defining configurables would then fail. gin has no public unlock.
  gin.config._set_config_is_locked(False)  # pylint: disable=protected-access


@pytest.fixture
def vocab(spm_model_path):
  """The tasks' vocabulary bound to the tiny SentencePiece model, with gin and the data counts
  clean around the test. A module using it imports spm_model_path (spm_fixture), as it does for
  the model itself."""
  from tasks import data_stats, vocabularies  # pylint: disable=g-import-not-at-top

  gin.clear_config()
  gin.bind_parameter('tasks.vocabularies.vocabulary.path', spm_model_path)
  data_stats.reset()
  yield vocabularies.vocabulary()
  gin.clear_config()


def pytest_collection_modifyitems(items):
  """Files with slow tests run first (stable: each file's tests stay together and in order).

  Under `make test` (pytest-xdist, one file per worker at a time) the long end-to-end runs start
  early and the short unit tests fill the end, so the workers finish together.
  """
  slow_files = {item.path for item in items if item.get_closest_marker('slow')}
  items.sort(key=lambda item: item.path not in slow_files)
