"""The SentencePiece vocabulary and the seqio output features of every mlit task.

The tasks tokenize with the model's vocabulary: the file the model gin gives `VOCABULARY`
(T5X style, `seqio.SentencePieceVocabulary.sentencepiece_model_file`; gin/models/ name mT5's
mc4 or T5's cc_all model), unless `tasks.vocabularies.vocabulary.path` names another; mT5's mc4
model without either. Any local or gfile SentencePiece .model works.
"""

import logging
import os
import time

import seqio
import tensorflow as tf

import gin
from tasks.user_error import UserError

MT5_VOCABULARY = 'gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model'
DEFAULT_TEXT_LENGTH = 16  # tokens, EOS included (the paper's choice)


@gin.configurable
def vocabulary(path: str | None = None, extra_ids: int = 0) -> seqio.SentencePieceVocabulary:
  """The SentencePiece vocabulary at `path`, by default the model's (module doc); a local path is
  checked here (seqio loads lazily, so a wrong file would otherwise fail deep inside a tf.data
  pipeline)."""
  return task_vocabulary(path, 'tasks.vocabularies.vocabulary.path', extra_ids)


def task_vocabulary(
  path: str | None, setting: str, extra_ids: int = 0
) -> seqio.SentencePieceVocabulary:
  """`vocabulary` for a file a task's own `setting` names (the model's VOCABULARY when None):
  compared with VOCABULARY's file, as the tasks' tasks.vocabularies.vocabulary.path is."""
  model_file = model_vocabulary_file()
  if path and model_file and not _same_file(path, model_file) and (path, model_file) not in _WARNED:
    _WARNED.add((path, model_file))  # once per process, not per registered task
    logging.warning(
      "the tasks tokenize with %s (%s), not with VOCABULARY's %s, which training does not read; "
      'the run records %s for evaluation and inference',
      path,
      setting,
      model_file,
      path,
    )
  path = path or model_file or MT5_VOCABULARY
  if '://' not in path:
    key = _file_key(path)
    if key not in _CHECKED:  # every task registers with it: YFCC's per-language tasks are 100+
      check_model_file(path)
      if key and time.time() - key[2] / 1e9 > 2:  # as file_io.file_sha256's memo
        _CHECKED.add(key)
  return sentencepiece(path, extra_ids)


def sentencepiece(path: str, extra_ids: int = 0) -> seqio.SentencePieceVocabulary:
  """seqio.SentencePieceVocabulary(path), never another file's model: seqio keeps each loaded
  model for the life of the process by its path as written, so the same relative path from
  another folder (a notebook's chdir, a second run in one process), or a file rewritten in place,
  got the first model loaded, and its texts other ids. Such a change empties seqio's cache, as
  does a path's first use here: seqio may have loaded it already, not through this function (a
  gin-configured VOCABULARY)."""
  if '://' not in path:
    now = _file_key(path)
    if path not in _LOADED or _LOADED[path] != now:
      _LOADED[path] = now
      seqio.vocabularies._load_model_internal.cache_clear()  # pylint: disable=protected-access
  return seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)


def _file_key(path: str) -> tuple[str, int, int] | None:
  """(absolute path, size, mtime in ns) of a local file: a change of either is another model."""
  st = os.stat(path) if os.path.isfile(path) else None
  return (os.path.abspath(path), st.st_size, st.st_mtime_ns) if st else None


_LOADED: dict[str, tuple | None] = {}  # path as written -> (absolute path, size, mtime) last seen
_CHECKED: set[tuple[str, int, int]] = set()  # (path, size, mtime) of files check_model_file passed
_WARNED: set[tuple[str, str]] = set()  # (tasks' path, VOCABULARY's file) pairs warned about


def _same_file(a: str, b: str) -> bool:
  """One file under two spellings (relative and absolute, say) is the same vocabulary."""
  if a == b:
    return True
  return os.path.isfile(a) and os.path.isfile(b) and os.path.samefile(a, b)


def model_vocabulary_file() -> str | None:
  """The .model file gin binds for VOCABULARY (seqio.SentencePieceVocabulary, as gin/models/ and
  T5X configure it), or None where no gin file binds one. Without this, binding VOCABULARY's
  file changed what the evaluation read but not what training tokenized with."""
  try:
    configured = gin.get_configurable('seqio.SentencePieceVocabulary')
  except ValueError:  # no gin file registered it (no `import seqio` under dynamic_registration)
    return None
  try:
    return os.fspath(configured().sentencepiece_model_file)
  except TypeError:  # registered, but its file is not bound (e.g. after gin.clear_config())
    return None


def check_model_file(path: str) -> None:
  """Raises UserError naming `path` unless it is a readable SentencePiece model with T5's ids
  (pad 0, eos 1): the tasks and the text tower take id 0 as padding, which the attention mask
  and the pooling leave out, so a model with SentencePiece's default ids (unk 0, bos 1, eos 2)
  would train on texts whose unknown pieces vanish and whose end is not marked."""
  import sentencepiece  # pylint: disable=g-import-not-at-top

  if not os.path.isfile(path):
    what = 'a directory' if os.path.isdir(path) else 'no such file'
    raise UserError(f'{path}: {what}, expected a SentencePiece .model file (VOCABULARY)')
  with open(path, 'rb') as f:
    proto = f.read()
  processor = sentencepiece.SentencePieceProcessor()
  try:
    processor.LoadFromSerializedProto(proto)
  except Exception as e:  # protobuf DecodeError, RuntimeError from the C++ loader
    raise UserError(f'{path}: not a SentencePiece model ({str(e).strip()[:200]})') from e
  if (processor.pad_id(), processor.eos_id()) != (0, 1):
    raise UserError(
      f'{path}: a SentencePiece model with pad id {processor.pad_id()}, eos {processor.eos_id()}, '
      f'unk {processor.unk_id()}, bos {processor.bos_id()}; mlit (as T5) needs pad 0 and eos 1: '
      'train it with pad_id=0 eos_id=1 unk_id=2 bos_id=-1 (`mlit vocab` does)'
    )


def text_feature(vocab: seqio.Vocabulary) -> seqio.Feature:
  return seqio.Feature(vocab, add_eos=True, dtype=tf.int32)


def image_feature() -> seqio.Feature:
  return seqio.Feature(seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.float32, rank=3)


def embedding_feature() -> seqio.Feature:
  return seqio.Feature(seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.float32, rank=1)


def output_features(text_names, vocab, image: str = 'image') -> dict:
  """{text names -> token features} + 'image' (pixels) or 'image_embedding'."""
  features = {n: text_feature(vocab) for n in text_names}
  if image == 'image':
    features['image'] = image_feature()
  elif image == 'image_embedding':
    features['image_embedding'] = embedding_feature()
  elif image is not None:
    raise ValueError(f"image feature must be 'image', 'image_embedding' or None, got {image!r}")
  return features
