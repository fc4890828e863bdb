"""The gin file `mlit add-language gin` writes: continue an mlit run with a new language added.

It includes the base run's resolved config (MODEL_DIR/config.gin), so model, image side, loss and
evaluation macros are the base run's, and overrides only what adding the language changes: the
extended vocabulary and its size, CONTINUE_FROM (train.init_from_run) = the grown checkpoint, the
tuning data, the steps and a new MODEL_DIR. Two data sources:
- emoji:  the emoji/CLDR set the base run tuned on (`emoji_cldr.all`), the new language no longer
          excluded and repeated `repeat` times so that it gets a fair share of the steps;
- wit:    WIT rows of the language (`wit_reference.<lang>`, registered by tasks.wit.register_wit
          from the given TSV pattern and image directory); needs a base run with a live image tower.
Every macro the file uses is bound in it or in the base config; `wit` evaluation macros are
written only when their paths are given.
"""

import datetime
import json
import os
import re

WIT_KIND = 'reference'


class GinFileError(ValueError):
  """The base run or the arguments do not allow a file that trains as written."""


def _macro(config: str, name: str) -> str | None:
  m = re.search(rf'^{name} = (.*)$', config, re.M)
  return m.group(1).strip() if m else None


_STRING_MACRO = re.compile(r"""^([A-Z_][A-Z0-9_]*) = (['"])([^'"\n]*)\2[ \t]*$""", re.M)
# Set by this file itself (MODEL_DIR, the vocabulary) or not a path of the base run's.
_OWN_MACROS = {'MODEL_DIR', 'VOCABULARY_FILE', 'EMOJI_VOCAB', 'EMOJI_TASK'}


def _string_macro(config: str, name: str) -> str | None:
  """A macro bound to a quoted string, unquoted; None for another value or none."""
  value = _macro(config, name)
  m = re.fullmatch(r"""(['"])([^'"]*)\1""", value or '')
  return m.group(2) if m else None


def absolute_path_lines(config: str) -> list[str]:
  """The base config's macros that are paths relative to this folder (as its training command
  was given them), bound again as absolute paths: the file then trains from any folder."""
  lines = []
  for m in _STRING_MACRO.finditer(config):
    name, value = m.group(1), m.group(3)
    if name in _OWN_MACROS or not value or os.path.isabs(value) or '://' in value:
      continue
    if os.path.exists(value):
      lines.append(f'{name} = {json.dumps(os.path.abspath(value))}')
  if lines:
    lines = [
      "# The base run's paths, given relative to the folder it trained in: made absolute here.",
      *lines,
      '',
    ]
  return lines


def emoji_data_languages(config: str) -> tuple[str | None, set[str] | None]:
  """(the base run's EMOJI_DATA, the languages its manifest.json lists); None for what cannot
  be read here."""
  data = _string_macro(config, 'EMOJI_DATA')
  if not data:
    return None, None
  try:
    with open(os.path.join(data, 'manifest.json'), encoding='utf-8') as f:
      return data, set(json.load(f)['languages'])
  except (OSError, ValueError, KeyError, TypeError):
    return data, None


def check_emoji_language(config: str, lang: str) -> tuple[str | None, set[str] | None]:
  """emoji_data_languages(config); GinFileError when that data has no `lang`: the emoji tasks
  cannot tune on it (register_emoji_cldr_tasks refuses at set-up, after the work before it)."""
  data, langs = emoji_data_languages(config)
  if langs is not None and lang not in langs:
    raise GinFileError(
      f"{lang} is not in the base run's emoji/CLDR data ({data}: {len(langs)} languages), so "
      f'the emoji set cannot tune on it; give --wit-train and --wit-images to tune on WIT rows '
      f'of {lang}'
    )
  return data, langs


def wit_task_name(lang: str) -> str:
  """The name tasks.wit.register_wit gives the language's task."""
  return f'wit_{WIT_KIND}.{lang.replace("-", "_")}'


