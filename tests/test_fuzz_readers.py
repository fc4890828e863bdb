"""Property-based fuzzing of every reader of outside data (hypothesis, derandomized for CI).

Properties: only the project's own error types escape (tasks.user_error.UserError and its
subclasses), naming the file; every valid row planted among garbage comes out, and every
non-blank line is counted exactly once (kept or skipped by reason); nothing outside a
checkpoint's directory is read. Example counts are small and a deadline is set, so the whole
file stays within seconds.
"""

import csv
import io
import json
import os
import string
import tempfile

import numpy as np
import pytest
import task_files
from flax import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval_multilingual import prompts, report_data
from eval_multilingual.datasets import coco, xm3600
from mlit.checkpoints import big_vision_npz, t5x
from tasks import cc12m, data_stats, image_store, vocabularies, wit, yfcc_source
from tasks.user_error import UserError

FUZZ = settings(
  max_examples=12,
  deadline=5000,  # ms per example, generous: the test machine may be shared
  derandomize=True,
  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WORDS = st.text(alphabet=string.ascii_letters + ' ', min_size=3, max_size=20).filter(str.strip)
# Garbage lines: raw bytes, tab-separated junk, or JSON-ish text (no newline inside).
GARBAGE = st.one_of(
  st.binary(max_size=60),
  st.lists(st.text(max_size=6), max_size=30).map(lambda cols: '\t'.join(cols).encode('utf-8')),
  st.text(alphabet='{}[]":,0123456789abc \t\\', max_size=40).map(str.encode),
).map(lambda b: b.replace(b'\n', b' ').replace(b'\r', b' '))
JSON_VALUES = st.recursive(
  st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
  lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
  max_leaves=12,
)


@pytest.fixture(scope='module')
def workdir():
  with tempfile.TemporaryDirectory() as d:
    yield d


def _mix(data, good: list[bytes], garbage: list[bytes]) -> list[bytes]:
  """`garbage` with each `good` line inserted at a drawn position (order of `good` kept)."""
  lines = list(garbage)
  at = 0
  for line in good:
    at = data.draw(st.integers(at, len(lines)))
    lines.insert(at, line)
    at += 1
  return lines


def _write(path, lines: list[bytes]) -> str:
  with open(path, 'wb') as f:
    f.writelines(line + b'\n' for line in lines)
  return path


def _counted(lines, source):
  """Rows counted by data_stats equal the non-blank lines: none lost, none twice."""
  stats = data_stats.snapshot()
  counted = sum(stats['skipped_rows'].values()) + stats['kept_rows'].get(source, 0)
  assert counted == sum(1 for line in lines if line.strip()), stats


def _only_user_errors(fn, path):
  try:
    return fn()
  except UserError as e:
    assert os.path.basename(path) in str(e), e
    return None


@FUZZ
@given(
  layout=st.sampled_from(sorted(yfcc_source.LAYOUTS)),
  titles=st.lists(WORDS, min_size=1, max_size=4),
  garbage=st.lists(GARBAGE, max_size=10),
  data=st.data(),
)
def test_yfcc_keeps_every_planted_row(workdir, layout, titles, garbage, data):
  good = [
    task_files.yfcc_row(900000 + i, t, 'A photo', ['tag'], layout=layout, line=i).encode()
    for i, t in enumerate(titles)
  ]
  lines = _mix(data, good, garbage)
  path = _write(os.path.join(workdir, 'yfcc.tsv'), lines)
  data_stats.reset()
  rows = list(yfcc_source.YfccReader(detect_languages=False)(path))
  ids = [r['example_id'] for r in rows]
  assert [i for i in ids if i.startswith('9000')] == [str(900000 + i) for i in range(len(good))]
  _counted(lines, 'yfcc100m')


@FUZZ
@given(captions=st.lists(WORDS, min_size=1, max_size=4), garbage=st.lists(GARBAGE, max_size=10))
def test_cc12m_keeps_every_planted_row(workdir, captions, garbage):
  urls = [f'http://planted.example/{i}.jpg' for i in range(len(captions))]
  good = [f'{u}\t{c}'.encode() for u, c in zip(urls, captions)]
  lines = garbage + good
  path = _write(os.path.join(workdir, 'cc12m.tsv'), lines)
  data_stats.reset()
  ids = {r['example_id'] for r in cc12m.read_cc12m(path)}
  assert {image_store.url_id(u) for u in urls} <= ids
  _counted(lines, 'cc12m')


# A double quote opens a multi-line field in WIT's quoted TSV: by design it may swallow
# the next lines, so the garbage here has none.
WIT_GARBAGE = st.text(
  alphabet=st.characters(
    exclude_categories=['Cs'], exclude_characters='"\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029'
  ),
  max_size=60,
)


@FUZZ
@given(refs=st.lists(WORDS, min_size=1, max_size=4), garbage=st.lists(WIT_GARBAGE, max_size=8))
def test_wit_keeps_every_planted_row(workdir, refs, garbage):
  urls = [f'http://w/planted{i}.jpg' for i in range(len(refs))]
  buf = io.StringIO()  # quoted like WIT: the rows' page descriptions hold newlines
  csv.writer(buf, delimiter='\t', quotechar='"', lineterminator='\n').writerows(
    task_files.wit_row('de', u, reference=r).values() for u, r in zip(urls, refs)
  )
  lines = ['\t'.join(task_files.WIT_COLUMNS)] + garbage + [buf.getvalue().rstrip('\n')]
  path = _write(os.path.join(workdir, 'wit.tsv'), [line.encode() for line in lines])
  data_stats.reset()
  ids = {r['example_id'] for r in wit.read_wit(path, 'reference')}
  assert {image_store.url_id(u) for u in urls} <= ids


@FUZZ
@given(
  caps=st.lists(WORDS, min_size=1, max_size=4),
  garbage=st.lists(GARBAGE | JSON_VALUES.map(lambda v: json.dumps(v).encode()), max_size=8),
  data=st.data(),
)
def test_xm3600_keeps_every_planted_line(workdir, caps, garbage, data):
  good = [
    json.dumps({'image/key': f'planted{i}', 'de': {'caption': [c]}}).encode()
    for i, c in enumerate(caps)
  ]
  path = _write(os.path.join(workdir, 'captions.jsonl'), _mix(data, good, garbage))
  out, _ = xm3600.read_xm3600(path, ['de'])
  keys = [k for k in out['de'].image_keys if k.startswith('planted')]
  assert keys == [f'planted{i}' for i in range(len(caps))]


@FUZZ
@given(doc=JSON_VALUES, raw=st.binary(max_size=40), as_bytes=st.booleans())
def test_coco_prompt_and_results_files_raise_only_user_errors(workdir, doc, raw, as_bytes):
  content = raw if as_bytes else json.dumps(doc).encode()
  path = os.path.join(workdir, 'results.json')
  _write(path, [content])
  _only_user_errors(lambda: coco.read_coco(path), path)
  _only_user_errors(lambda: prompts.load_prompt_file(path), path)
  _only_user_errors(lambda: report_data.load_run(workdir), path)


@FUZZ
@given(
  images=st.lists(JSON_VALUES, max_size=4),
  annotations=st.lists(JSON_VALUES, max_size=4),
  caps=st.lists(WORDS, min_size=1, max_size=3),
)
def test_coco_keeps_every_planted_caption(workdir, images, annotations, caps):
  planted_images = [{'id': 10**6 + i, 'file_name': f'planted{i}.jpg'} for i in range(len(caps))]
  planted = [{'image_id': 10**6 + i, 'caption': c} for i, c in enumerate(caps)]
  path = os.path.join(workdir, 'captions_val.json')
  with open(path, 'w') as f:
    json.dump({'images': images + planted_images, 'annotations': annotations + planted}, f)
  out = _only_user_errors(lambda: coco.read_coco(path), path)
  assert out is not None
  keys = [k for k in out[0]['en'].image_keys if str(k).startswith('planted')]
  assert keys == [f'planted{i}.jpg' for i in range(len(caps))]


@pytest.fixture(scope='module')
def npz_bytes(tmp_path_factory):
  path = os.path.join(tmp_path_factory.mktemp('npz'), 'v.npz')
  np.savez(path, **{'cls': np.arange(64, dtype=np.float32), 'embedding/bias': np.ones(3)})
  with open(path, 'rb') as f:
    return f.read()


@FUZZ
@given(data=st.data())
def test_npz_damage_gives_only_checkpoint_errors(workdir, npz_bytes, data):
  blob = bytearray(npz_bytes)
  kind = data.draw(st.sampled_from(['flip', 'truncate', 'random']))
  if kind == 'flip':
    for at in data.draw(st.lists(st.integers(0, len(blob) - 1), min_size=1, max_size=4)):
      blob[at] ^= data.draw(st.integers(1, 255))
  elif kind == 'truncate':
    blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
  else:
    blob = bytearray(data.draw(st.binary(max_size=200)))
  path = os.path.join(workdir, 'damaged.npz')
  with open(path, 'wb') as f:
    f.write(bytes(blob))
  out = _only_user_errors(lambda: big_vision_npz.read_npz(path), path)
  # A flip may land in a name or padding and leave the file readable; cut or random never.
  assert out is None or kind == 'flip', 'a truncated or random file read as an .npz'


def test_npz_member_flip_is_caught(workdir, npz_bytes):
  """Not left to chance: a flipped byte in array data (the zip CRC catches it)."""
  blob = bytearray(npz_bytes)
  blob[npz_bytes.index(b'\x93NUMPY') + 200] ^= 0x55
  path = os.path.join(workdir, 'flipped.npz')
  with open(path, 'wb') as f:
    f.write(bytes(blob))
  with pytest.raises(big_vision_npz.CheckpointError, match='flipped.npz: array'):
    big_vision_npz.read_npz(path)


@pytest.fixture(scope='module')
def t5x_dirs(tmp_path_factory):
  """A checkpoint dir beside a secret zarr array (and a link to it) outside that dir."""
  import tensorstore as ts

  root = str(tmp_path_factory.mktemp('t5x'))
  secret = os.path.join(root, 'secret')
  spec = {
    'driver': 'zarr',
    'kvstore': {'driver': 'file', 'path': secret},
    'metadata': {'shape': [2], 'chunks': [2], 'dtype': '<f4'},
  }
  ts.open(spec, create=True).result().write(np.array([7.0, 7.0], np.float32)).result()
  ckpt = os.path.join(root, 'ckpts', 'checkpoint_1')
  os.makedirs(ckpt)
  os.symlink(secret, os.path.join(ckpt, 'link'))
  os.symlink(os.path.dirname(ckpt), os.path.join(ckpt, 'up'))
  return ckpt, spec


PATHS = st.one_of(
  st.sampled_from(['../secret', '../../secret', 'link', 'up/../../secret', 'up/up', '/']),
  st.lists(st.sampled_from(['..', '.', 'link', 'up', 'secret', 'x', '']), max_size=5).map('/'.join),
  st.text(max_size=12),
)


@FUZZ
@given(
  rel=PATHS,
  form=st.sampled_from(['kvstore', 'top', 'both', 'string']),
  driver=st.sampled_from(['file', 'gcs', 'gfile']),
  version=st.sampled_from([3, 2, None, 'x', 7, [1]]),
  leaf=JSON_VALUES,
)
def test_t5x_reads_nothing_outside_the_checkpoint(t5x_dirs, rel, form, driver, version, leaf):
  ckpt, secret_spec = t5x_dirs
  spec = {'driver': 'zarr', 'metadata': secret_spec['metadata']}
  if form == 'kvstore':
    spec['kvstore'] = {'driver': driver, 'path': rel}
  elif form == 'top':
    spec.update(kvstore={'driver': driver, 'bucket': 'b'}, path=rel)
  elif form == 'both':
    spec.update(kvstore={'driver': driver, 'path': 'x'}, path=rel)
  else:
    spec.update(kvstore=driver, path=rel)
  contents = {'optimizer': {'target': {'encoder': {'w': spec, 'other': leaf}}}}
  if version is not None:
    contents['version'] = version
  try:
    blob = serialization.msgpack_serialize(contents)
  except Exception:  # noqa: BLE001 - a leaf msgpack cannot hold: nothing to test
    return
  with open(os.path.join(ckpt, 'checkpoint'), 'wb') as f:
    f.write(blob)
  out = _only_user_errors(lambda: t5x.read_t5x_checkpoint(ckpt), ckpt)
  for key, arr in (out or {}).items():
    assert not np.array_equal(np.asarray(arr, dtype=object), [7.0, 7.0]), f'{key}: read outside'


@FUZZ
@given(raw=st.binary(max_size=64))
def test_t5x_checkpoint_file_garbage(t5x_dirs, raw):
  ckpt, _ = t5x_dirs
  with open(os.path.join(ckpt, 'checkpoint'), 'wb') as f:
    f.write(raw)
  _only_user_errors(lambda: t5x.read_t5x_checkpoint(ckpt), ckpt)


@FUZZ
@given(
  name=st.text(alphabet=string.ascii_letters + '._-', min_size=1, max_size=12).filter(
    lambda n: n not in ('.', '..')
  ),
  content=st.one_of(st.none(), st.binary(max_size=64)),
  as_dir=st.booleans(),
)
def test_sentencepiece_model_paths(workdir, name, content, as_dir):
  path = os.path.join(workdir, 'spm', name)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if os.path.isdir(path):
    os.rmdir(path)
  elif os.path.exists(path):
    os.remove(path)
  if as_dir:
    os.makedirs(path)
  elif content is not None:
    with open(path, 'wb') as f:
      f.write(content)
  with pytest.raises(UserError, match=name.replace('.', r'\.')):
    vocabularies.vocabulary(path).vocab_size
