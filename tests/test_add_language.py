"""`mlit add-language`: coverage, prompts, vocabulary extension with a real TextTower, gin."""

import io
import json
import random
import shutil
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sentencepiece as spm
import task_files  # tests/task_files.py
from flax import traverse_util
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

from eval_multilingual import coverage
from eval_multilingual import prompts as prompts_lib
from mlit.checkpoints import t5x as t5x_checkpoint
from mlit.commands import add_language
from mlit.language import vocab_extension
from mlit.models import text_tower

EN_WORDS = (
  'the cat sat on a mat with hat and dog ran far away to see big red sun in sky '
  'photo of small house tree water blue green'
).split()
EL_WORDS = (
  'ο γάτος κάθεται στο χαλί με το καπέλο και ο σκύλος έτρεξε μακριά για να δει '
  'μεγάλο κόκκινο ήλιο στον ουρανό φωτογραφία σπίτι δέντρο νερό'
).split()


def _lines(words, n, seed):
  rng = random.Random(seed)
  return [' '.join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def _cfg(vocab_size):
  return text_tower.T5Config(
    vocab_size=vocab_size, emb_dim=16, num_heads=2, num_encoder_layers=2, head_dim=8, mlp_dim=32
  )


def _flat(params):
  return {
    '/'.join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(nn.unbox(params)).items()
  }


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  d = tmp_path_factory.mktemp('addlang')
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(_lines(EN_WORDS, 400, 0)),
    model_writer=model,
    vocab_size=320,
    byte_fallback=True,
    character_coverage=1.0,
    model_type='unigram',
    pad_id=0,
    eos_id=1,
    unk_id=2,
    bos_id=-1,
    hard_vocab_limit=False,
    minloglevel=2,
  )
  (d / 'old.model').write_bytes(model.getvalue())
  (d / 'en.txt').write_text('\n'.join(_lines(EN_WORDS, 50, 1)) + '\n', encoding='utf-8')
  (d / 'el.txt').write_text('\n'.join(_lines(EL_WORDS, 300, 2)) + '\n', encoding='utf-8')
  old_sp = spm.SentencePieceProcessor(model_file=str(d / 'old.model'))
  # One row per piece (no T5X padding), so the extension must add rows, padded to 128.
  rows = old_sp.get_piece_size()
  tower = text_tower.TextTower(_cfg(rows))
  params = tower.init(jax.random.PRNGKey(0), jnp.ones((1, 8), jnp.int32))['params']
  ckpt = vocab_extension.save_t5x_orbax(_flat(params), str(d / 'old_ckpt'))
  out = d / 'ext'
  rc = add_language.main(
    [
      'extend-vocab',
      '--vocab',
      str(d / 'old.model'),
      '--checkpoint',
      ckpt,
      '--lang',
      'el',
      '--texts',
      str(d / 'el.txt'),
      '--num-pieces',
      '60',
      '--old-texts',
      str(d / 'en.txt'),
      '--out',
      str(out),
    ]
  )
  assert rc == 0
  return d, out, params, rows


def test_existing_ids_unchanged_and_pieces_appended(setup):
  d, out, _, _ = setup
  old, new = sp_pb2.ModelProto(), sp_pb2.ModelProto()
  old.ParseFromString((d / 'old.model').read_bytes())
  new.ParseFromString((out / 'sentencepiece.model').read_bytes())
  summary = json.loads((out / 'extension.json').read_text(encoding='utf-8'))
  # A small corpus offers fewer than the 60 pieces asked for; all of them are taken.
  assert 30 < summary['new_pieces'] <= 60
  assert len(new.pieces) == len(old.pieces) + summary['new_pieces']
  for a, b in zip(old.pieces, new.pieces):
    assert (a.piece, a.score, a.type) == (b.piece, b.score, b.type)
  added = new.pieces[len(old.pieces) :]
  assert all(p.type == sp_pb2.ModelProto.SentencePiece.NORMAL for p in added)
  assert len({p.piece for p in new.pieces}) == len(new.pieces)
  assert any(any('\u0370' <= ch <= '\u03ff' for ch in p.piece) for p in added)
  old_sp = spm.SentencePieceProcessor(model_file=str(d / 'old.model'))
  new_sp = spm.SentencePieceProcessor(model_file=str(out / 'sentencepiece.model'))
  en = (d / 'en.txt').read_text(encoding='utf-8').split('\n')
  assert old_sp.encode(en) == new_sp.encode(en)  # English tokenised exactly as before


