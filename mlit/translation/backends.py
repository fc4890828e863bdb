"""Machine-translation backends used for backtranslation and prompt translation.

Every backend maps a batch of lines from one language to another and returns exactly one line per
input line. Languages are ISO 639-1/639-3 codes (e.g. 'en', 'es', 'cat'); each backend maps them to
its own naming.
"""

import abc
import shlex
import shutil
import subprocess
from typing import Sequence

from tasks.user_error import UserError

# apertium names languages with ISO 639-3 codes; accept the 2-letter codes used elsewhere in mlit.
_APERTIUM_CODES = {
  'en': 'eng',
  'es': 'spa',
  'ca': 'cat',
  'fr': 'fra',
  'pt': 'por',
  'it': 'ita',
  'de': 'deu',
  'eo': 'epo',
  'gl': 'glg',
  'oc': 'oci',
  'ro': 'ron',
  'nl': 'nld',
  'eu': 'eus',
  'sv': 'swe',
  'da': 'dan',
  'nb': 'nob',
  'nn': 'nno',
  'is': 'isl',
  'br': 'bre',
  'cy': 'cym',
  'ga': 'gle',
}


class TranslationError(RuntimeError):
  """A translator failed on a batch; the message names the backend and the language pair."""


class TranslationBackend(abc.ABC):
  """Translates batches of single-line texts."""

  name: str = 'backend'

  @abc.abstractmethod
  def translate(self, lines: Sequence[str], source: str, target: str) -> list[str]:
    """Returns one translation per input line, in order."""

  def supports(self, source: str, target: str) -> bool:  # pylint: disable=unused-argument
    return True


def _single_line(text: str) -> str:
  # Line-based translators would split a multi-line text into several outputs.
  return ' '.join(text.split())


class _LinePipeBackend(TranslationBackend):
  """Runs a program that reads one text per line on stdin and writes one per line on stdout."""

  timeout_s: float = 600.0
  # What separates texts on the pipe; a translator that treats newlines as spaces needs more.
  separator: str = '\n'

  def _command(self, source: str, target: str) -> list[str]:
    raise NotImplementedError

  def translate(self, lines, source, target):
    texts = [_single_line(line) for line in lines]
    # Empty texts would vanish between separators; they translate to empty texts.
    todo = [i for i, t in enumerate(texts) if t]
    if not todo:
      return ['' for _ in texts]
    translated = self._run([texts[i] for i in todo], source, target)
    out = ['' for _ in texts]
    for i, t in zip(todo, translated):
      out[i] = t
    return out

  def _run(self, lines, source, target):
    command = self._command(source, target)
    payload = self.separator.join(lines) + '\n'
    try:
      proc = subprocess.run(
        command, input=payload, capture_output=True, text=True, timeout=self.timeout_s, check=False
      )
    except (OSError, subprocess.TimeoutExpired) as e:
      raise TranslationError(f'{self.name} {source}->{target}: {e}') from e
    if proc.returncode != 0:
      raise TranslationError(
        f'{self.name} {source}->{target} exited {proc.returncode}: {proc.stderr.strip()[:500]}'
      )
    out = proc.stdout.rstrip('\n').split(self.separator)
    if len(out) != len(lines):
      raise TranslationError(
        f'{self.name} {source}->{target}: {len(lines)} lines in, {len(out)} lines out'
      )
    return [o.strip() for o in out]


class ApertiumBackend(_LinePipeBackend):
  """Offline rule-based translation with the Debian `apertium` packages (e.g. apertium-eng-spa).

  Unknown words are marked by apertium with '*' (and '#', '@' for generation errors); the marks are
  removed so that scores compare words, not markup.
  """

  name = 'apertium'
  # apertium reads a single newline as a blank and joins short lines into one sentence
  # (['cat', 'dog'] -> ['Perro', 'de gato']); a blank line is a paragraph break it keeps.
  separator = '\n\n'

  def __init__(self, executable: str = 'apertium', mark_unknown: bool = False):
    self.executable = executable
    self.mark_unknown = mark_unknown
    self._modes = None  # installed_modes()

  @staticmethod
  def code(lang: str) -> str:
    return _APERTIUM_CODES.get(lang, lang)

  def _command(self, source, target):
    if shutil.which(self.executable) is None:
      raise TranslationError(
        f'apertium is not installed: `apt-get install apertium apertium-{self.code(source)}-'
        f'{self.code(target)}` (or the pair package that covers {source}->{target})'
      )
    flags = [] if self.mark_unknown else ['-u']
    return [self.executable, *flags, f'{self.code(source)}-{self.code(target)}']

  def supports(self, source, target):
    return f'{self.code(source)}-{self.code(target)}' in self.installed_modes()

  def installed_modes(self) -> set[str]:
    """The modes `apertium -l` lists (e.g. 'eng-spa'); none when apertium is not installed. Read
    once per backend: a check of N pivots asked for them 2N + 1 times."""
    if self._modes is None:
      self._modes = set()
      if shutil.which(self.executable) is not None:
        proc = subprocess.run([self.executable, '-l'], capture_output=True, text=True, check=False)
        self._modes = set(proc.stdout.split())
    return self._modes

  def round_trips(self, source: str) -> list[str]:
    """The pivots the installed modes translate `source` to and back, as --pivots spells them."""
    modes, own = self.installed_modes(), self.code(source)
    by_code = {code: lang for lang, code in _APERTIUM_CODES.items()}
    pivots = {m.split('-')[1] for m in modes if m.count('-') == 1 and m.startswith(own + '-')}
    return sorted(by_code.get(p, p) for p in pivots if f'{p}-{own}' in modes)


