"""Prompt sets for zero-shot classification: per language, class names and templates.

A prompt set file (JSON, UTF-8) holds one's own translations:

  {
    "name": "imagenet_de_fr",          # identifies the set in caches and results
    "num_classes": 1000,               # size of the dataset's label space
    "languages": {
      "de": {
        "classes": ["Schleie", ["Goldfisch", "Goldfische"], ...],
        "templates": ["ein Foto von {}.", "ein Bild einer {}."],
        "class_indices": [0, 1, ...]   # optional, see below
      },
      ...
    }
  }

- "classes": one entry per class, a name or a list of aliases (every alias is put in
  every template and the embeddings are averaged).
- "templates": strings with exactly one "{}" placeholder for the class name.
- "class_indices": optional; when a language covers only a subset of the dataset's
  classes (as Babel-ImageNet does), the dataset label of each entry of "classes". The
  evaluation then keeps only images of those classes and ranks among those classes.
  Without it "classes" must have exactly "num_classes" entries, in label order.

Loading validates the file and raises PromptError naming the file and key of the first
error. Duplicates (the same name for two classes, a repeated template, a repeated
language key) are not errors (real translations have them) but are listed in
`PromptSet.warnings`.
"""

import collections
import dataclasses
import hashlib
import json
from typing import Any, Sequence

from tasks.user_error import UserError

PLACEHOLDER = '{}'


class PromptError(UserError):
  """A prompt set is malformed; the message names the file and key."""


@dataclasses.dataclass(frozen=True)
class PromptSet:
  """Class names (with aliases) and templates for one language."""

  name: str
  language: str
  classes: tuple[tuple[str, ...], ...]
  templates: tuple[str, ...]
  num_classes: int
  class_indices: tuple[int, ...] | None = None
  source: str = ''
  warnings: tuple[str, ...] = ()

  @property
  def labels(self) -> tuple[int, ...]:
    """Dataset label of each class of the set (identity unless a subset)."""
    if self.class_indices is None:
      return tuple(range(len(self.classes)))
    return self.class_indices

  def prompts(self, class_index: int) -> list[list[str]]:
    """Texts of one class: per alias, the alias put in every template."""
    return [
      [t.replace(PLACEHOLDER, alias) for t in self.templates] for alias in self.classes[class_index]
    ]

  def fingerprint(self) -> str:
    """Hash of everything that changes the classifier (for caches)."""
    blob = json.dumps([self.classes, self.templates, self.class_indices], ensure_ascii=False)
    return hashlib.sha256(blob.encode('utf-8')).hexdigest()[:16]