def test_byte_fallback_share_drops(setup):
  d, out, _, _ = setup
  el = [('el', t) for t in (d / 'el.txt').read_text(encoding='utf-8').split('\n') if t]
  before = coverage.coverage(spm.SentencePieceProcessor(model_file=str(d / 'old.model')), el)
  after = coverage.coverage(
    spm.SentencePieceProcessor(model_file=str(out / 'sentencepiece.model')), el
  )
  b, a = before['el'], after['el']
  assert b['byte_fallback_share'] > 0.8  # Greek is all bytes in the English vocabulary
  assert a['byte_fallback_share'] < 0.1 * b['byte_fallback_share']
  assert a['tokens_per_word'] < 0.5 * b['tokens_per_word']
  summary = json.loads((out / 'extension.json').read_text(encoding='utf-8'))
  assert summary['coverage_after']['byte_fallback_share'] == pytest.approx(a['byte_fallback_share'])
  report = summary['pieces']
  # A plain-text file: each line's language is detected (short English lines vary).
  assert sum(report['old_language_texts'].values()) == 50
  assert set(report['old_language_changed'].values()) == {0}
  assert report['requested'] == 60 and report['added'] == summary['new_pieces']


def test_pieces_that_would_change_old_languages_are_left_out(setup):
  d, _, _, _ = setup
  old = vocab_extension.load_proto(str(d / 'old.model'))
  sp_old = spm.SentencePieceProcessor(model_file=str(d / 'old.model'))
  en = [t for t in (d / 'en.txt').read_text(encoding='utf-8').split('\n') if t]
  # A word the small vocabulary splits ('catdog' -> cat + dog): as one top-scored piece it would
  # be used in the English text that has it.
  word = 'catdog'
  en.append('the catdog sat on a mat')
  assert len(sp_old.encode(word)) > 1
  cands = [('▁' + word, 0.0), ('▁αβ', -1.0), ('▁γδ', -1.0)]
  pieces, excluded, first, changed = vocab_extension.select_pieces(old, cands, 2, {'en': en})
  assert pieces == cands[1:] and excluded == ['▁' + word]
  assert first['en'] > 0 and changed == {'en': 0}
  grown = vocab_extension.merge(old, pieces).SerializeToString()
  assert spm.SentencePieceProcessor(model_proto=grown).encode(en) == sp_old.encode(en)
  allowed, excluded, _, changed = vocab_extension.select_pieces(
    old, cands, 2, {'en': en}, allow_old_changes=True
  )
  assert allowed == cands[:2] and not excluded and changed['en'] == first['en']


def test_pieces_not_added_are_split_by_why():
  """1,000 requested, 972 new candidates, 231 left out: the line said all 259 missing pieces were
  the texts running out; 231 are the left-out ones, 28 the texts'."""
  report = {
    'requested': 1000,
    'added': 741,
    'trained_model_pieces': 2000,
    'already_in_vocabulary': 700,
    'special_pieces': 328,
    'new_candidates': 972,
    'excluded_changing_old_languages': 231,
    'excluded_pieces': ['▁ab'],
    'not_added': 259,
    'old_language_changed': {},
    'old_language_changed_if_all_added': {},
    'old_language_texts': {},
  }
  lines = add_language._piece_report_lines('yo', ['a'], report, True)
  assert (
    '  259 not added: 231 for the pieces left out above; 28 because the texts offer no more new '
    'pieces' in '\n'.join(lines)
  )
  report.update(new_candidates=5000, not_added=0, added=1000)
  assert not [
    l for l in add_language._piece_report_lines('yo', ['a'], report, True) if 'not added' in l
  ]


def test_grown_checkpoint_reproduces_old_embeddings_exactly(setup):
  d, out, old_params, rows = setup
  summary = json.loads((out / 'extension.json').read_text(encoding='utf-8'))
  new_rows = summary['embedding_rows'][1]
  assert new_rows % 128 == 0 and new_rows >= summary['new_vocab_size'] > rows
  old_tower = text_tower.TextTower(_cfg(rows))
  new_tower = text_tower.TextTower(_cfg(new_rows))
  init = new_tower.init(jax.random.PRNGKey(1), jnp.ones((1, 8), jnp.int32))['params']
  new_params, report = t5x_checkpoint.load_text_tower_from_t5x(summary['checkpoint'], init)
  assert not report.missing and not report.shape_mismatch
  sp = spm.SentencePieceProcessor(model_file=str(out / 'sentencepiece.model'))
  en = [t for t in (d / 'en.txt').read_text(encoding='utf-8').split('\n') if t][:16]
  tokens = np.zeros((len(en), 16), np.int32)
  for i, ids in enumerate(sp.encode(en)):
    ids = (ids + [1])[:16]
    tokens[i, : len(ids)] = ids
  old_out, old_aux = old_tower.apply({'params': old_params}, jnp.asarray(tokens))
  new_out, new_aux = new_tower.apply({'params': new_params}, jnp.asarray(tokens))
  assert float(jnp.max(jnp.abs(old_out - new_out))) == 0.0
  assert float(jnp.max(jnp.abs(old_aux['hidden'] - new_aux['hidden']))) == 0.0
  # New rows: the mean of the old rows of the piece's old-vocabulary tokenisation.
  old_emb = np.asarray(nn.unbox(old_params)['token_embedder']['embedding'])
  new_emb = np.asarray(nn.unbox(new_params)['token_embedder']['embedding'])
  old_size = summary['old_vocab_size']
  np.testing.assert_array_equal(new_emb[:old_size], old_emb[:old_size])
  old_proto = vocab_extension.load_proto(str(d / 'old.model'))
  piece = sp.id_to_piece(old_size)
  ids = vocab_extension.old_tokenisations(old_proto, [piece])[0]
  old_sp = spm.SentencePieceProcessor(model_file=str(d / 'old.model'))
  assert all(old_sp.is_byte(i) or old_sp.id_to_piece(i) == '▁' for i in ids)  # Greek: bytes
  np.testing.assert_allclose(new_emb[old_size], old_emb[ids].mean(0), rtol=1e-6, atol=1e-7)
  # The grown model runs on the new language.
  el_ids = sp.encode('ο γάτος κάθεται')
  assert max(el_ids) >= old_size
  el_out, _ = new_tower.apply({'params': new_params}, jnp.asarray([el_ids + [1]], jnp.int32))
  assert bool(jnp.all(jnp.isfinite(el_out)))


