"""The gin file `mlit add-language gin` writes: continue an mlit run with a new language added.

It includes the base run's resolved config (MODEL_DIR/config.gin), so model, image side, loss and
evaluation macros are the base run's, and overrides only what adding the language changes: the
extended vocabulary and its size, CONTINUE_FROM (train.init_from_run) = the grown checkpoint, the
tuning data, the steps and a new MODEL_DIR. Two data sources:
- emoji:  the emoji/CLDR set the base run tuned on (`emoji_cldr.all`), the new language no longer
          excluded and repeated `repeat` times so that it gets a fair share of the steps;
- wit:    WIT rows (tasks.wit.register_wit from the given TSV pattern and image directory): every
          language of the rows at its row count, the new one's counted `repeat` times
          (`wit_reference.languages`); needs a base run with a live image tower.
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
    wit = f'give --wit-train and --wit-images to tune on WIT rows of {lang}'
    if _macro(config, 'IMAGE_TOWER') in (None, 'None'):
      wit = (
        f'WIT rows of {lang} (--wit-train) need a base run with a live locked image tower, and '
        'this one tuned on pre-computed embeddings'
      )
    raise GinFileError(
      f"{lang} is not in the base run's emoji/CLDR data ({data}: {len(langs)} languages), so "
      f'the emoji set cannot tune on it; {wit}'
    )
  return data, langs


def check_emoji_source(config: str, lang: str) -> tuple[str | None, set[str] | None]:
  """check_emoji_language, after checking that the base run tuned on the emoji/CLDR set."""
  if 'emoji_tasks.register_emoji_cldr_tasks' not in config:
    raise GinFileError(
      'the base run did not tune on the emoji/CLDR set (no emoji_tasks.register_emoji_cldr_tasks '
      'in its config.gin): give --wit-train to tune on WIT rows instead'
    )
  return check_emoji_language(config, lang)


def _emoji_lines(config: str, lang: str, repeat: int, warnings: list) -> list[str]:
  m = re.search(r'^emoji_tasks\.register_emoji_cldr_tasks\.exclude_languages = (.*)$', config, re.M)
  value = m.group(1).strip() if m else '[]'
  if value.startswith('%'):  # e.g. demo/leave_out.gin's %LEFT_OUT_LANGUAGES
    value = _macro(config, value[1:]) or '[]'
  excluded = json.loads(value.replace("'", '"'))
  data, langs = check_emoji_source(config, lang)
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


def _local_abspath(path: str) -> str:
  return path if '://' in path else os.path.abspath(path)


def embeddings_tower_lines(config: str, base_run: str) -> list[str]:
  """Gin lines that run, live on WIT's images, the locked tower whose pre-computed embeddings the
  base run tuned on (IMAGE_TOWER = None; its mlit_model.json records the tower: kind, config,
  size, weights checked by sha256); [] for a base run with a live tower. GinFileError when the
  tower is not recorded or its weights are not found."""
  if _macro(config, 'IMAGE_TOWER') not in (None, 'None'):
    return []
  from mlit.inference import run_spec  # pylint: disable=g-import-not-at-top
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  try:
    model_dir = run_spec.find_model_dir(base_run)
    spec = run_spec.read(model_dir)
    tower = spec.get('image') or {}
    if tower.get('checkpoint') and tower.get('kind'):
      path = run_spec.image_checkpoint_path(model_dir, spec)
      size = tower.get('size')
      return [
        '# The base run tuned on pre-computed embeddings; WIT rows are images, so the locked tower',
        '# that made those embeddings (its mlit_model.json) runs live, at the size it ran at.',
        f'IMAGE_TOWER_KIND = {json.dumps(tower["kind"])}',
        f'IMAGE_TOWER = {tower.get("config") or {}!r}',
        f'IMAGE_CHECKPOINT_PATH = {json.dumps(os.path.abspath(path))}',
        "train.train.image_init = 'pretrained'",
        'train.train.inference_image = None  # the run has the tower itself',
        *(['image_preprocessors.decode_image.size = %d' % int(size)] if size else []),
      ]
    why = f'; its {run_spec.FILENAME} records no locked tower that made them'
  except UserError as e:
    why = f' ({e})'
  raise GinFileError(
    'the base run tuned on pre-computed image embeddings (IMAGE_TOWER = None) and WIT tuning '
    f'needs the locked tower that made them, to run it on the images{why}; a run on '
    'pre-computed embeddings whose tower is not known is continued on its own emoji/CLDR data'
  )


def wit_plan(config: str, lang: str, wit: dict, repeat: int, base_languages) -> tuple[dict, list]:
  """({language: mixture rate}, warnings) of WIT tuning: every language of the --wit-train rows
  at its row count (the base run's languages keep their share, so they are not forgotten), the
  new one's rows counted `repeat` times. GinFileError for rows it cannot tune on; `mlit
  add-language run` calls it, and embeddings_tower_lines, before its first step."""
  from tasks import tf_host  # pylint: disable=g-import-not-at-top

  # `mlit add-language` starts without TensorFlow; WIT's reader loads it, with its loading
  # chatter (oneDNN, CUDA stub lines) kept off the terminal as the commands that need it do.
  with tf_host.stderr_silenced():
    tf_host.keep_tensorflow_on_host()
  from tasks import wit as wit_tasks  # pylint: disable=g-import-not-at-top

  if not wit.get('train') or not wit.get('images'):
    raise GinFileError('WIT tuning needs --wit-train (TSV pattern) and --wit-images (directory)')
  if '://' not in wit['images'] and not os.path.isdir(wit['images']):
    raise GinFileError(f'--wit-images {wit["images"]}: no such directory')
  try:
    counts = wit_tasks.count_languages(_local_abspath(wit['train']))
  except FileNotFoundError as e:
    raise GinFileError(f'--wit-train {wit["train"]}: matches no file') from e
  except ValueError as e:  # a header that is not WIT's: the file and line
    raise GinFileError(f'--wit-train: {e}') from e
  found = ', '.join(f'{k} {n:,}' for k, n in counts.most_common(8)) or 'none'
  if not counts.get(lang):
    raise GinFileError(
      f'--wit-train {wit["train"]}: no row of {lang} with a reference description (the '
      f'languages there: {found})'
    )
  rates = {k: float(n) for k, n in sorted(counts.items()) if k not in (lang, 'und')}
  warnings = []
  missing = sorted(set(base_languages or ()) - set(rates) - {lang})
  if missing:
    shown = ', '.join(missing[:8]) + (f' and {len(missing) - 8} more' if len(missing) > 8 else '')
    warnings.append(
      f'the base run tuned on {shown}, which --wit-train has no rows of (it has: {found}): the '
      'continued run does not see them and may forget them; add their rows to --wit-train'
    )
  elif not rates:
    warnings.append(
      f'--wit-train has rows of {lang} only: the continued run tunes on {lang} alone and may '
      "forget the base run's languages; add their rows to --wit-train"
    )
  rates[lang] = float(counts[lang] * repeat)
  return rates, warnings


def _wit_lines(
  config: str, base_run: str, lang: str, wit: dict, repeat: int, base_languages, warnings
) -> list:
  tower = embeddings_tower_lines(config, base_run)
  rates, found = wit_plan(config, lang, wit, repeat, base_languages)
  warnings += found
  languages = sorted(rates)
  return [
    'from tasks import registration',
    'from tasks import wit',
    *(['from tasks import image_preprocessors'] if tower else []),
    '',
    *([*tower, ''] if tower else []),
    f'# Tuning data: WIT {WIT_KIND} descriptions of every language of the rows at their row',
    f'# counts (the old languages keep their share), {lang} counted {repeat} times.',
    f'WIT_TRAIN_TSV_PATTERN = {json.dumps(_local_abspath(wit["train"]))}',
    f'WIT_IMAGES = {json.dumps(_local_abspath(wit["images"]))}',
    'registration.register_tasks.registrations = [@wit.register_wit]',
    'wit.register_wit.tsv_pattern = %WIT_TRAIN_TSV_PATTERN',
    'wit.register_wit.image_dir = %WIT_IMAGES',
    f"wit.register_wit.kinds = ['{WIT_KIND}']",
    f'wit.register_wit.languages = {json.dumps(languages)}',
    f'wit.register_wit.language_rates = {json.dumps({k: rates[k] for k in languages})}',
    'MIXTURE_OR_TASK_NAME = @registration.registered_task()',
    f"registration.registered_task.name = 'wit_{WIT_KIND}.languages'",
  ]


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
  base_languages=(),
) -> tuple[str, list[str]]:
  """(gin text, warnings) (module docstring). extension: extend-vocab's extension.json;
  base_languages: the languages the base run tuned on (its language_stats.json)."""
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
    lines += _wit_lines(base_config, base_run, lang, wit, repeat, base_languages, warnings)
  else:
    lines += _emoji_lines(base_config, lang, repeat, warnings)
  return '\n'.join(lines) + '\n', warnings
