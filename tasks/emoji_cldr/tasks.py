"""seqio tasks over a built emoji_cldr directory.

register_emoji_cldr_tasks(data_dir, vocab_path) registers:
  emoji_cldr.<lang>            'train': tuning pairs (text = name or keyword phrase
                               in lang, image = augmented or centred Noto render)
  emoji_cldr.all               the same over every language (example_id starts
                               with the language)
  emoji_cldr_heldout.<lang>    'validation': held-out concepts, name in lang +
                               centred Noto render (retrieval; .all: every language)
  emoji_cldr_symbola.<lang>    'validation': held-out names + Symbola renders
  emoji_cldr_subgroups         'train'/'validation': image + 'label' (Unicode
                               subgroup id) of tuning / held-out concepts, for
                               image tower pre-training
Features: 'text' int32 token ids (EOS appended), 'image' float32 [H, W, 3] in
[-1, 1], 'example_id' string ('<lang>/<emoji>/<name|kwN|domain>'). Given
`image_embeddings` (written by mlit.emoji_tower embed), the text-image tasks give
'image_embedding' float32 [D], the locked tower's output for the same image row,
instead of 'image'.
"""

import functools

import numpy as np
import seqio
import tensorflow as tf

import gin
from tasks import backtranslation, vocabularies
from tasks.emoji_cldr import data as data_lib
from tasks.emoji_cldr import embeddings as embeddings_lib
from tasks.emoji_cldr import pairs as pairs_lib
from tasks.emoji_cldr import split as split_lib

_SHUFFLE_BUFFER = 1024  # sources already shuffle indices fully; this mixes the rest
_GATHER_ROWS = 1024  # rows gathered per block by a source


def _index_dataset(columns: dict, shuffle: bool, seed) -> tf.data.Dataset:
  """Small columns (ids, strings, ragged token ids) as a dataset of rows, fully shuffled each
  epoch when asked.

  The shuffle runs over row numbers and the rows are gathered a block at a time: the same rows
  in the same order as shuffling the columns themselves with the same seed, for about 50 instead
  of 85 us of host CPU per example (the demo's tuning pairs on a 2-core machine, source alone).
  """
  n = len(columns['image_row'])
  rows = tf.data.Dataset.range(n)
  if shuffle:
    rows = rows.shuffle(n, seed=seed, reshuffle_each_iteration=True)
  tensors = {k: v if isinstance(v, tf.RaggedTensor) else tf.constant(v) for k, v in columns.items()}
  gather = lambda block: {k: tf.gather(v, block) for k, v in tensors.items()}
  return rows.batch(_GATHER_ROWS).map(gather).unbatch()


@functools.lru_cache(maxsize=8)
def _image_table(ds: data_lib.EmojiData, name: str) -> tf.Tensor:
  # One eager tensor per array, shared by all tasks: the dataset functions
  # capture it by reference instead of embedding a copy each.
  return tf.constant(ds.array(name))


def _gather_images(table: tf.Tensor):
  """Preprocessor: 'image_row' -> 'image' float32 in [-1, 1]."""
  shape = table.shape[1:]

  def fn(dataset, **unused):
    def gather(ex):
      ex = dict(ex)
      img = tf.gather(table, ex.pop('image_row'))
      img = tf.cast(img, tf.float32) * (2.0 / 255.0) - 1.0
      ex['image'] = tf.ensure_shape(img, shape)
      return ex

    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE)

  return fn


def _gather_embeddings(table: tf.Tensor):
  """Preprocessor: 'image_row' -> 'image_embedding' float32 [D] (pre-computed)."""

  def fn(dataset, **unused):
    def gather(ex):
      ex = dict(ex)
      ex['image_embedding'] = tf.gather(table, ex.pop('image_row'))
      return ex

    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE)

  return fn


def _token_ids(vocab: seqio.SentencePieceVocabulary, texts: list[str]) -> tf.RaggedTensor:
  """Every text's ids at once (no EOS): the same SentencePiece model as vocab.encode_tf,
  run once in C++ over the whole list instead of once per example per epoch."""
  ids = vocab.tokenizer.encode(list(texts)) if texts else []
  flat = np.fromiter((i for row in ids for i in row), np.int32, count=sum(len(row) for row in ids))
  return tf.RaggedTensor.from_row_lengths(flat, np.array([len(r) for r in ids], np.int64))


