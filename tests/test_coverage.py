"""Tokenizer coverage on hand-checked texts with a tiny byte-fallback SentencePiece model."""

import io
import json
import random

import pytest
import sentencepiece as spm
from PIL import Image

from eval_multilingual import coverage, languages
from tasks.user_error import UserError

WORDS = 'the cat sat on a mat with hat and dog ran far away to see big red sun in sky'.split()


def _train(byte_fallback: bool) -> spm.SentencePieceProcessor:
  rng = random.Random(0)
  lines = [' '.join(rng.choice(WORDS) for _ in range(8)) for _ in range(300)]
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(lines),
    model_writer=model,
    vocab_size=300 if byte_fallback else 60,
    byte_fallback=byte_fallback,
    character_coverage=1.0,
    model_type='unigram',
    pad_id=0,
    eos_id=1,
    unk_id=2,
    bos_id=-1,
    hard_vocab_limit=False,
    minloglevel=2,
  )
  return spm.SentencePieceProcessor(model_proto=model.getvalue())


@pytest.fixture(scope='module')
def sp():
  return _train(byte_fallback=True)


def test_english_words_are_single_pieces(sp):
  # Hand check of the model the numbers below rely on.
  assert sp.encode('the cat', out_type=str) == ['▁the', '▁cat']
  assert sp.encode('αβγ', out_type=str) == [
    '▁',
    '<0xCE>',
    '<0xB1>',
    '<0xCE>',
    '<0xB2>',
    '<0xCE>',
    '<0xB3>',
  ]


def test_counts_hand_checked(sp):
  fifteen = ' '.join(['the'] * 15)  # 15 tokens + EOS = 16: fits
  sixteen = ' '.join(['cat'] * 16)  # 16 tokens + EOS = 17: truncated
  pairs = [
    ('en', 'the cat'),
    ('en', fifteen),
    ('en', sixteen),
    ('el', 'αβγ'),
    ('el', 'αβ'),  # '▁' + 2 bytes per letter: 7 and 5 tokens
    ('ja', '日本'),
  ]  # '▁' + 3 bytes per character: 7 tokens
  stats = coverage.coverage(sp, pairs, max_len=16)
  en, el, ja = stats['en'], stats['el'], stats['ja']
  assert en['n_texts'] == 3 and en['n_tokens'] == 33
  assert en['tokens_per_word'] == pytest.approx(1.0)
  assert en['byte_fallback_share'] == 0.0 and en['unk_share'] == 0.0
  assert en['truncated_share'] == pytest.approx(1 / 3)
  assert el['tokens_per_word'] == pytest.approx(12 / 2)
  assert el['byte_fallback_share'] == pytest.approx(10 / 12)
  assert el['unit'] == 'word' and el['truncated_share'] == 0.0
  assert ja['unit'] == 'char' and ja['tokens_per_unit'] == pytest.approx(7 / 2)
  assert ja['byte_fallback_share'] == pytest.approx(6 / 7)
  # A shorter tuning length truncates more: 'the cat' + EOS = 3 tokens > 2.
  assert coverage.coverage(sp, [('en', 'the cat')], max_len=2)['en']['truncated_share'] == 1.0


def test_unknown_share_without_byte_fallback():
  sp = _train(byte_fallback=False)
  ids = sp.encode('the αβγ')
  assert ids[-1] == sp.unk_id()  # the three unknown letters become one <unk>
  stats = coverage.coverage(sp, [('el', 'the αβγ')])['el']
  assert stats['unk_share'] == pytest.approx(1 / len(ids))
  assert stats['unk_share'] > 0 and stats['byte_fallback_share'] == 0.0


