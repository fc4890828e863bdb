"""`mlit vocab`: a vocabulary with T5's ids from a user's texts, languages balanced as mT5's."""

import csv
import json
import random
import shutil

import pytest
import sentencepiece
import seqio

from mlit.commands import cli
from tasks import language_mixture, vocabularies

EN = 'sunset over the sea beach boat city street night dog cat bird tree flower mountain'.split()
SI = 'සූර්යයා මුහුද බල්ලා පූසා ගස මල කන්ද විල'.split()


def _corpus(d):
  rng = random.Random(0)
  with open(d / 'captions.tsv', 'w', newline='', encoding='utf-8') as f:
    w = csv.writer(f, delimiter='\t')
    w.writerow(['caption', 'language'])
    for i in range(1500):
      w.writerow([' '.join(rng.choice(EN) for _ in range(rng.randint(2, 8))) + f' n{i}', 'en'])
    for _ in range(30):
      w.writerow([' '.join(rng.choice(SI) for _ in range(rng.randint(2, 6))), 'si'])
    w.writerow(['', 'en'])  # skipped and counted
  (d / 'plain.txt').write_text(''.join(f'ein Hund im Park {i}\n' for i in range(20)))
  return [str(d / 'captions.tsv'), str(d / 'plain.txt')]


def test_a_balanced_vocabulary_with_t5_ids(tmp_path, capsys):
  files = _corpus(tmp_path)
  out = tmp_path / 'v' / 'spm'
  assert cli.main(['vocab', '--out', str(out), '--vocab-size', '400', *files]) == 0
  vocabularies.check_model_file(str(out) + '.model')  # pad 0, eos 1: what the tasks take
  info = json.loads((tmp_path / 'v' / 'spm.json').read_text())
  read = {k: v['texts_read'] for k, v in info['languages'].items()}
  assert read == {'en': 1500, 'si': len(set(_si_texts(files[0]))), 'und': 20}
  rates = language_mixture.temperature_rates(read, 1 / 0.3)
  total = sum(read.values())
  drawn = {k: v['texts_drawn'] for k, v in info['languages'].items()}
  assert drawn == {k: round(total * rates[k]) for k in read}
  assert drawn['si'] > read['si'] and drawn['en'] < read['en']  # up- and down-sampled
  assert info['skipped_rows'] == {'empty_text': 1} and info['pieces'] == 400
  captured = capsys.readouterr()
  assert (
    '| si | Sinhala | Sinh | ' in captured.out
    and 'skipped 1 row: empty_text (the first: ' in captured.err
  )
  assert 'warning' not in captured.err  # the 400 pieces asked for were made
  sp = sentencepiece.SentencePieceProcessor(model_file=str(out) + '.model')
  assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)
  # The same command again writes the same model (the sample and the training are seeded; the
  # model's bytes name its output path, so the same one).
  assert cli.main(['vocab', '--out', str(out), '--vocab-size', '400', *files]) == 0
  assert json.loads((tmp_path / 'v' / 'spm.json').read_text())['sha256'] == info['sha256']


def _si_texts(path):
  with open(path, encoding='utf-8') as f:
    return [r['caption'] for r in csv.DictReader(f, delimiter='\t') if r['language'] == 'si']


@pytest.mark.parametrize(
  'args,message',
  [
    (['--vocab-size', '100'], '--vocab-size must be >= 300'),
    (['--lang', 'en', '--lang-field', 'language'], '--lang-field cannot apply with --lang'),
    (['--text-field', 'title'], "no text field 'title'"),
  ],
)
def test_vocab_mistakes_are_one_line(tmp_path, capsys, args, message):
  files = _corpus(tmp_path)
  assert cli.main(['vocab', '--out', str(tmp_path / 'o'), *args, *files]) == 2
  assert message in capsys.readouterr().err
  (tmp_path / 'empty.txt').write_text('\n \n')
  assert cli.main(['vocab', '--out', str(tmp_path / 'o'), str(tmp_path / 'empty.txt')]) == 2
  assert 'no text to train a vocabulary on' in capsys.readouterr().err
  # A JSONL whose text is under another name (the demo's texts/*.jsonl: 'name'): its fields and
  # the flag, in the one line.
  rows = tmp_path / 'de.jsonl'
  rows.write_text('{"lang": "de", "name": "Katze"}\n')
  assert cli.main(['vocab', '--out', str(tmp_path / 'o'), str(rows)]) == 2
  assert capsys.readouterr().err.endswith(
    f'no text to train a vocabulary on (skipped: no_text_field 1); the first, {rows}:1, has '
    'fields lang, name and no string in any of text, caption, caption_reference_description, '
    'title, sentence: name the text field with --text-field\n'
  )


def test_a_vocabulary_smaller_than_asked_is_warned(tmp_path, capsys):
  (tmp_path / 'few.txt').write_text(''.join(f'a red circle {i}\n' for i in range(40)))
  assert cli.main(['vocab', '--out', str(tmp_path / 'o'), str(tmp_path / 'few.txt')]) == 0
  pieces = json.loads((tmp_path / 'o.json').read_text())['pieces']
  assert pieces < 32000
  err = capsys.readouterr().err
  assert (
    f'warning: --vocab-size 32,000 asked, {pieces:,} pieces made ({pieces - 259:,} beyond' in err
  )


def test_the_same_relative_path_elsewhere_is_that_folders_model(tmp_path, monkeypatch):
  """seqio keeps a loaded SentencePiece model by its path as written: 'spm/tiny_spm.model' read
  from a second folder (a notebook's chdir, make demo's relative runs/demo in one process) gave
  the first folder's model, and texts the wrong ids (the README snippet's test decoded 'de 0' as
  ' ⁇  Meer0' after the demo's test in one pytest worker)."""
  from spm_fixture import train_tiny_spm  # pylint: disable=g-import-not-at-top

  own = {}
  for name, size in (('a', 300), ('b', 400)):
    path = train_tiny_spm(str(tmp_path / name / 'spm'), vocab_size=size)
    own[name] = sentencepiece.SentencePieceProcessor(model_file=path).vocab_size()
  assert own['a'] != own['b']
  for name in ('a', 'b', 'a'):
    monkeypatch.chdir(tmp_path / name)
    assert vocabularies.sentencepiece('spm/tiny_spm.model').vocab_size == own[name], name
  # Loaded first by seqio itself (a gin-configured VOCABULARY), then here from another folder.
  for name in ('a', 'b'):
    shutil.copy(tmp_path / name / 'spm' / 'tiny_spm.model', tmp_path / name / 'spm' / 'v.model')
  monkeypatch.chdir(tmp_path / 'b')
  assert seqio.SentencePieceVocabulary('spm/v.model').vocab_size == own['b']
  monkeypatch.chdir(tmp_path / 'a')
  assert vocabularies.sentencepiece('spm/v.model').vocab_size == own['a']