def test_grow_embedding_checks_sizes():
  with pytest.raises(ValueError, match='do not belong together'):
    vocab_extension.grow_embedding(np.zeros((10, 4), np.float32), 20, [[1]])
  grown = vocab_extension.grow_embedding(
    np.arange(12, dtype=np.float32).reshape(6, 2), 5, [[0, 1], [4]], pad_to=4
  )
  assert grown.shape == (8, 2)
  np.testing.assert_array_equal(grown[5], [1.0, 2.0])  # mean of rows 0 and 1
  np.testing.assert_array_equal(grown[6], [8.0, 9.0])
  np.testing.assert_array_equal(grown[:5], np.arange(10).reshape(5, 2))


def test_coverage_step(setup, capsys):
  d, _, _, _ = setup
  assert (
    add_language.main(
      ['coverage', '--vocab', str(d / 'old.model'), '--lang', 'el', str(d / 'el.txt')]
    )
    == 0
  )
  line = capsys.readouterr().out
  assert line.startswith('Greek (el), 300 texts:') and 'byte-fallback' in line


def _one_class_prompts(tmp_path, *templates) -> str:
  """An English prompt file of one class, 'cat' (templates: 'a {}.' and those given)."""
  english = {
    'name': 'toy',
    'num_classes': 1,
    'languages': {'en': {'classes': ['cat'], 'templates': [*templates, 'a {}.']}},
  }
  (tmp_path / 'en.json').write_text(json.dumps(english), encoding='utf-8')
  return str(tmp_path / 'en.json')


def test_a_backend_that_loses_every_class_slot_is_one_line(tmp_path, capsys):
  """A translator that mangles the slot marker (here: upper-cases everything) left no usable
  template: a ValueError traceback, exit 1."""
  argv = ['prompts', '--lang', 'es', '--english', _one_class_prompts(tmp_path, 'a photo of a {}.')]
  argv += ['--backend', 'command:tr a-z A-Z', '--out', str(tmp_path / 'p.json')]
  assert add_language.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.splitlines() == [err] and 'Traceback' not in err
  assert '--backend command:tr a-z A-Z: es: no template kept its class slot' in err
  assert not (tmp_path / 'p.json').exists()


def _apertium_has(pair):
  if shutil.which('apertium') is None:
    return False
  return pair in subprocess.run(['apertium', '-l'], capture_output=True, text=True).stdout