def make_prompt_set(
  name: str,
  language: str,
  classes: Sequence[Any],
  templates: Sequence[Any],
  num_classes: int,
  class_indices: Sequence[Any] | None = None,
  source: str = '<memory>',
) -> PromptSet:
  """Validates and builds a PromptSet; errors name `source` and the key."""
  where = f'{source}: languages.{language}'

  def fail(key, msg):
    raise PromptError(f'{where}.{key}: {msg}')

  if not isinstance(templates, (list, tuple)) or not templates:
    fail('templates', 'must be a non-empty list of strings')
  warnings = []
  for i, t in enumerate(templates):
    if not isinstance(t, str):
      fail(f'templates[{i}]', f'must be a string, got {type(t).__name__}')
    n = t.count(PLACEHOLDER)
    if n != 1:
      fail(f'templates[{i}]', f"needs exactly one '{PLACEHOLDER}' placeholder, found {n} in {t!r}")
  for t, n in collections.Counter(templates).items():
    if n > 1:
      warnings.append(f'{where}.templates: {t!r} appears {n} times')

  if not isinstance(classes, (list, tuple)) or not classes:
    fail('classes', 'must be a non-empty list')
  parsed = []
  for i, c in enumerate(classes):
    aliases = [c] if isinstance(c, str) else c
    if not isinstance(aliases, (list, tuple)) or not aliases:
      fail(f'classes[{i}]', 'must be a name or a non-empty list of aliases')
    for j, a in enumerate(aliases):
      if not isinstance(a, str) or not a.strip():
        fail(f'classes[{i}][{j}]', f'class name must be a non-empty string, got {a!r}')
    parsed.append(tuple(a.strip() for a in aliases))

  if not isinstance(num_classes, int) or num_classes <= 0:
    raise PromptError(f'{source}: num_classes must be a positive integer, got {num_classes!r}')
  indices = None
  if class_indices is None:
    if len(parsed) != num_classes:
      fail(
        'classes',
        f'has {len(parsed)} classes, expected num_classes={num_classes} '
        '(give class_indices for a subset)',
      )
  else:
    if not isinstance(class_indices, (list, tuple)) or len(class_indices) != len(parsed):
      fail('class_indices', f'must be a list as long as classes ({len(parsed)})')
    for i, k in enumerate(class_indices):
      if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < num_classes:
        fail(f'class_indices[{i}]', f'{k!r} is not a label in [0, {num_classes})')
    dup = [k for k, n in collections.Counter(class_indices).items() if n > 1]
    if dup:
      fail('class_indices', f'labels listed twice: {dup[:10]}')
    indices = tuple(class_indices)

  seen = collections.defaultdict(list)
  for i, aliases in enumerate(parsed):
    for a in set(aliases):
      seen[a].append(i)
  for a, idx in seen.items():
    if len(idx) > 1:
      warnings.append(f'{where}.classes: name {a!r} used by classes {idx}')
  return PromptSet(
    name=name,
    language=language,
    classes=tuple(parsed),
    templates=tuple(templates),
    num_classes=num_classes,
    class_indices=indices,
    source=source,
    warnings=tuple(warnings),
  )


def _pairs_keeping_duplicates(pairs):
  """json object hook that records repeated keys instead of silently keeping the last."""
  d = dict(pairs)
  if len(d) != len(pairs):
    counts = collections.Counter(k for k, _ in pairs)
    d['__duplicate_keys__'] = [k for k, n in counts.items() if n > 1]
  return d


def load_prompt_file(path: str) -> dict[str, PromptSet]:
  """Reads a prompt set file (format in the module docstring): language -> PromptSet."""
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f, object_pairs_hook=_pairs_keeping_duplicates)
  except json.JSONDecodeError as e:
    raise PromptError(f'{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}') from e
  except OSError as e:
    raise PromptError(f'{path}: cannot read prompt file: {e}') from e
  except UnicodeDecodeError as e:
    raise PromptError(f'{path}: not UTF-8 text (byte {e.start})') from e
  except RecursionError as e:
    raise PromptError(f'{path}: JSON nested too deeply') from e
  if not isinstance(data, dict):
    raise PromptError(f'{path}: top level must be an object')
  for key in ('name', 'num_classes', 'languages'):
    if key not in data:
      raise PromptError(f'{path}: missing key {key!r}')
  if not isinstance(data['name'], str) or not data['name']:
    raise PromptError(f'{path}: name must be a non-empty string')
  langs = data['languages']
  if not isinstance(langs, dict) or not langs:
    raise PromptError(f'{path}: languages must be a non-empty object')
  dup_langs = langs.pop('__duplicate_keys__', [])
  out = {}
  for lang, entry in langs.items():
    if not isinstance(entry, dict):
      raise PromptError(f'{path}: languages.{lang}: must be an object')
    extra = set(entry) - {'classes', 'templates', 'class_indices', '__duplicate_keys__'}
    if extra:
      raise PromptError(f'{path}: languages.{lang}: unknown keys {sorted(extra)}')
    for key in ('classes', 'templates'):
      if key not in entry:
        raise PromptError(f'{path}: languages.{lang}: missing key {key!r}')
    ps = make_prompt_set(
      data['name'],
      lang,
      entry['classes'],
      entry['templates'],
      data['num_classes'],
      entry.get('class_indices'),
      source=path,
    )
    if lang in dup_langs:
      ps = dataclasses.replace(
        ps,
        warnings=ps.warnings
        + (f'{path}: languages.{lang} given more than once; the last one is used',),
      )
    out[lang] = ps
  return out