def test_cli_reads_tsv_jsonl_plain_and_counts_bad_rows(sp, tmp_path, capsys):
  vocab = tmp_path / 'v.model'
  vocab.write_bytes(sp.serialized_model_proto())
  (tmp_path / 'a.tsv').write_text(
    'language\tcaption\nen\tthe cat\nel\tαβγ\nen\t\nen\tx\ty\n', encoding='utf-8'
  )
  (tmp_path / 'b.jsonl').write_text(
    '{"lang": "el", "text": "αβ"}\nnot json\n{"lang": "en"}\n', encoding='utf-8'
  )
  (tmp_path / 'c.txt').write_text(
    'the cat sat on the mat with the big red hat and the dog ran far away\n', encoding='utf-8'
  )
  out = tmp_path / 'out'
  stats_json = tmp_path / 'tokenizer_stats.json'
  rc = coverage.main(
    [
      '--vocab',
      str(vocab),
      str(tmp_path / 'a.tsv'),
      str(tmp_path / 'b.jsonl'),
      str(tmp_path / 'c.txt'),
      '--out',
      str(out),
      '--stats-json',
      str(stats_json),
    ]
  )
  assert rc == 0
  captured = capsys.readouterr()
  assert '| el | Greek |' in captured.out
  # Each reason's line names where its first row is (they said only 'skipped 1 rows: ...').
  for reason, where in (
    ('empty_text', 'a.tsv:4'),
    ('extra_columns', 'a.tsv:5'),
    ('invalid_json', 'b.jsonl:2'),
  ):
    assert f'skipped 1 row: {reason} (the first: {tmp_path}/{where}' in captured.err
  assert (
    f'skipped 1 row: no_text_field; the first, {tmp_path}/b.jsonl:3, has fields lang and no string'
  ) in captured.err
  stats = json.loads((out / 'coverage.json').read_text())
  assert stats['el']['n_texts'] == 2 and stats['el']['byte_fallback_share'] == pytest.approx(
    10 / 12
  )
  assert stats['en']['n_texts'] == 2  # 'the cat' from TSV + the detected English line
  assert set(json.loads(stats_json.read_text())['en']) >= {
    'tokens_per_word',
    'byte_fallback_share',
    'unk_share',
    'truncated_share',
    'n_texts',
  }
  with Image.open(out / 'coverage.png') as im:
    assert im.format == 'PNG' and im.size[0] > 300
  assert 'Greek' in (out / 'coverage.md').read_text(encoding='utf-8')
  # The detected language is marked as such, in the table and on stderr.
  assert '| en | English |' in captured.out and '| 1 of 2 detected |' in captured.out
  assert '| given |' in captured.out and '"detected"' in (out / 'coverage.md').read_text()
  assert 'was detected, not given; detection on short texts is unreliable' in captured.err
  # Fewer languages into the same outputs: a line names what the old ones had.
  argv = ['--vocab', str(vocab), str(tmp_path / 'c.txt'), '--out', str(out)]
  assert coverage.main(argv + ['--stats-json', str(stats_json)]) == 0
  err = capsys.readouterr().err
  for path in (out / 'coverage.json', stats_json):
    assert f'warning: replacing {path} (2 languages) with 1 languages; no longer in it: el' in err
  assert coverage.main(argv) == 0  # the same languages again: nothing to say
  assert 'replacing' not in capsys.readouterr().err
  # A pattern the shell left alone is expanded; one that matches nothing is an error.
  pattern = str(tmp_path / '[ab].*')
  assert coverage.main(['--vocab', str(vocab), pattern, '--out', str(out)]) == 0
  assert json.loads((out / 'coverage.json').read_text())['el']['n_texts'] == 2
  with pytest.raises(UserError, match=r'nothing\*\.jsonl: no file matches this pattern'):
    coverage.main(['--vocab', str(vocab), str(tmp_path / 'nothing*.jsonl')])


def test_missing_text_column_is_a_clear_error(sp, tmp_path):
  path = tmp_path / 'x.tsv'
  path.write_text('language\tbody\nen\thi\n', encoding='utf-8')
  reader = coverage.InputReader()
  with pytest.raises(ValueError, match=r"x.tsv: header row \['language', 'body'\] has no text col"):
    list(reader.read(str(path)))


def test_jsonl_without_a_known_text_field_names_its_fields_and_the_flag(sp, tmp_path, capsys):
  # As the demo's own texts (runs/demo/data/texts/*.jsonl) are: the text is in 'name'.
  vocab = tmp_path / 'v.model'
  vocab.write_bytes(sp.serialized_model_proto())
  rows = tmp_path / 'de.jsonl'
  rows.write_text('{"emoji": "x", "lang": "de", "name": "Katze", "keywords": ["Tier"]}\n')
  with pytest.raises(UserError) as e:
    coverage.main(['--vocab', str(vocab), str(rows)])
  assert str(e.value) == (
    f'no text read from {rows} (skipped: no_text_field 1); the first, {rows}:1, has fields '
    'emoji, keywords, lang, name and no string in any of text, caption, '
    'caption_reference_description, title, sentence: name the text field with --text-field'
  )
  assert coverage.main(['--vocab', str(vocab), '--text-field', 'name', str(rows)]) == 0
  assert '| de | German |' in capsys.readouterr().out


def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path):
  """Files saved by Windows editors start with a BOM: a .tsv's header read '\\ufefftext' (no text
  column), a .jsonl's first row was invalid JSON, a plain file's first text carried it."""
  bom = '\ufeff'
  (tmp_path / 'a.tsv').write_text(f'{bom}text\tlang\r\nwai\thaw\r\n', encoding='utf-8')
  (tmp_path / 'a.jsonl').write_text(bom + '{"text": "wai", "lang": "haw"}\n', encoding='utf-8')
  (tmp_path / 'a.txt').write_text(f'{bom}wai\n', encoding='utf-8')
  for name in ('a.tsv', 'a.jsonl', 'a.txt'):
    reader = coverage.InputReader(lang=None if name != 'a.txt' else 'haw')
    assert list(reader.read(str(tmp_path / name))) == [('haw', 'wai')], name
    assert not reader.skipped, (name, reader.skipped)