@pytest.mark.skipif(
  not _apertium_has('eng-spa') or not _apertium_has('spa-eng'),
  reason='needs Debian apertium + apertium-eng-spa',
)
def test_prompts_step_translates_validates_and_scores(tmp_path, capsys):
  english = {
    'name': 'toy',
    'num_classes': 3,
    'languages': {
      'en': {
        'classes': ['cat', 'dog', ['car', 'automobile']],
        'templates': ['a photo of a {}.', 'a drawing of the {}.', 'a big {}.'],
      }
    },
  }
  (tmp_path / 'en.json').write_text(json.dumps(english), encoding='utf-8')
  out = tmp_path / 'prompts.json'
  assert (
    add_language.main(
      [
        'prompts',
        '--lang',
        'es',
        '--english',
        str(tmp_path / 'en.json'),
        '--backend',
        'apertium',
        '--out',
        str(out),
      ]
    )
    == 0
  )
  es = prompts_lib.load_prompt_file(str(out))['es']
  assert es.classes[0] == ('gato',) and es.classes[1] == ('perro',)
  assert all(t.count('{}') == 1 for t in es.templates) and 'una foto de un {}.' in [
    t.lower() for t in es.templates
  ]
  q = json.loads((tmp_path / 'prompt_quality.json').read_text(encoding='utf-8'))['es']
  assert q['backend'] == 'apertium' and 50 < q['chrf'] <= 100
  # Human translations: validated like any prompt set; round trip scored with the backend.
  human = {
    'name': 'toy',
    'num_classes': 3,
    'languages': {'ca': {'classes': ['gat', 'gos', 'cotxe'], 'templates': ["una foto d'un {}."]}},
  }
  (tmp_path / 'ca.json').write_text(json.dumps(human), encoding='utf-8')
  if _apertium_has('cat-eng'):
    assert (
      add_language.main(
        [
          'prompts',
          '--lang',
          'ca',
          '--english',
          str(tmp_path / 'en.json'),
          '--human',
          str(tmp_path / 'ca.json'),
          '--backend',
          'apertium',
          '--out',
          str(out),
        ]
      )
      == 0
    )
    assert set(prompts_lib.load_prompt_file(str(out))) == {'es', 'ca'}
    q = json.loads((tmp_path / 'prompt_quality.json').read_text(encoding='utf-8'))
    assert set(q) == {'es', 'ca'} and q['ca']['chrf'] > 30
  human['languages']['ca']['templates'] = ['sense lloc']
  (tmp_path / 'ca.json').write_text(json.dumps(human), encoding='utf-8')
  with pytest.raises(prompts_lib.PromptError, match=r'ca.json: languages.ca.templates\[0\]'):
    add_language.main(
      [
        'prompts',
        '--lang',
        'ca',
        '--english',
        str(tmp_path / 'en.json'),
        '--human',
        str(tmp_path / 'ca.json'),
        '--out',
        str(out),
      ]
    )


def test_gin_step_needs_an_mlit_run(setup, tmp_path, capsys):
  _, out, _, _ = setup  # a grown T5X checkpoint: it starts an LU run, it does not continue one
  argv = ['gin', '--lang', 'el', '--extension', str(out), '--model-dir', str(tmp_path / 'm')]
  assert add_language.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'grew a T5X checkpoint' in err and 'setups/LU.gin' in err


def test_prompts_step_names_the_apertium_modes_before_work(tmp_path, capsys):
  argv = ['prompts', '--lang', 'oc', '--english', _one_class_prompts(tmp_path), '--backend']
  argv += ['apertium:/bin/true', '--out', str(tmp_path / 'p.json')]  # lists no mode at all
  assert add_language.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.splitlines() == [err] and 'no mode eng-oci or oci-eng for oc' in err
  assert not (tmp_path / 'p.json').exists()


_BASE = """from __gin__ import dynamic_registration
IMAGE_TOWER = {tower}
EMOJI_TASK = 'emoji_cldr.all'
LEFT_OUT_LANGUAGES = ['si', 'am']
emoji_tasks.register_emoji_cldr_tasks.exclude_languages = %LEFT_OUT_LANGUAGES
"""
_EXT = {'vocabulary': 'v.model', 'embedding_rows': [16000, 17024], 'checkpoint_root': 'ext'}


_GIN_ARGS = dict(
  lang='si',
  language_name='Sinhala',
  base_run='base',
  extension=_EXT,
  model_dir='cont',
  steps=100,
  warmup=10,
  repeat=4,
)


def _write_gin(tower='None', wit=None):
  from mlit.language import gin_file  # pylint: disable=g-import-not-at-top

  return gin_file.write(**_GIN_ARGS, base_config=_BASE.format(tower=tower), wit=wit)


def test_gin_file_emoji_adds_the_language_back():
  text, warnings = _write_gin()
  assert not warnings
  assert 'include "base/config.gin"' in text and 'CONTINUE_FROM = "ext"' in text
  assert 'emoji_tasks.register_emoji_cldr_tasks.exclude_languages = ["am"]' in text
  assert 'language_repeats = {"si": 4}' in text and 'text_tower.T5Config.vocab_size = 17024' in text


