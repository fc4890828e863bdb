"""Per-class cross-lingual error analysis of zero-shot tasks.

Each zero-shot evaluation returns, per language, each class's accuracy, the class its images
were most often confused with and its text statistics (zeroshot.evaluate_language). This module
joins them across languages into RUN_DIR/per_class.json:

  {"tasks": {"<dataset>/<task>": {
     "classes": {label: {lang: {name, acc1, n_images, confused_with, tokens, truncated,
                                collides_with}}},
     "gaps": {lang: {"n_classes": .., "n_english_right_language_wrong": ..,
                     "n_language_right_english_wrong": ..,
                     "english_right_language_wrong": [top entries],
                     "language_right_english_wrong": [top entries]}}}}}

A class is compared in a language when both it and English have images of it scored. The gap is
English accuracy minus the language's; among equal gaps, classes whose name is truncated or
collides with another class's come first, then longer names: the usual tokenizer causes.
"""

import os

from eval_multilingual import report_data
from tasks.user_error import UserError

ENGLISH = 'en'
TOP_K = 10
FILENAME = 'per_class.json'


def cross_language_table(per_class: dict) -> dict[str, dict]:
  """{(task key, lang): {label: row} | None} -> {task key: {label: {lang: row}}}."""
  out: dict[str, dict] = {}
  for (key, lang), rows in sorted(per_class.items()):
    for label, row in (rows or {}).items():
      out.setdefault(key, {}).setdefault(label, {})[lang] = row
  return out


def _entry(label: str, classes: dict[str, dict], lang: str) -> dict:
  en, other = classes[label][ENGLISH], classes[label][lang]

  def name_in_language(other_label) -> str | None:
    return classes.get(str(other_label), {}).get(lang, {}).get('name')

  confused = other.get('confused_with')
  collides = other.get('collides_with', [])
  return {
    'label': label,
    'name_en': en.get('name'),
    'name': other.get('name'),
    'acc1_en': en['acc1'],
    'acc1': other['acc1'],
    'tokens_en': en.get('tokens'),
    'tokens': other.get('tokens'),
    'truncated': other.get('truncated'),
    'collides_with': collides,
    'collides_with_names': [name_in_language(c) for c in collides],
    'confused_with': confused,
    'confused_with_name': None if confused is None else name_in_language(confused),
  }


def _tokenizer_suspect(entry: dict) -> tuple:
  return (not entry['collides_with'], not entry['truncated'], -(entry['tokens'] or 0))


def language_gaps(classes: dict[str, dict], top_k: int = TOP_K) -> dict[str, dict]:
  """Per non-English language: classes English gets right and the language wrong (and the
  reverse), largest accuracy gap first."""
  langs = sorted({lang for by_lang in classes.values() for lang in by_lang} - {ENGLISH})
  out = {}
  for lang in langs:
    shared = [
      (label, by_lang)
      for label, by_lang in classes.items()
      if ENGLISH in by_lang and lang in by_lang
    ]
    if not shared:
      continue
    worse, better = [], []
    for label, by_lang in shared:
      gap = by_lang[ENGLISH]['acc1'] - by_lang[lang]['acc1']
      entry = _entry(label, classes, lang)
      if gap > 0:
        worse.append((-gap, _tokenizer_suspect(entry), label, entry))
      elif gap < 0:
        better.append((gap, _tokenizer_suspect(entry), label, entry))
    worse.sort(key=lambda t: t[:3])
    better.sort(key=lambda t: t[:3])
    out[lang] = {
      'n_classes': len(shared),
      'n_english_right_language_wrong': len(worse),
      'n_language_right_english_wrong': len(better),
      'english_right_language_wrong': [t[-1] for t in worse[:top_k]],
      'language_right_english_wrong': [t[-1] for t in better[:top_k]],
    }
  return out


def analyse(per_class: dict, top_k: int = TOP_K) -> dict:
  tasks = {}
  for key, classes in cross_language_table(per_class).items():
    tasks[key] = {'classes': classes, 'gaps': language_gaps(classes, top_k)}
  return {'english': ENGLISH, 'tasks': tasks}


_COUNTS = ('n_classes', 'n_english_right_language_wrong', 'n_language_right_english_wrong')
_LISTS = ('english_right_language_wrong', 'language_right_english_wrong')


def load(run_dir: str) -> dict | None:
  """RUN_DIR/per_class.json (None when absent); UserError naming the file and the key when it is
  not the JSON object analyse() writes, as far as the report reads it."""
  path = os.path.join(run_dir, FILENAME)
  if not os.path.exists(path):
    return None
  data = report_data.read_json(path, required=True)
  tasks = _object(path, 'tasks', data.get('tasks', {}))
  for key, task in tasks.items():
    gaps = _object(path, f'tasks.{key}.gaps', _object(path, f'tasks.{key}', task).get('gaps', {}))
    for lang, gap in gaps.items():
      _check_gap(path, f'tasks.{key}.gaps.{lang}', _object(path, f'tasks.{key}.gaps.{lang}', gap))
  return data


def _object(path: str, key: str, value) -> dict:
  if not isinstance(value, dict):
    raise UserError(f'{path}: {key} is not an object')
  return value


def _check_gap(path: str, key: str, gap: dict) -> None:
  for name in _COUNTS:
    v = gap.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
      raise UserError(f'{path}: {key}.{name} = {v!r} is not a count')
  for name in _LISTS:
    entries = gap.get(name, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
      raise UserError(f'{path}: {key}.{name} is not a list of objects')
    for i, e in enumerate(entries):
      if not isinstance(e.get('collides_with_names', []), list):
        raise UserError(f'{path}: {key}.{name}[{i}].collides_with_names is not a list')