def test_flags_that_cannot_apply_are_one_line_errors(sp, tmp_path, capsys):
  """--lang-field beside --lang was read past without a word (--lang wins), and --max-len 0
  counted every text as truncated; a headerless id<TAB>text .tsv is told to get a header row."""
  from mlit.commands import cli  # pylint: disable=import-outside-toplevel

  vocab = tmp_path / 'v.model'
  vocab.write_bytes(sp.serialized_model_proto())
  texts = tmp_path / 'a.tsv'
  texts.write_text('text\tlanguage\nthe cat\ten\n', encoding='utf-8')
  base = ['coverage', '--vocab', str(vocab), str(texts)]
  for flags, message in [
    (['--lang', 'en', '--lang-field', 'language'], '--lang-field cannot apply with --lang'),
    (['--max-len', '0'], '--max-len must be >= 1, got 0'),
  ]:
    assert cli.main([*base, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and err.startswith(f'mlit coverage: error: {message}'), err
  texts.write_text('a1\tthe cat\n', encoding='utf-8')
  assert cli.main(base) == 2
  assert 'or put a header row first' in capsys.readouterr().err


def test_language_table_covers_cldr_and_wit():
  assert len(set(languages.WIT_LANGUAGES)) == 108
  assert all(languages.is_known(c) for c in languages.WIT_LANGUAGES)
  assert languages.lookup('sr_Latn').script == 'Latn'
  assert languages.lookup('sr').script == 'Cyrl'
  assert languages.lookup('zh_Hant').script == 'Hant'
  assert languages.lookup('yue_Hans') == languages.Language(
    'yue_Hans', 'Cantonese (Simplified)', 'Hans'
  )
  assert languages.lookup('zh-TW').script == 'Hant'
  assert languages.lookup('iw').name == 'Hebrew'
  # Unknown code: script detected from sample text.
  assert languages.lookup('qqq', sample_text='Привет, мир').script == 'Cyrl'
  assert languages.detect_script('日本語のテキスト') == 'Jpan'
  assert languages.detect_script('한국어 文字') == 'Kore'
  assert languages.detect_script('12 !!') == 'Zyyy'


def test_every_language_of_the_evaluation_sets_is_known():
  # Reports name each language and group it by script; an unknown code shows as 'om (om)', 'Zzzz'.
  from eval_multilingual import clip_benchmark_prompts  # pylint: disable=g-import-not-at-top
  from eval_multilingual.datasets import xm3600  # pylint: disable=g-import-not-at-top

  sets = {
    'babel_imagenet': clip_benchmark_prompts.babel_imagenet_languages(),
    'xm3600': xm3600.LANGUAGES,
    'wit': languages.WIT_LANGUAGES,
  }
  assert {k: [c for c in v if not languages.is_known(c)] for k, v in sets.items()} == {
    k: [] for k in sets
  }
  assert languages.lookup('om') == languages.Language('om', 'Oromo', 'Latn')
  assert languages.lookup('yi').script == 'Hebr' and languages.lookup('quz').name == 'Cusco Quechua'


def test_every_cldr_annotation_locale_is_known():
  import os  # pylint: disable=g-import-not-at-top

  root = '/usr/share/unicode/cldr/common/annotations'
  if not os.path.isdir(root):
    pytest.skip('unicode-cldr-core not installed')
  locales = [f[:-4] for f in os.listdir(root) if f.endswith('.xml')]
  assert len(locales) > 100
  unknown = [c for c in locales if not languages.is_known(c)]
  assert not unknown
  assert languages.lookup('sr_Latn_BA').name == 'Serbian (Latin, Bosnia & Herzegovina)'


def test_undetectable_lines_are_counted_per_script(sp, tmp_path, capsys):
  vocab = tmp_path / 'v.model'
  vocab.write_bytes(sp.serialized_model_proto())
  text = tmp_path / 'mixed.txt'
  text.write_text(
    'the cat sat on the mat with the big red hat and the dog ran far away\n'
    'ሰላም ለዓለም ሁሉ\nእንኳን ደህና መጡ\n12345 678\n',
    encoding='utf-8',
  )
  assert coverage.main(['--vocab', str(vocab), str(text)]) == 0
  err = capsys.readouterr().err
  line = next(l for l in err.splitlines() if 'not detectable' in l)
  assert 'skipped 3 rows: language not detectable, by script: Ethiopic (Ethi) 2' in line
  assert '(Zyyy) 1' in line and '--lang CODE' in line and '--lang-field' in line
  assert coverage.main(['--vocab', str(vocab), '--lang', 'am', str(text)]) == 0
  assert 'not detectable' not in capsys.readouterr().err