def test_gin_file_checks_the_base_runs_emoji_data_and_makes_its_paths_absolute(
  tmp_path, monkeypatch
):
  """Own texts of a language the emoji data lacks (haw): the file warned 'the base run already
  tuned on haw' and then trained into register_emoji_cldr_tasks' traceback. The base config's
  relative paths (EMOJI_DATA = 'runs/demo/data') made the file train only from the base run's
  folder; they are now absolute."""
  from mlit.language import gin_file  # pylint: disable=g-import-not-at-top

  monkeypatch.chdir(tmp_path)
  (tmp_path / 'runs' / 'data').mkdir(parents=True)
  manifest = {'languages': {'en': {}, 'si': {}, 'am': {}}}
  (tmp_path / 'runs' / 'data' / 'manifest.json').write_text(json.dumps(manifest))
  base = _BASE.format(tower='None') + "EMOJI_DATA = 'runs/data'\nMODEL_DIR = 'runs/base'\n"
  with pytest.raises(gin_file.GinFileError, match="haw is not in the base run's emoji/CLDR data"):
    gin_file.write(**{**_GIN_ARGS, 'lang': 'haw', 'base_config': base})
  text, warnings = gin_file.write(**{**_GIN_ARGS, 'base_config': base})
  assert not warnings
  assert f'EMOJI_DATA = "{tmp_path / "runs" / "data"}"' in text
  assert 'MODEL_DIR = "cont"' in text and 'runs/base' not in text  # its own, not made absolute
  (tmp_path / 'elsewhere').mkdir()
  monkeypatch.chdir(tmp_path / 'elsewhere')  # the data cannot be found from here: said
  _, warnings = gin_file.write(**{**_GIN_ARGS, 'base_config': base})
  assert warnings == [
    f"the base run's EMOJI_DATA 'runs/data' has no readable manifest.json from {tmp_path}"
    '/elsewhere: run this from the folder the base run trained in, or bind EMOJI_DATA to its '
    'absolute path'
  ]


def test_gin_file_wit_tunes_on_every_language_of_the_rows(tmp_path, monkeypatch):
  """WIT rows of the old languages keep their share; the new one's count `repeat` times; paths
  become absolute; what cannot train is one line; base languages the rows lack are a warning."""
  from mlit.language import gin_file  # pylint: disable=g-import-not-at-top
  from tasks import wit  # pylint: disable=g-import-not-at-top

  monkeypatch.chdir(tmp_path)
  (tmp_path / 'img').mkdir()
  rows = [
    task_files.wit_row(lang, f'http://w/{lang}{i}.jpg', reference=f'{lang} {i}')
    for lang, n in (('en', 5), ('de', 2), ('si', 3))
    for i in range(n)
  ]
  rows.append(task_files.wit_row('fr', 'http://w/fr.jpg'))  # no reference description: no row
  task_files.write_wit(str(tmp_path / 'w.tsv'), rows)
  given = {'train': 'w.tsv', 'images': 'img'}
  with pytest.raises(gin_file.GinFileError, match='pre-computed image embeddings'):
    _write_gin(wit=given)
  text, warnings = _write_gin(tower="{'width': 16}", wit=given)
  assert not warnings
  assert f'WIT_TRAIN_TSV_PATTERN = "{tmp_path / "w.tsv"}"' in text
  assert f'WIT_IMAGES = "{tmp_path / "img"}"' in text
  assert 'wit.register_wit.languages = ["de", "en", "si"]' in text
  assert 'wit.register_wit.language_rates = {"de": 2.0, "en": 5.0, "si": 12.0}' in text
  assert "registration.registered_task.name = 'wit_reference.languages'" in text
  names = wit.register_wit(
    str(tmp_path / 'w.tsv'),
    languages=['de', 'en', 'si'],
    language_rates={'de': 2, 'en': 5, 'si': 12},
  )
  assert 'wit_reference.languages' in names
  with pytest.raises(ValueError, match='a rate > 0 for each of register_wit.languages'):
    wit.register_wit(str(tmp_path / 'w.tsv'), languages=['de', 'en'], language_rates={'de': 1})

  base = _BASE.format(tower="{'width': 16}")
  _, warnings = gin_file.write(
    **_GIN_ARGS, base_config=base, wit=given, base_languages={'en', 'ja'}
  )
  assert warnings == [
    'the base run tuned on ja, which --wit-train has no rows of (it has: en 5, si 3, de 2): the '
    'continued run does not see them and may forget them; add their rows to --wit-train'
  ]
  for wrong, message in (
    ({'train': 'w.tsv', 'images': 'imgs'}, '--wit-images imgs: no such directory'),
    ({'train': 'x.tsv', 'images': 'img'}, '--wit-train x.tsv: matches no file'),
  ):
    with pytest.raises(gin_file.GinFileError, match=message):
      _write_gin(tower="{'width': 16}", wit=wrong)
  only_si = [r for r in rows if r['language'] == 'si']
  task_files.write_wit(str(tmp_path / 'si.tsv'), only_si)
  _, warnings = _write_gin(tower="{'width': 16}", wit={'train': 'si.tsv', 'images': 'img'})
  assert warnings == [
    '--wit-train has rows of si only: the continued run tunes on si alone and may forget the '
    "base run's languages; add their rows to --wit-train"
  ]
  with pytest.raises(gin_file.GinFileError, match=r'no row of am .*the languages there: si 3\)'):
    gin_file.write(
      **{**_GIN_ARGS, 'lang': 'am'},
      base_config=base,
      wit={'train': 'si.tsv', 'images': 'img'},
    )


