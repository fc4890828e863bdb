"""YFCC100m tasks: full and CLIP subset, per-language tasks and a language mixture.

Registered by `register_yfcc()` after gin is parsed, e.g. in a gin file:
  YFCC_TSV_PATTERN = "gs://bucket/yfcc100m_dataset-*.bz2"
  tasks.yfcc.register_yfcc.tsv_pattern = %YFCC_TSV_PATTERN
  tasks.yfcc.register_yfcc.mode = "joint"   # 'per_image', 'per_batch', 'title', ...
('per_batch' keeps the three signals; include gin/yfcc_per_batch.gin so the
trainer picks one per batch.)
Task names: yfcc100m_full, yfcc100m_clip (when subset_ids_path is set),
yfcc100m_full.<lang> and the mixture yfcc100m_full.languages (when languages are
given as a list or a language_stats.json).
"""

import functools
import logging
from typing import Optional, Sequence

import gin
from tasks import (
  file_io,
  language_codes,
  language_mixture,
  row_source,
  signals,
  task_builder,
  yfcc_source,
)
from tasks.user_error import UserError

SINGLE_SIGNAL_MODES = signals.SIGNALS  # train on one signal only: 'title', ...


def _keep_signal(dataset, signal):
  return dataset.filter(lambda ex: ex[signal] != '')


def _rename_signal(dataset, signal):
  def rename(ex):
    out = {k: v for k, v in ex.items() if k not in signals.SIGNALS}
    out['text'] = ex[signal]
    return out

  return dataset.map(rename)


def mode_preprocessors(mode: str):
  """(text feature names, post-cache preprocessors) for a signal mode."""
  if mode in ('joint', 'per_batch'):  # per_batch picks after batching (signals.py)
    return signals.SIGNALS, [signals.join_shuffled_tags]
  if mode == 'per_image':
    return ('text',), [signals.join_shuffled_tags, signals.select_signal_per_image]
  if mode in SINGLE_SIGNAL_MODES:
    return ('text',), [
      signals.join_shuffled_tags,
      functools.partial(_keep_signal, signal=mode),
      functools.partial(_rename_signal, signal=mode),
    ]
  raise UserError(
    f'register_yfcc.mode {mode!r}: not a YFCC signal mode '
    f'({", ".join(signals.MODES + SINGLE_SIGNAL_MODES)})'
  )


def _typed_languages(languages: Sequence[str], counts: dict | None, counts_path: str) -> list:
  """register_yfcc.languages in the data's spelling ('zh_tw' -> 'zh-TW', as langid writes the
  language feature). A code that cannot be a language, or that the counts file lacks, is one
  line: its task would be empty and the mixture would leave it out in silence."""
  languages = [language_codes.typed_task_language(c, 'register_yfcc.languages') for c in languages]
  if counts is not None:
    language_codes.check_languages(
      languages, set(counts), 'register_yfcc.languages', f'{counts_path} has no count for'
    )
  return languages


# The signal mode of each registered YFCC task: 'per_batch' only takes effect through the
# trainer's batch_transform (gin/yfcc_per_batch.gin), which the trainer checks.
_REGISTERED_MODES: dict[str, str] = {}


def per_batch_tasks(names) -> list[str]:
  """Those of `names` registered by register_yfcc with mode 'per_batch'."""
  return [n for n in names if _REGISTERED_MODES.get(n) == 'per_batch']


@gin.configurable
def register_yfcc(
  tsv_pattern: str = gin.REQUIRED,
  *,
  eval_tsv_pattern: Optional[str] = None,
  subset_ids_path: Optional[str] = None,
  mode: str = 'joint',
  layout: str = 'auto',
  image_dir: Optional[str] = None,
  image_path_format: str = '{id}.jpg',
  image_shards: Optional[str] = None,
  image_shard_key: str = 'key',
  detect_languages: bool = True,
  languages: Sequence[str] = (),
  language_counts_path: Optional[str] = None,
  min_language_examples: int = 1,
  temperature: float = 3.0,
  photos_only: bool = True,
) -> list:
  """Registers the YFCC tasks; returns their names."""
  text_names, post_cache = mode_preprocessors(mode)
  file_io.check_patterns('register_yfcc.tsv_pattern', tsv_pattern)
  splits = {'train': tsv_pattern}
  if eval_tsv_pattern:
    file_io.check_patterns('register_yfcc.eval_tsv_pattern', eval_tsv_pattern)
    splits['validation'] = eval_tsv_pattern
  image = 'image' if image_dir is not None or image_shards is not None else None

  def add(name, subset, pre_cache=()):
    reader = yfcc_source.YfccReader(
      layout=layout,
      subset_ids_path=subset,
      photos_only=photos_only,
      detect_languages=detect_languages,
      image_dir=image_dir,
      image_path_format=image_path_format,
      image_shards=image_shards,
      image_shard_key=image_shard_key,
    )
    source = row_source.RowSource(reader, reader.output_signature, splits, name='yfcc100m')
    _REGISTERED_MODES[name] = mode
    task_builder.add_task(
      name,
      source,
      text_names=text_names,
      image=image,
      pre_cache=pre_cache,
      post_cache=post_cache,
      backtranslate_features=signals.SIGNALS,
    )
    return name

  names = [add('yfcc100m_full', None)]
  if subset_ids_path:
    names.append(add('yfcc100m_clip', subset_ids_path))
  counts = (
    language_mixture.load_language_counts(language_counts_path) if language_counts_path else None
  )
  languages = _typed_languages(languages, counts, language_counts_path)  # not the file's codes
  if counts is not None and not languages:
    languages = language_mixture.trainable_languages(counts, min_language_examples)
  if languages and not detect_languages:
    raise UserError(
      'register_yfcc.languages: per-language YFCC tasks need detect_languages=True (the language '
      'feature is detected)'
    )
  lang_tasks = [
    add(
      f'yfcc100m_full.{language_codes.task_name_part(lang)}',
      None,
      [task_builder.filter_equal('language', lang)],
    )
    for lang in languages
  ]
  names += lang_tasks
  empty = sorted(l for l in languages if counts is not None and not counts.get(l))
  if lang_tasks and empty:
    logging.warning(
      'register_yfcc.languages: %s counted 0 examples in %s: left out of the mixture '
      'yfcc100m_full.languages (their tasks stay registered)',
      ', '.join(empty),
      language_counts_path,
    )
  if lang_tasks:
    rates = (
      language_mixture.temperature_rates({l: counts.get(l, 0) for l in languages}, temperature)
      if counts is not None
      else {l: 1.0 for l in languages}
    )
    task_builder.add_mixture(
      'yfcc100m_full.languages',
      [(f'yfcc100m_full.{language_codes.task_name_part(l)}', r) for l, r in rates.items() if r > 0],
    )
    names.append('yfcc100m_full.languages')
  return names