def _pairs_source(get_pairs_by_split: dict, vocab, strings: bool) -> seqio.FunctionDataSource:
  """Token ids made in one C++ call; strings (tokenized per example later) for backtranslation."""

  def dataset_fn(split, shuffle_files, seed=None):
    p = get_pairs_by_split[split]()
    return _index_dataset(
      {
        'text': np.asarray(p.texts, dtype=object) if strings else _token_ids(vocab, p.texts),
        'image_row': p.image_index,
        'example_id': np.asarray(p.example_ids, dtype=object),
        # Counted by the trainer per language (MODEL_DIR/language_stats.json).
        'language': np.asarray([i.split('/', 1)[0] for i in p.example_ids], dtype=object),
      },
      shuffle_files,
      seed,
    )

  return seqio.FunctionDataSource(dataset_fn, splits=list(get_pairs_by_split))


def _merge(parts: list[pairs_lib.Pairs]) -> pairs_lib.Pairs:
  return pairs_lib.Pairs(
    [t for p in parts for t in p.texts],
    np.concatenate([p.image_index for p in parts]).astype(np.int32),
    parts[0].images,
    [i for p in parts for i in p.example_ids],
    np.concatenate([p.concept for p in parts]).astype(np.int32),
  )


def _add(name, source, preprocessors, output_features):
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
    name,
    source=source,
    preprocessors=preprocessors,
    output_features=output_features,
    shuffle_buffer_size=_SHUFFLE_BUFFER,
  )


def _text_image_task(
  name, ds, split_fns: dict, image_array: str, vocab, embeddings=None, backtranslate=False
):
  """split_fns: split -> callable returning Pairs whose rows index image_array.

  embeddings: None (pixels) or {image array name: float32 [N, D] tensor}.
  backtranslate: texts stay strings until tasks.backtranslation.maybe_backtranslate has had its
    chance to replace them (candidates keyed by example_id, e.g. 'en/😀/name').
  """
  if embeddings is None:
    gather, image_feature = _gather_images(_image_table(ds, image_array)), 'image'
  else:
    gather, image_feature = _gather_embeddings(embeddings[image_array]), 'image_embedding'
  tokenize = []
  if backtranslate:
    tokenize = [
      functools.partial(backtranslation.maybe_backtranslate, text_features=('text',)),
      functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
    ]
  preprocessors = [
    # Otherwise the source gives token ids already (_token_ids).
    *tokenize,
    # Sticky EOS without truncation marks (tasks.token_preprocessors.
    # trim_and_count adds them, in-graph, for the trainer's data_stats).
    seqio.preprocessors.append_eos_after_trim,
    gather,
  ]
  _add(
    name,
    _pairs_source(split_fns, vocab, strings=backtranslate),
    preprocessors,
    vocabularies.output_features(['text'], vocab, image_feature),
  )


def _register_subgroups(ds: data_lib.EmojiData, name: str):
  aug, aug_concept = ds.images('noto_aug')
  sg = ds.subgroup_ids()
  tuning = np.isin(aug_concept, ds.concept_ids(split_lib.TUNING))

  def dataset_fn(split, shuffle_files, seed=None):
    rows = np.nonzero(tuning if split == 'train' else ~tuning)[0].astype(np.int32)
    return _index_dataset({'image_row': rows, 'label': sg[aug_concept[rows]]}, shuffle_files, seed)

  features = {
    'image': vocabularies.image_feature(),
    'label': seqio.Feature(
      seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.int32, rank=0
    ),
  }
  _add(
    name,
    seqio.FunctionDataSource(dataset_fn, splits=['train', 'validation']),
    [_gather_images(_image_table(ds, 'noto_aug'))],
    features,
  )