def test_counting_wit_rows_keeps_tensorflows_loading_chatter_off_the_terminal(tmp_path):
  """`mlit add-language` starts without TensorFlow; `gin`/`run --wit-train` count the rows with
  WIT's reader, which loads it: its oneDNN/CUDA-stub lines ('I0000 ... port.cc') and absl's
  'WARNING: All log messages before absl::InitializeLog()' reached the terminal."""
  (tmp_path / 'img').mkdir()
  rows = [task_files.wit_row(l, f'http://w/{l}.jpg', reference=l) for l in ('en', 'si')]
  task_files.write_wit(str(tmp_path / 'w.tsv'), rows)
  code = (
    'from mlit.language import gin_file; import sys; '
    "print(gin_file.wit_plan(sys.argv[1], 'si', {'train': 'w.tsv', 'images': 'img'}, 2, ())[0])"
  )
  proc = subprocess.run(
    [sys.executable, '-c', code, _BASE.format(tower="{'width': 16}")],
    cwd=tmp_path,
    capture_output=True,
    text=True,
    check=True,
    timeout=300,
  )
  assert proc.stdout.strip() == "{'en': 1.0, 'si': 2.0}" and proc.stderr == ''


def test_bad_inputs_are_one_line_naming_the_flag(setup, tmp_path, capsys):
  """Through the `mlit` dispatcher, as a user runs it: each mistake is one line, exit 2."""
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  d, out, _, _ = setup
  jsonl = tmp_path / 'el.jsonl'  # the emoji/CLDR texts' shape: the text is in 'name'
  rows = [{'lang': 'el', 'name': t} for t in _lines(EL_WORDS, 20, 3)]
  jsonl.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), 'utf-8')
  (tmp_path / 'empty').mkdir()
  vocab, el = str(d / 'old.model'), str(d / 'el.txt')
  extend = ['add-language', 'extend-vocab', '--vocab', vocab, '--checkpoint', str(d / 'old_ckpt')]
  extend += ['--lang', 'el', '--out', str(tmp_path / 'new_ext')]
  coverage_el = ['add-language', 'coverage', '--vocab', vocab, '--lang', 'el']
  cases = {
    'not a SentencePiece model': ['add-language', 'coverage', '--vocab', el, '--lang', 'el', el],
    'a directory, not a SentencePiece': ['coverage', '--vocab', str(d), el],
    f"no texts of language 'el' in {jsonl} (20 no text field); texts are read from a field named "
    'one of': [*coverage_el, str(jsonl)],
    f'(--lang-field); the first row without a text, {jsonl}:1, has fields lang, name': [
      *coverage_el,
      str(jsonl),
    ],
    "no language field 'lng'": [*coverage_el, '--text-field', 'name', '--lang-field', 'lng']
    + [str(jsonl)],
    'drop --texts/--old-texts': [*extend, '--emoji-data', str(d), '--texts', el],
    f'--out {out} exists and is not empty': [*extend[:-1], str(out), '--texts', el],
    '--old-texts': [*extend, '--texts', el, '--old-texts', str(jsonl)],
    'mlit add-language coverage: error: texts el.tx: no such file': [*coverage_el, 'el.tx'],
    'mlit add-language extend-vocab: error: --texts el.tx: no such file': [*extend, '--texts']
    + ['el.tx'],
  }
  for message, argv in cases.items():
    assert cli.main(argv) == 2, message
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, (message, err)
  argv = [*coverage_el, '--text-field', 'name']
  assert cli.main([*argv, str(jsonl)]) == 0
  assert capsys.readouterr().out.startswith('Greek (el), 20 texts:')
  assert not (tmp_path / 'new_ext').exists()


