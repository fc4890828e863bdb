"""tasks.file_io: the one atomic-write helper, and local and remote (gfile) paths read alike."""

import gzip
import hashlib
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tasks import file_io
from tasks.user_error import UserError


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


def test_local_and_remote_paths_read_and_write_alike(tmp_path):
  """Local paths skip TensorFlow; a scheme path (here TF's in-memory ram://) goes through gfile."""

  payload = 'id\ttext\n1\tnaïve\n'.encode()
  blob = gzip.compress(payload, mtime=0)
  for root in (str(tmp_path), f'ram://{tmp_path.name}'):
    path = f'{root}/sub/rows.tsv.gz'
    with file_io.atomic_path(path) as tmp:
      with (tf.io.gfile.GFile if file_io.is_remote(tmp) else open)(tmp, 'wb') as f:
        f.write(blob)
    assert file_io.expand_patterns(f'{root}/sub/*.gz') == [path]
    with file_io.open_binary(path) as f:
      assert f.read() == payload
    with file_io.open_text(path) as f:
      assert f.read() == payload.decode()
    assert file_io.file_sha256(path) == hashlib.sha256(blob).hexdigest()
    with pytest.raises(RuntimeError), file_io.atomic_path(f'{root}/sub/failed.txt') as tmp:
      with (tf.io.gfile.GFile if file_io.is_remote(tmp) else open)(tmp, 'wb') as f:
        f.write(b'half')
      raise RuntimeError('writer failed')
    assert file_io.expand_patterns(f'{root}/sub/*') == [path]  # nothing left behind
  with pytest.raises(FileNotFoundError, match='no file matches'):
    file_io.expand_patterns(f'{tmp_path}/missing/*.gz')

  # Reading local files never imports TensorFlow (5-6 s of every command's start).
  probe = (
    'import sys; from tasks import file_io; '
    f'file_io.open_binary({str(tmp_path / "sub" / "rows.tsv.gz")!r}).read(); '
    'assert "tensorflow" not in sys.modules'
  )
  subprocess.run([sys.executable, '-c', probe], check=True)


def test_a_directory_among_the_matches_is_one_line_naming_it(tmp_path):
  """A pattern that matches a directory (`--metadata DIR`, a tsv_pattern of a folder) failed later
  inside the reader, as a traceback through Beam or tf.data; now it is a user error naming it."""
  (tmp_path / 'rows.tsv').write_text('1\ta\n')
  (tmp_path / 'images').mkdir()
  assert file_io.expand_patterns(f'{tmp_path}/*.tsv') == [f'{tmp_path}/rows.tsv']
  with pytest.raises(UserError, match=f'^{tmp_path}/images is a directory, not a data file'):
    file_io.expand_patterns(f'{tmp_path}/*')
