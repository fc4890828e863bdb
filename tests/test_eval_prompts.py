"""Prompt set files (validation, errors naming file and key) and the clip-benchmark loaders."""

import json

import pytest

from eval_multilingual import clip_benchmark_prompts as cbp
from eval_multilingual import evaluations
from eval_multilingual import prompts as prompts_lib


def _write(tmp_path, obj, name='p.json'):
  path = tmp_path / name
  path.write_text(
    obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False), encoding='utf-8'
  )
  return str(path)


GOOD = {
  'name': 'toy',
  'num_classes': 3,
  'languages': {
    'de': {
      'classes': ['Hund', ['Katze', 'Kätzchen'], 'Vogel'],
      'templates': ['ein Foto von {}.', '{}'],
    },
    'fr': {
      'classes': ['chien', 'oiseau'],
      'templates': ['une photo de {}.'],
      'class_indices': [0, 2],
    },
  },
}


def test_load_good_file(tmp_path):
  sets = prompts_lib.load_prompt_file(_write(tmp_path, GOOD))
  de, fr = sets['de'], sets['fr']
  assert de.classes[1] == ('Katze', 'Kätzchen') and de.labels == (0, 1, 2)
  assert de.prompts(1) == [['ein Foto von Katze.', 'Katze'], ['ein Foto von Kätzchen.', 'Kätzchen']]
  assert fr.labels == (0, 2) and not de.warnings
  assert de.fingerprint() != fr.fingerprint()


@pytest.mark.parametrize(
  'change, message',
  [
    (
      lambda d: d['languages']['de']['templates'].append('kein Platzhalter'),
      r"languages\.de\.templates\[2\]: needs exactly one '\{\}'",
    ),
    (
      lambda d: d['languages']['de']['templates'].append('{} und {}'),
      r'languages\.de\.templates\[2\]: needs exactly one',
    ),
    (
      lambda d: d['languages']['de']['classes'].pop(),
      r'languages\.de\.classes: has 2 classes, expected num_classes=3',
    ),
    (
      lambda d: d['languages']['fr'].update(class_indices=[0, 3]),
      r'languages\.fr\.class_indices\[1\]: 3 is not a label',
    ),
    (
      lambda d: d['languages']['fr'].update(class_indices=[0]),
      r'languages\.fr\.class_indices: must be a list as long as classes',
    ),
    (
      lambda d: d['languages']['de']['classes'].__setitem__(0, ['Hund', '']),
      r'languages\.de\.classes\[0\]\[1\]: class name must be a non-empty string',
    ),
    (lambda d: d['languages']['de'].pop('templates'), r"languages\.de: missing key 'templates'"),
    (lambda d: d.pop('num_classes'), r"missing key 'num_classes'"),
  ],
)
def test_errors_name_file_and_key(tmp_path, change, message):
  data = json.loads(json.dumps(GOOD))
  change(data)
  path = _write(tmp_path, data)
  with pytest.raises(prompts_lib.PromptError, match=message) as e:
    prompts_lib.load_prompt_file(path)
  assert path in str(e.value)


def test_invalid_json_names_line(tmp_path):
  path = _write(tmp_path, '{"name": "x",\n "num_classes": 2,\n "languages": {,}}')
  with pytest.raises(prompts_lib.PromptError, match=r'p\.json: invalid JSON at line 3'):
    prompts_lib.load_prompt_file(path)


def test_duplicates_are_reported(tmp_path):
  text = (
    json.dumps(GOOD)[:-2] + ', "de": {"classes": ["a", "a", "b"], "templates": ["{}!", "{}!"]}}}'
  )
  sets = prompts_lib.load_prompt_file(_write(tmp_path, text))
  w = '\n'.join(sets['de'].warnings)
  assert "'{}!' appears 2 times" in w
  assert "name 'a' used by classes [0, 1]" in w
  assert 'languages.de given more than once' in w
  # The evaluation logs a language's notes as one line (Babel-ImageNet: ~400 lines before).
  line = evaluations.prompt_notes(sets['de'].warnings)
  assert '\n' not in line and line.startswith(sets['de'].warnings[0])
  assert line.endswith(f'(and {len(sets["de"].warnings) - 1} more notes: meta n_prompt_warnings)')
  assert evaluations.prompt_notes(['only one']) == 'only one'


def test_clip_benchmark_imagenet_languages():
  assert cbp.languages(cbp.IMAGENET) == ['ar', 'en', 'it', 'ja', 'zh']
  for lang in cbp.languages(cbp.IMAGENET):
    ps = cbp.load(cbp.IMAGENET, lang)
    assert len(ps.classes) == 1000 and ps.class_indices is None
    assert all(t.count('{}') == 1 for t in ps.templates)
  en = cbp.imagenet_prompt_set('en')
  assert en.classes[1] == ('goldfish',) and len(en.templates) == 80
  assert '{c}' not in ''.join(en.templates)
  # A language only Babel-ImageNet has: the error says where it is; one neither has: no hint.
  with pytest.raises(KeyError, match="not 'de'; clip_benchmark/babel_imagenet has 'de'"):
    cbp.imagenet_prompt_set('de')
  with pytest.raises(KeyError, match="not 'xx'.$"):
    cbp.imagenet_prompt_set('xx')


def test_clip_benchmark_missing_is_a_user_error(monkeypatch, tmp_path):
  # No package, or one without the data files: mlit's one-line error, not an ImportError trace.
  from tasks.user_error import UserError

  def no_package(name):
    raise ModuleNotFoundError(name)

  cbp._read_json.cache_clear()
  try:
    monkeypatch.setattr(cbp.importlib.resources, 'files', no_package)
    with pytest.raises(UserError, match='clip-benchmark package is not installed'):
      cbp.imagenet_prompt_set('en')
    monkeypatch.setattr(cbp.importlib.resources, 'files', lambda name: tmp_path)
    with pytest.raises(UserError, match='not found in the installed clip-benchmark'):
      cbp.babel_imagenet_languages()
  finally:
    cbp._read_json.cache_clear()


def test_babel_imagenet_93_languages_load():
  langs = cbp.babel_imagenet_languages()
  assert len(langs) == 93 and 'de' in langs and 'zh' in langs
  no_nllb = []
  for lang in langs:
    ps = cbp.babel_imagenet_prompt_set(lang)
    assert 0 < len(ps.classes) == len(ps.class_indices) <= 1000
    assert all(0 <= k < 1000 for k in ps.class_indices)
    if any('no NLLB templates' in w for w in ps.warnings):
      no_nllb.append(lang)
  assert no_nllb == ['br', 'fy', 'la']
  de = cbp.babel_imagenet_prompt_set('de')
  assert len(de.classes) < 1000 and len(de.templates) == 80
  with pytest.raises(KeyError, match='no Babel-ImageNet labels'):
    cbp.babel_imagenet_prompt_set('xx')
