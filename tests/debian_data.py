"""Skip marker for tests that read the emoji/CLDR Debian packages (`make test` installs them; on CI
a missing package is a failure, not a skip)."""

import os

import pytest

from tasks.emoji_cldr import sources


def _have_debian_data() -> bool:
  try:
    sources.find_all('/')
    return True
  except sources.MissingPackageError:
    return False


needs_debian_data = pytest.mark.skipif(
  not _have_debian_data() and os.environ.get('CI') != 'true',
  reason='emoji/CLDR Debian packages missing (make test installs them)',
)