@gin.configurable
def register_emoji_cldr_tasks(
  data_dir: str = gin.REQUIRED,
  vocab_path: str | None = None,
  languages=None,
  exclude_languages=(),
  language_repeats=None,
  names_only: bool = False,
  tuning_images: str = 'noto_aug',
  image_embeddings: str | None = None,
) -> list[str]:
  """Registers the emoji_cldr tasks (module docstring); returns their names.

  vocab_path: SentencePiece .model (default: tasks.vocabularies.vocabulary()).
  languages: subset of the built languages (default: all of them).
  exclude_languages: languages left out (e.g. one to add later with `mlit add-language`).
  language_repeats: {lang: k}: the language's tuning pairs appear k times in emoji_cldr.all
    (up-samples a language being added to a run that has seen the others).
  names_only: tuning texts are the CLDR names only (no keyword phrases).
  tuning_images: 'noto_aug' (seeded augmentations) or 'noto_eval' (each tuning
    concept's centred render, the form evaluation shows held-out concepts in).
  image_embeddings: .npz from `python -m mlit.emoji_tower embed`: text-image
    tasks give the locked tower's 'image_embedding' instead of pixels.
  """
  if tuning_images not in pairs_lib.TUNING_IMAGES:
    raise ValueError(
      f'register_emoji_cldr_tasks.tuning_images must be one of '
      f'{pairs_lib.TUNING_IMAGES}, got {tuning_images!r}'
    )
  ds = data_lib.load(data_dir)
  emb = None
  if image_embeddings:  # one eager tensor per array, shared by every task
    emb = {d: tf.constant(a) for d, a in embeddings_lib.load(image_embeddings, ds).items()}
  vocab = (
    vocabularies.task_vocabulary(vocab_path, 'register_emoji_cldr_tasks.vocab_path')
    if vocab_path
    else vocabularies.vocabulary()  # the gin-bound tasks.vocabularies.vocabulary.path, if any
  )
  langs = list(languages) if languages else ds.languages
  unknown = sorted((set(langs) | set(exclude_languages)) - set(ds.languages))
  if unknown:
    raise ValueError(
      f'{data_dir}: languages {unknown} not in the build (manifest.json lists {len(ds.languages)})'
    )
  langs = [lang for lang in langs if lang not in set(exclude_languages)]
  repeats = dict(language_repeats or {})
  if sorted(set(repeats) - set(langs)) or any(int(k) < 1 for k in repeats.values()):
    raise ValueError(
      f'register_emoji_cldr_tasks.language_repeats = {repeats}: languages must be tuned ones '
      'and counts >= 1'
    )
  # Tuning tasks apply backtranslation when gin turns it on (gin/augment/backtranslation.gin).
  bt = backtranslation.requested()
  names = []
  for lang in langs:
    tune = functools.partial(pairs_lib.tuning_pairs, ds, lang, names_only, tuning_images)
    held = functools.partial(pairs_lib.heldout_pairs, ds, lang, 'noto')
    _text_image_task(f'emoji_cldr.{lang}', ds, {'train': tune}, tuning_images, vocab, emb, bt)
    _text_image_task(
      f'emoji_cldr_heldout.{lang}', ds, {'validation': held}, 'noto_eval', vocab, emb
    )
    sym = functools.partial(pairs_lib.heldout_pairs, ds, lang, 'symbola')
    _text_image_task(f'emoji_cldr_symbola.{lang}', ds, {'validation': sym}, 'symbola', vocab, emb)
    names += [f'emoji_cldr.{lang}', f'emoji_cldr_heldout.{lang}', f'emoji_cldr_symbola.{lang}']
  tune_all = lambda: _merge(
    [
      pairs_lib.tuning_pairs(ds, l, names_only, tuning_images)
      for l in langs
      for _ in range(int(repeats.get(l, 1)))
    ]
  )
  _text_image_task('emoji_cldr.all', ds, {'train': tune_all}, tuning_images, vocab, emb, bt)
  held_all = lambda: _merge([pairs_lib.heldout_pairs(ds, l, 'noto') for l in langs])
  _text_image_task('emoji_cldr_heldout.all', ds, {'validation': held_all}, 'noto_eval', vocab, emb)
  _register_subgroups(ds, 'emoji_cldr_subgroups')
  names += ['emoji_cldr.all', 'emoji_cldr_heldout.all', 'emoji_cldr_subgroups']
  return names
