"""`mlit vocab`: a SentencePiece vocabulary with T5's ids for texts of your own.

  mlit vocab --out runs/mine/spm --vocab-size 32000 captions.tsv more.jsonl

Texts as `mlit coverage` reads them: .tsv with a header row, .jsonl, or plain text, one per line
(--text-field, --lang-field, --lang; .gz allowed), each distinct text once (a caption repeated
over many images would otherwise weigh as many texts). Languages are balanced as mT5 balanced its
vocabulary's training text: a language's share of the sample is proportional to its texts **
(1 / --temperature), 3.33 by default (mT5's alpha = 0.3), for at most --max-texts texts; a
language below its share gives its texts several times over. Texts without a language (no
--lang, no language field) are one group, `und`, not detected. Writes OUT.model and OUT.vocab
(unigram, byte fallback, pad 0, eos 1, unk 2, no bos: the ids mlit's tasks and text tower take)
and OUT.json (the settings, and per language the texts read and drawn), and prints the new
vocabulary's coverage of the texts read. Bind it as VOCABULARY's file:
--gin.seqio.SentencePieceVocabulary.sentencepiece_model_file=\\"OUT.model\\".
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'vocab')  # `python -m`: the command, before the heavy imports

import argparse
import json
import os
import sys

from eval_multilingual import coverage, tables
from tasks import file_io, language_mixture, sentencepiece_training, vocabularies
from tasks.user_error import UserError

MT5_TEMPERATURE = 1 / 0.3  # mT5's vocabulary: languages sampled with alpha = 0.3


def read_texts(paths, reader) -> dict[str, list[str]]:
  """{lang: distinct texts, in first-seen order} of every file."""
  texts: dict[str, dict[str, None]] = {}
  for path in coverage.expand(paths):
    if not os.path.isfile(path):
      raise UserError(f'{path}: no such file')
    for lang, text in reader.read(path):
      texts.setdefault(lang, {})[text] = None
  return {lang: list(t) for lang, t in texts.items()}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    prog='mlit vocab', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument('texts', nargs='+', help='text files (.tsv with a header row, .jsonl, plain)')
  p.add_argument('--out', required=True, help='output prefix: OUT.model, OUT.vocab, OUT.json')
  p.add_argument('--vocab-size', type=int, default=32000, help='pieces to ask for (default 32000)')
  p.add_argument('--lang', help='language of every text (no balancing then)')
  p.add_argument('--lang-field', help='language field/column (default: language, lang, locale)')
  p.add_argument(
    '--text-field', help=f'text field/column (default: first of {coverage.TEXT_FIELDS})'
  )
  p.add_argument(
    '--temperature',
    type=float,
    default=MT5_TEMPERATURE,
    help="languages' shares ~ texts ** (1 / T); 1 follows the data (default 3.33, mT5's)",
  )
  p.add_argument(
    '--max-texts', type=int, default=2_000_000, help='texts to train on, at most (default 2M)'
  )
  p.add_argument('--max-len', type=int, default=16, help='text length for the coverage table')
  p.add_argument('--seed', type=int, default=0, help='sampling seed (default 0)')
  args = p.parse_args(argv)
  if args.lang and args.lang_field:
    p.error('--lang-field cannot apply with --lang: --lang is the language of every text')
  if args.vocab_size < 300:
    p.error(
      f'--vocab-size must be >= 300 (256 bytes and the special pieces), got {args.vocab_size}'
    )
  if args.temperature <= 0 or args.max_texts < 1 or args.max_len < 1:
    p.error('--temperature must be > 0, --max-texts and --max-len >= 1')
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise UserError(f'--out {args.out}: {out_dir} is a file, not a directory')

  reader = coverage.InputReader(args.lang, args.lang_field, args.text_field, detect=False)
  print('mlit vocab: reading the texts (held in memory)', file=sys.stderr, flush=True)
  texts = read_texts(args.texts, reader)
  if not texts:
    raise UserError(
      f'{", ".join(args.texts)}: no text to train a vocabulary on{reader.why_nothing_was_read()}'
    )
  for line in reader.skipped_lines():
    print(f'mlit vocab: {line}', file=sys.stderr)
  drawn = language_mixture.temperature_sample(texts, args.max_texts, args.temperature, args.seed)
  os.makedirs(out_dir, exist_ok=True)
  lines = [t for lang in sorted(drawn) for t in drawn[lang]]
  print(
    f'mlit vocab: training SentencePiece on {len(lines):,} texts drawn from {len(texts)} languages',
    file=sys.stderr,
    flush=True,
  )
  model = sentencepiece_training.train_t5_sentencepiece(lines, args.out, args.vocab_size)
  vocabularies.check_model_file(model)

  sp = coverage.load_sentencepiece(model)
  stats = coverage.coverage(sp, ((lang, t) for lang, ts in texts.items() for t in ts), args.max_len)
  for lang, s in stats.items():
    if lang != 'und':  # given, by --lang or a language field; 'und' had none
      s['n_detected'] = 0
  info = {
    'model': os.path.basename(model),
    'sha256': file_io.file_sha256(model),
    'pieces': sp.GetPieceSize(),
    'settings': {
      k: getattr(args, k) for k in ('vocab_size', 'temperature', 'max_texts', 'seed', 'lang')
    },
    'inputs': [os.path.abspath(t) for t in coverage.expand(args.texts)],
    'languages': {
      lang: {'texts_read': len(texts[lang]), 'texts_drawn': len(drawn[lang])} for lang in texts
    },
    'skipped_rows': dict(reader.skipped),
  }
  with file_io.atomic_path(args.out + '.json') as tmp, open(tmp, 'w', encoding='utf-8') as f:
    json.dump(info, f, indent=1, sort_keys=True)
  sys.stdout.write(tables.markdown(coverage.HEADERS, coverage.rows(stats)))
  n_read, n_drawn = sum(map(len, texts.values())), len(lines)
  print(
    f'mlit vocab: {model}: {sp.GetPieceSize():,} pieces from {n_drawn:,} texts drawn of '
    f'{n_read:,} distinct read in {len(texts)} languages; {args.out}.json has the counts',
    file=sys.stderr,
  )
  if sp.GetPieceSize() < args.vocab_size:
    # SentencePiece's limit is soft here: a small corpus gives a small vocabulary, most of it
    # perhaps the byte pieces, which a user asking for 32,000 should hear about.
    print(
      f'mlit vocab: warning: --vocab-size {args.vocab_size:,} asked, {sp.GetPieceSize():,} '
      f'pieces made ({sp.GetPieceSize() - 259:,} beyond the 256 bytes and 3 special pieces): '
      f'SentencePiece found no more in the {n_drawn:,} texts drawn; more or longer texts give more',
      file=sys.stderr,
    )
  return 0
