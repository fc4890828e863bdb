"""tasks.file_io.atomic_path: the one atomic-write helper."""

import os

import pytest

from tasks import file_io


def test_atomic_path_replaces_only_on_success(tmp_path):
  path = str(tmp_path / 'sub' / 'out.json')
  with file_io.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    f.write('first')
    f.flush()
    assert not os.path.exists(path)  # readers see nothing until the block ends
  assert open(path, encoding='utf-8').read() == 'first'

  with pytest.raises(RuntimeError):
    with file_io.atomic_path(path) as tmp:
      with open(tmp, 'w', encoding='utf-8') as f:
        f.write('half')
      raise RuntimeError('writer failed')
  assert open(path, encoding='utf-8').read() == 'first'
  assert os.listdir(tmp_path / 'sub') == ['out.json']  # no temporary file left