def test_num_pieces_below_the_characters_of_the_texts_works_and_below_one_is_refused(
  setup, tmp_path, capsys
):
  """SentencePiece refuses a model smaller than the texts' characters ('Vocabulary size is
  smaller than required_chars'): a small --num-pieces trains the size it needs and takes its best
  pieces; 0 or less is one line naming --num-pieces, before any work."""
  d = setup[0]
  old = vocab_extension.load_proto(str(d / 'old.model'))
  texts = (d / 'el.txt').read_text(encoding='utf-8').splitlines()
  assert len(set(''.join(texts))) > int(3 * 1.5) + 16  # the seed size 3 pieces asked for
  ext = vocab_extension.extend(old, texts, 3)
  assert 1 <= len(ext.pieces) <= 3 and len(ext.proto.pieces) == len(old.pieces) + len(ext.pieces)
  for n in ('0', '-5'):
    argv = [
      'extend-vocab',
      '--vocab',
      str(d / 'old.model'),
      '--checkpoint',
      str(d / 'old_ckpt' / 'checkpoint_0'),
    ]
    argv += ['--lang', 'el', '--texts', str(d / 'el.txt'), '--num-pieces', n]
    assert add_language.main([*argv, '--out', str(tmp_path / 'x')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f'mlit add-language extend-vocab: error: --num-pieces {n}: '
                                'the minimum is 1 (pieces to add)']  # fmt: skip
    assert not (tmp_path / 'x').exists()


def test_language_codes_are_the_projects_spelling_or_refused_with_the_code_to_use(
  setup, tmp_path, capsys
):
  d = setup[0]
  vocab, el = str(d / 'old.model'), str(d / 'el.txt')
  for given, use in (('sin', 'si'), ('cat', 'ca'), ('ell', 'el')):
    assert add_language.main(['coverage', '--vocab', vocab, '--lang', given, el]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{given}' is ISO 639-3 for" in err, err
    assert f"use '{use}'" in err
  (tmp_path / 'en.json').write_text(
    json.dumps({'name': 't', 'num_classes': 1, 'languages': {'en': {'classes': ['cat'],
               'templates': ['a {}.']}}}), encoding='utf-8')  # fmt: skip
  argv = ['prompts', '--lang', 'cat', '--english', str(tmp_path / 'en.json'), '--human']
  assert (
    add_language.main([*argv, str(tmp_path / 'en.json'), '--out', str(tmp_path / 'p.json')]) == 2
  )
  assert "use 'ca'" in capsys.readouterr().err and not (tmp_path / 'p.json').exists()
  # Simplified Chinese is plain 'zh'; texts in another script than the language's are flagged.
  assert add_language.main(['coverage', '--vocab', vocab, '--lang', 'zh-Hans', el]) == 0
  captured = capsys.readouterr()
  assert "--lang zh-Hans: written 'zh'" in captured.err
  assert 'but the texts are mostly Greek (Grek): check --lang' in captured.err
  assert captured.out.startswith('Chinese (zh),')
  assert add_language.main(['coverage', '--vocab', vocab, '--lang', 'el', el]) == 0
  assert 'warning' not in capsys.readouterr().err


def test_texts_report_lines_blanks_duplicates_and_what_was_not_checked(setup, tmp_path, capsys):
  d = setup[0]
  lines = _lines(EL_WORDS, 200, 7)
  texts = tmp_path / 'el.txt'
  texts.write_text('\n'.join(lines + lines[:50] + ['', '  ', '']) + '\n', encoding='utf-8')
  argv = [
    'extend-vocab',
    '--vocab',
    str(d / 'old.model'),
    '--checkpoint',
    str(d / 'old_ckpt' / 'checkpoint_0'),
  ]
  argv += ['--lang', 'el', '--texts', str(texts), '--num-pieces', '20', '--out']
  assert add_language.main([*argv, str(tmp_path / 'ext')]) == 0
  captured = capsys.readouterr()
  distinct = len(set(lines))
  assert f'el texts: 253 lines read, 250 texts, {250 - distinct} of them duplicates' in captured.err
  assert 'skipped 3 blank lines' in captured.err
  assert f'The 250 el texts ({distinct} distinct) gave' in captured.out
  assert 'old languages: not checked (no --old-texts)' in captured.out
  assert '(measured on the texts the pieces were trained on)' in captured.out


def test_coverage_error_names_the_given_text_field(setup, tmp_path, capsys):
  d = setup[0]
  jsonl = tmp_path / 'x.jsonl'
  jsonl.write_text(json.dumps({'lang': 'el', 'name': 'γάτα'}) + '\n', encoding='utf-8')
  argv = ['coverage', '--vocab', str(d / 'old.model'), '--lang', 'de', '--text-field', 'name']
  assert add_language.main([*argv, str(jsonl)]) == 2
  err = capsys.readouterr().err.strip()
  assert "from the field --text-field 'name'" in err and 'first of' not in err
  assert '(1 rows of other languages); the languages there: el 1;' in err
  assert "('text'" not in err and len(err.splitlines()) == 1


def test_prompts_out_directory_is_created_and_drift_chrf_is_at_most_100(tmp_path, capsys):
  prompts = {'name': 't', 'num_classes': 1, 'languages': {'ca': {'classes': ['gat'],
             'templates': ["una foto d'un {}."]}, 'en': {'classes': ['cat'], 'templates': ['a {}.']}}}  # fmt: skip
  (tmp_path / 'p.json').write_text(json.dumps(prompts), encoding='utf-8')
  argv = ['prompts', '--lang', 'ca', '--english', str(tmp_path / 'p.json')]
  argv += ['--human', str(tmp_path / 'p.json'), '--out']
  assert add_language.main([*argv, str(tmp_path / 'p.json'), '--drift-chrf', '200']) == 2
  assert capsys.readouterr().err.strip().endswith('--drift-chrf 200: chrF is 0 to 100')
  out = tmp_path / 'new' / 'dir' / 'prompts.json'
  assert add_language.main([*argv, str(out)]) == 0
  assert set(prompts_lib.load_prompt_file(str(out))) == {'ca'}
  assert (tmp_path / 'new' / 'dir' / 'prompt_quality.json').exists()


def _run_argv(d, out, *extra):
  argv = [
    'run',
    '--vocab',
    str(d / 'old.model'),
    '--checkpoint',
    str(d / 'old_ckpt' / 'checkpoint_0'),
  ]
  argv += ['--lang', 'el', '--texts', str(d / 'el.txt'), '--out', str(out)]
  return [*argv, '--eval-gin', 'demo/eval_emoji_zeroshot.gin', *extra]


def test_run_checks_every_input_first_and_leaves_no_empty_directory(setup, tmp_path, capsys):
  d = setup[0]
  out = tmp_path / 'run'
  argv = _run_argv(d, out)
  argv[-1] = 'demo/eval_emoji_zershot.gin'
  assert add_language.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert (
    err == 'mlit add-language run: error: --eval-gin demo/eval_emoji_zershot.gin: no such gin file'
  )
  assert not out.exists()
  # A failing extend-vocab (no piece to add) leaves neither OUT/extension nor OUT behind.
  (tmp_path / 'en.txt').write_text('the cat\n', encoding='utf-8')
  argv = _run_argv(d, out)
  argv[argv.index(str(d / 'el.txt'))] = str(tmp_path / 'en.txt')
  argv[argv.index('el')] = 'en'
  with pytest.raises(SystemExit) as stop:
    add_language.main(argv)
  assert stop.value.code == 2 and not out.exists()


def test_run_refuses_an_out_whose_extension_ran_with_other_arguments(setup, tmp_path, capsys):
  """A re-run into the same OUT: the extension's recorded arguments decide, before any work."""
  from mlit.commands import add_language_run  # pylint: disable=g-import-not-at-top

  d, ext, _, _ = setup
  out = tmp_path / 'run'
  shutil.copytree(ext, out / 'extension')
  assert add_language.main(_run_argv(d, out)) == 2  # made by hand: no record of its arguments
  err = capsys.readouterr().err.strip()
  assert 'its extension has no record of the arguments it ran with (steps.json' in err
  args = argparse_namespace(_run_argv(d, out))
  inputs = add_language_run._extension_inputs(args, str(d / 'old_ckpt' / 'checkpoint_0'))
  (out / 'steps.json').write_text(json.dumps({'extension': inputs}), encoding='utf-8')
  assert add_language.main(_run_argv(d, out, '--num-pieces', '500')) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  assert 'its extension ran with other arguments (num_pieces 1000 then, 500 now)' in err
  assert not (out / 'eval_before').exists()


def argparse_namespace(argv):
  """The parsed flags as add_language.main hands them to a step."""
  args = add_language.build_parser().parse_args(argv)
  add_language.check_common_args(args)
  return args


def test_an_evaluation_of_another_step_or_other_arguments_is_stale():
  from mlit.commands import add_language_run  # pylint: disable=g-import-not-at-top

  results = {'model': {'name': 'mlit:/x/add/train@300+efficientnet_lite:tower.npz'}}
  inputs = {'eval_gin': 'e.gin', 'eval_binding': [], 'checkpoint_step': 300}
  assert add_language_run.stale_evaluation(results, dict(inputs), inputs) is None
  why = add_language_run.stale_evaluation(results, dict(inputs), {**inputs, 'checkpoint_step': 340})
  assert why == 'it evaluated step 300, the checkpoint is now at step 340'
  why = add_language_run.stale_evaluation(results, {**inputs, 'eval_gin': 'o.gin'}, inputs)
  assert why == "eval_gin 'o.gin' then, 'e.gin' now"
  assert 'no record' in add_language_run.stale_evaluation(results, None, inputs)


def test_gin_and_run_refuse_steps_the_continued_run_cannot_take(setup, tmp_path, capsys):
  """gin wrote --repeat 0 (the run then failed in the emoji tasks' registration) and --steps 0
  (with --warmup -1) into the file; run took --warmup equal to --steps, grew the vocabulary and
  then stopped at its gin step. Each is now one line before any work."""
  d = setup[0]
  gin = ['gin', '--lang', 'el', '--extension', str(tmp_path / 'ext')]
  gin += ['--model-dir', str(tmp_path / 'cont'), '--out', str(tmp_path / 'el.gin')]
  run_out = tmp_path / 'run'
  cases = {
    '--repeat 0: the minimum is 1': [*gin, '--repeat', '0'],
    '--steps 0: the minimum is 1': [*gin, '--steps', '0', '--warmup', '-1'],
    '--warmup 10: 0 to --steps - 1 (9)': _run_argv(d, run_out, '--steps', '10', '--warmup', '10'),
  }
  for message, argv in cases.items():
    assert add_language.main(argv) == 2, message
    err = capsys.readouterr().err.strip()
    assert err == f'mlit add-language {argv[0]}: error: {message}', err
  assert not (tmp_path / 'el.gin').exists() and not run_out.exists()