def _emoji_lines(config: str, lang: str, repeat: int, warnings: list) -> list[str]:
  if 'emoji_tasks.register_emoji_cldr_tasks' not in config:
    raise GinFileError(
      'the base run did not tune on the emoji/CLDR set (no emoji_tasks.register_emoji_cldr_tasks '
      'in its config.gin): give --wit-train to tune on WIT rows instead'
    )
  m = re.search(r'^emoji_tasks\.register_emoji_cldr_tasks\.exclude_languages = (.*)$', config, re.M)
  value = m.group(1).strip() if m else '[]'
  if value.startswith('%'):  # e.g. demo/leave_out.gin's %LEFT_OUT_LANGUAGES
    value = _macro(config, value[1:]) or '[]'
  excluded = json.loads(value.replace("'", '"'))
  data, langs = check_emoji_language(config, lang)
  if data and langs is None:
    warnings.append(
      f"the base run's EMOJI_DATA {data!r} has no readable manifest.json from {os.getcwd()}: "
      'run this from the folder the base run trained in, or bind EMOJI_DATA to its absolute path'
    )
  if lang not in excluded and _macro(config, 'EMOJI_TASK') == "'emoji_cldr.all'":
    warnings.append(
      f'the base run already tuned on {lang} (not in its exclude_languages); the continued run '
      'tunes on it again'
    )
  rest = [x for x in excluded if x != lang]
  return [
    '# Tuning data: every emoji/CLDR language the base run tuned on (they keep their share, so',
    f'# they are not forgotten), plus the new one, its pairs repeated {repeat} times.',
    f'emoji_tasks.register_emoji_cldr_tasks.exclude_languages = {json.dumps(rest)}',
    f'emoji_tasks.register_emoji_cldr_tasks.language_repeats = {{{json.dumps(lang)}: {repeat}}}',
    "EMOJI_TASK = 'emoji_cldr.all'",
    "EMOJI_VOCAB = %VOCABULARY_FILE  # the emoji tasks' tokenizer",
  ]


def _wit_lines(config: str, lang: str, wit: dict) -> list[str]:
  if _macro(config, 'IMAGE_TOWER') in (None, 'None'):
    raise GinFileError(
      'the base run tuned on pre-computed image embeddings (IMAGE_TOWER = None): WIT rows need a '
      'live image tower or embeddings precomputed with `mlit precompute`; continue such a run on '
      'its own data source (emoji/CLDR)'
    )
  if not wit.get('train') or not wit.get('images'):
    raise GinFileError('WIT tuning needs --wit-train (TSV pattern) and --wit-images (directory)')
  lines = [
    'from tasks import registration',
    'from tasks import wit',
    '',
    f'# Tuning data: WIT {WIT_KIND} descriptions in {lang}.',
    f'WIT_TRAIN_TSV_PATTERN = {json.dumps(wit["train"])}',
    f'WIT_IMAGES = {json.dumps(wit["images"])}',
    'registration.register_tasks.registrations = [@wit.register_wit]',
    'wit.register_wit.tsv_pattern = %WIT_TRAIN_TSV_PATTERN',
    'wit.register_wit.image_dir = %WIT_IMAGES',
    f"wit.register_wit.kinds = ['{WIT_KIND}']",
    f'wit.register_wit.languages = [{json.dumps(lang)}]',
    'MIXTURE_OR_TASK_NAME = @registration.registered_task()',
    f'registration.registered_task.name = {json.dumps(wit_task_name(lang))}',
  ]
  return lines


def write(
  *,
  lang: str,
  language_name: str,
  base_config: str,
  base_run: str,
  extension: dict,
  model_dir: str,
  steps: int,
  warmup: int,
  repeat: int = 1,
  wit: dict | None = None,
) -> tuple[str, list[str]]:
  """(gin text, warnings) (module docstring). extension: extend-vocab's extension.json."""
  if not base_config.strip():
    raise GinFileError(f'{base_run}: empty config.gin')
  if warmup >= steps:
    raise GinFileError(f'--warmup {warmup} must be < --steps {steps}')
  stamp = datetime.date.today().isoformat()
  lines = [
    f'# {language_name} ({lang}) added to {base_run}: written by `mlit add-language gin` on '
    f'{stamp}.',
    '#   mlit train --gin_file=THIS_FILE   (MODEL_DIR below; override with --gin.MODEL_DIR)',
    'from __gin__ import dynamic_registration',
    '',
    f'include {json.dumps(base_run + "/config.gin")}',
    '',
    'import seqio',
    'from mlit.models import text_tower',
    'from mlit.training import train',
  ]
  if not wit:
    lines.append('from tasks.emoji_cldr import tasks as emoji_tasks')
  lines += [
    '',
    f'MODEL_DIR = {json.dumps(model_dir)}',
    "# The vocabulary with the language's pieces appended (old ids unchanged) and the base",
    "# run's checkpoint with its token embedding grown to match (old rows bit for bit).",
    f'VOCABULARY_FILE = {json.dumps(extension["vocabulary"])}',
    'seqio.SentencePieceVocabulary.sentencepiece_model_file = %VOCABULARY_FILE',
    f'text_tower.T5Config.vocab_size = {int(extension["embedding_rows"][1])}',
    f'CONTINUE_FROM = {json.dumps(extension["checkpoint_root"])}',
    'INITIAL_CHECKPOINT_PATH = None  # the text tower comes from CONTINUE_FROM',
    f'TRAIN_STEPS = {int(steps)}',
    f'WARMUP_STEPS = {int(warmup)}',
    f'train.train.checkpoint_period = {int(steps)}',
    '',
    *absolute_path_lines(base_config),
  ]
  warnings = []
  if wit:
    lines += _wit_lines(base_config, lang, wit)
  else:
    lines += _emoji_lines(base_config, lang, repeat, warnings)
  return '\n'.join(lines) + '\n', warnings