class CommandBackend(_LinePipeBackend):
  """Any program that reads lines and writes lines: `template` may use {source} and {target}.

  Example: CommandBackend("my_translator --from {source} --to {target}").
  """

  name = 'command'

  def __init__(self, template: str, timeout_s: float = 600.0):
    self.template = template
    self.timeout_s = timeout_s

  def _command(self, source, target):
    return shlex.split(self.template.format(source=source, target=target))


class TransformersBackend(TranslationBackend):
  """A local MarianMT or NLLB model directory loaded with `transformers` (an optional dependency).

  For NLLB, language codes are FLORES-200 codes (e.g. 'spa_Latn'); pass them as source/target.
  For MarianMT (one direction per model), give a dict {(source, target): model_dir}.
  """

  name = 'transformers'

  def __init__(self, model_dirs, max_new_tokens: int = 128, batch_size: int = 16):
    self.model_dirs = model_dirs
    self.max_new_tokens = max_new_tokens
    self.batch_size = batch_size
    self._loaded = {}

  def _load(self, source, target):
    key = (source, target) if isinstance(self.model_dirs, dict) else None
    if key not in self._loaded:
      try:
        import transformers  # pylint: disable=import-outside-toplevel
      except ImportError as e:
        raise TranslationError(
          'the transformers backend needs `pip install transformers torch`'
        ) from e
      path = self.model_dirs[key] if key else self.model_dirs
      tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
      model = transformers.AutoModelForSeq2SeqLM.from_pretrained(path, local_files_only=True)
      self._loaded[key] = (tokenizer, model.eval())
    return self._loaded[key]

  def translate(self, lines, source, target):
    tokenizer, model = self._load(source, target)
    extra = {}
    if hasattr(tokenizer, 'lang_code_to_id') or 'nllb' in type(model).__name__.lower():
      tokenizer.src_lang = source
      extra['forced_bos_token_id'] = tokenizer.convert_tokens_to_ids(target)
    out = []
    for i in range(0, len(lines), self.batch_size):
      batch = tokenizer(
        [_single_line(x) for x in lines[i : i + self.batch_size]],
        return_tensors='pt',
        padding=True,
        truncation=True,
      )
      generated = model.generate(**batch, max_new_tokens=self.max_new_tokens, **extra)
      out.extend(tokenizer.batch_decode(generated, skip_special_tokens=True))
    return out


def check_pairs(backend: TranslationBackend, source: str, pivots: Sequence[str]) -> None:
  """Raises a UserError naming every missing direction of source <-> pivot, before any work."""
  missing, bad_pivots = [], []
  for p in pivots:
    lost = [f'{s}->{t}' for s, t in ((source, p), (p, source)) if not backend.supports(s, t)]
    missing += lost
    bad_pivots += [p] if lost else []
  if not missing:
    return
  hint = ''
  if isinstance(backend, ApertiumBackend):
    pairs = sorted({f'apertium-{backend.code(source)}-{backend.code(p)}' for p in bad_pivots})
    # A typo ('ess' for 'es') is a real ISO 639-3 code too: what is installed shows it.
    installed = backend.round_trips(source)
    have = f'installed both ways for {source}: {", ".join(installed)}'
    if not installed:
      have = f'no pair installed translates {source} both ways'
    hint = f' ({have}; install e.g. {", ".join(pairs)})'
  raise UserError(f'--pivots: backend {backend.name} cannot translate {", ".join(missing)}{hint}')


def make_backend(spec: str) -> TranslationBackend:
  """Builds a backend from a short spec: 'apertium', 'command:<template>', 'transformers:<dir>'."""
  kind, _, arg = spec.partition(':')
  if kind == 'apertium':
    return ApertiumBackend(**({'executable': arg} if arg else {}))
  if kind == 'command':
    if not arg:
      raise UserError(
        "--backend: 'command:' needs a program template, e.g. 'command:prog {source} {target}'"
      )
    return CommandBackend(arg)
  if kind == 'transformers':
    if not arg:
      raise UserError("--backend: 'transformers:' needs a local model directory")
    return TransformersBackend(arg)
  raise UserError(
    f'--backend: unknown translation backend {spec!r}: use apertium, command:<template> or '
    'transformers:<model dir>'
  )
