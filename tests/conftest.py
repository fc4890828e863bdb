"""Shared test setup: each test starts with an empty, unlocked gin config.

Runs of mlit.training.train/eval parse and finalize (lock) gin in the test process; without this, the
next test's gin parsing depends on which test ran before it.
"""

import pytest

import gin


@pytest.fixture(autouse=True)
def _fresh_gin_config():
  yield
  gin.clear_config()
  # gin.finalize() (run by mlit.training.train/eval) locks gin for the process; a later test that
  # imports a module defining configurables would then fail. gin has no public unlock.
  gin.config._set_config_is_locked(False)  # pylint: disable=protected-access
