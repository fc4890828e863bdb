"""`mlit add-language {coverage,prompts,extend-vocab,gin}`: bring a new language into mlit.

1. coverage      how the current vocabulary tokenises the language's texts
2. prompts       class names + templates in the language (machine-translated or human),
                 validated, with round-trip chrF written to prompt_quality.json
3. extend-vocab  new SentencePiece pieces for the language appended to the vocabulary, the
                 text embedding grown to match; writes sentencepiece.model + a T5X checkpoint
                 (Orbax layout, checkpoint_0/state) for INITIAL_CHECKPOINT_PATH
4. gin           a gin snippet with the tuning task and evaluation entries for the language
"""

import argparse
import datetime
import json
import os
import sys

import numpy as np
import sentencepiece as spm

from eval_multilingual import coverage, languages
from mlit.language import vocab_extension


def read_language_texts(paths: list[str], lang: str) -> tuple[list[str], dict]:
  """Texts of `lang`: TSV/JSONL rows whose language field is `lang`, every line of plain text."""
  texts, skipped = [], {}
  for path in paths:
    name = path[:-3] if path.endswith('.gz') else path
    structured = name.endswith(('.tsv', '.jsonl', '.json'))
    reader = coverage.InputReader(lang=None if structured else lang)
    texts += [t for l, t in reader.read(path) if l == lang]
    for reason, n in reader.skipped.items():
      skipped[reason] = skipped.get(reason, 0) + n
  if not texts:
    raise SystemExit(f'mlit add-language: no texts of language {lang!r} in {paths}')
  return texts, skipped


def cmd_coverage(args) -> int:
  sp = spm.SentencePieceProcessor(model_file=args.vocab)
  texts, _ = read_language_texts(args.texts, args.lang)
  stats = coverage.coverage(sp, [(args.lang, t) for t in texts], args.max_len)
  s = stats[args.lang]
  print(
    f'{languages.lookup(args.lang).name} ({args.lang}), {s["n_texts"]} texts: '
    f'{s["tokens_per_unit"]:.2f} tokens/{s["unit"]}, byte-fallback '
    f'{100 * s["byte_fallback_share"]:.1f}%, unknown {100 * s["unk_share"]:.1f}%, '
    f'{100 * s["truncated_share"]:.1f}% over {args.max_len} tokens'
  )
  if args.out:
    coverage.write_outputs(stats, args.out, f'Coverage of {os.path.basename(args.vocab)}')
  return 0


def _load_or(path: str, default: dict) -> dict:
  if not os.path.exists(path):
    return default
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _write_json(path: str, data: dict) -> None:
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(data, f, ensure_ascii=False, indent=1)


def _add_prompt_language(path: str, lang: str, entry: dict, name: str, num_classes: int) -> None:
  """Adds (or replaces) one language of a prompt set file, creating the file if needed."""
  data = _load_or(path, {'name': name, 'num_classes': num_classes, 'languages': {}})
  if data.get('num_classes') != num_classes:
    raise SystemExit(
      f'{path}: num_classes {data.get("num_classes")} differs from the English set ({num_classes})'
    )
  data.setdefault('languages', {})[lang] = entry
  _write_json(path, data)


def cmd_prompts(args) -> int:
  from eval_multilingual import prompt_translation  # pylint: disable=g-import-not-at-top
  from eval_multilingual import prompts as prompts_lib  # pylint: disable=g-import-not-at-top
  from mlit.translation import backends as translation_backends  # pylint: disable=g-import-not-at-top

  english_sets = prompts_lib.load_prompt_file(args.english)
  if args.english_lang not in english_sets:
    raise SystemExit(
      f'{args.english}: no language {args.english_lang!r} (has {sorted(english_sets)})'
    )
  english = english_sets[args.english_lang]
  backend = translation_backends.make_backend(args.backend) if args.backend else None
  dropped = []
  if args.human:
    human = prompts_lib.load_prompt_file(args.human)
    if args.lang not in human:
      raise SystemExit(f'{args.human}: no language {args.lang!r} (has {sorted(human)})')
    ps = human[args.lang]
    quality = (
      prompt_translation.round_trip_quality(backend, args.lang, english, ps) if backend else None
    )
  elif backend:
    t = prompt_translation.translate_prompt_set(backend, english, args.lang, english.name)
    ps, dropped, quality = t.prompt_set, t.dropped_templates, t.quality
  else:
    raise SystemExit(
      'mlit add-language prompts: give --backend (machine translation) and/or --human FILE'
    )
  for w in ps.warnings:
    print(f'warning: {w}', file=sys.stderr)
  for d in dropped:
    print(f'dropped template (class slot lost in translation): {d}', file=sys.stderr)
  entry = {
    'classes': [list(c) if len(c) > 1 else c[0] for c in ps.classes],
    'templates': list(ps.templates),
  }
  if ps.class_indices is not None:
    entry['class_indices'] = list(ps.class_indices)
  _add_prompt_language(args.out, args.lang, entry, english.name, english.num_classes)
  prompts_lib.load_prompt_file(args.out)  # the written file must load like any prompt set
  print(
    f'wrote {len(ps.classes)} classes, {len(ps.templates)} templates for {args.lang} to {args.out}'
  )
  if quality is not None:
    qpath = args.quality or os.path.join(
      os.path.dirname(os.path.abspath(args.out)), 'prompt_quality.json'
    )
    quality['dropped_templates'] = len(dropped)
    _write_json(qpath, {**_load_or(qpath, {}), args.lang: quality})
    print(
      f'round-trip chrF {quality["chrf"]:.1f} (classes {quality["chrf_classes"]:.1f}, '
      f'templates {quality["chrf_templates"]:.1f}) -> {qpath}'
    )
  return 0


def cmd_extend_vocab(args) -> int:
  from mlit.checkpoints import t5x as t5x_checkpoint  # pylint: disable=g-import-not-at-top

  old = vocab_extension.load_proto(args.vocab)
  texts, _ = read_language_texts(args.texts, args.lang)
  ext = vocab_extension.extend(old, texts, args.num_pieces)
  flat = t5x_checkpoint.read_t5x_checkpoint(args.checkpoint, include=r'^(token_embedder|encoder)/')
  if vocab_extension.EMBEDDING_KEY not in flat:
    raise SystemExit(f'{args.checkpoint}: no {vocab_extension.EMBEDDING_KEY} in the checkpoint')
  emb = np.asarray(flat[vocab_extension.EMBEDDING_KEY])
  flat[vocab_extension.EMBEDDING_KEY] = vocab_extension.grow_embedding(
    emb, ext.old_vocab_size, ext.tokenisations, args.pad_to
  )
  os.makedirs(args.out, exist_ok=True)
  vocab_path = os.path.join(args.out, 'sentencepiece.model')
  with open(vocab_path, 'wb') as f:
    f.write(ext.proto.SerializeToString())
  ckpt_dir = vocab_extension.save_t5x_orbax(flat, args.out)

  old_sp = spm.SentencePieceProcessor(model_file=args.vocab)
  new_sp = spm.SentencePieceProcessor(model_file=vocab_path)
  pairs = [(args.lang, t) for t in texts]
  before = coverage.coverage(old_sp, pairs, args.max_len)[args.lang]
  after = coverage.coverage(new_sp, pairs, args.max_len)[args.lang]
  summary = {
    'language': args.lang,
    'old_vocab': os.path.abspath(args.vocab),
    'old_checkpoint': os.path.abspath(args.checkpoint),
    'old_vocab_size': ext.old_vocab_size,
    'new_vocab_size': len(ext.proto.pieces),
    'new_pieces': len(ext.pieces),
    'embedding_rows': [int(emb.shape[0]), int(flat[vocab_extension.EMBEDDING_KEY].shape[0])],
    'first_new_pieces': [p for p, _ in ext.pieces[:20]],
    'coverage_before': before,
    'coverage_after': after,
    'vocabulary': vocab_path,
    'checkpoint': ckpt_dir,
  }
  if args.old_texts:
    old_pairs = []
    for path in args.old_texts:
      old_pairs += list(coverage.InputReader().read(path))
    changed = sum(old_sp.encode(t) != new_sp.encode(t) for _, t in old_pairs)
    summary['old_language_texts_retokenised'] = [changed, len(old_pairs)]
  with open(os.path.join(args.out, 'extension.json'), 'w', encoding='utf-8') as f:
    json.dump(summary, f, ensure_ascii=False, indent=1)
  print(
    f'{len(ext.pieces)} pieces added ({ext.old_vocab_size} -> {len(ext.proto.pieces)}); '
    f'embedding rows {emb.shape[0]} -> {summary["embedding_rows"][1]}; byte-fallback share '
    f'{100 * before["byte_fallback_share"]:.1f}% -> {100 * after["byte_fallback_share"]:.1f}%'
    f'; tokens/{after["unit"]} {before["tokens_per_unit"]:.2f} -> '
    f'{after["tokens_per_unit"]:.2f}'
  )
  if 'old_language_texts_retokenised' in summary:
    print(
      'old-language texts tokenised differently: %d of %d'
      % tuple(summary['old_language_texts_retokenised'])
    )
  print(
    f'vocabulary: {vocab_path}\ncheckpoint: {ckpt_dir}  (T5X Orbax layout; pass as '
    f'INITIAL_CHECKPOINT_PATH and set text_tower.T5Config.vocab_size = '
    f'{summary["embedding_rows"][1]})'
  )
  return 0


def gin_snippet(
  lang: str,
  vocab: str | None,
  checkpoint: str | None,
  vocab_size: int | None,
  prompts: str | None,
  wit_task: str = 'wit_reference',
) -> str:
  """Gin bindings for tuning on and evaluating the language (a file to pass with --gin_file)."""
  info = languages.lookup(lang)
  ident = ''.join(ch if ch.isalnum() else '_' for ch in lang).upper()
  scope = ident.lower()
  stamp = datetime.date.today().isoformat()
  lines = [
    f'# {info.name} ({lang}, script {info.script}): written by `mlit add-language gin` on {stamp}.',
    'from __gin__ import dynamic_registration',
    '',
    'from eval_multilingual import evaluations',
    'from mlit.models import text_tower',
    'from tasks import vocabularies',
    'from tasks import wit',
    '',
  ]
  if vocab:
    lines += [
      '# Vocabulary extended for the language; ids of the old pieces are unchanged.',
      f'VOCABULARY = {json.dumps(vocab)}',
      'vocabularies.vocabulary.path = %VOCABULARY',
    ]
  if vocab_size:
    lines.append(f'text_tower.T5Config.vocab_size = {int(vocab_size)}')
  if checkpoint:
    lines += [f'INITIAL_CHECKPOINT_PATH = {json.dumps(checkpoint)}', '']
  task = f'{wit_task}.{lang.replace("-", "_")}'
  lines += [
    '# Tuning task: the WIT rows of the language (seqio name <dataset>.<lang>).',
    f'wit.register_wit.languages = [{json.dumps(lang)}]',
    f'MIXTURE_OR_TASK_NAME = {json.dumps(task)}',
    '',
    '# Evaluation entries: add %' + f'{ident}_EVALUATIONS to evaluate.evaluations.',
    f'{scope}/evaluations.RetrievalEvaluation:',
    "  dataset = 'wit'",
    '  path = %WIT_EVAL_TSV_PATTERN',
    f'  languages = [{json.dumps(lang)}]',
  ]
  evs = [f'@{scope}/evaluations.RetrievalEvaluation()']
  if prompts:
    lines += [
      f'{scope}/evaluations.ZeroShotEvaluation:',
      '  images = %ZEROSHOT_IMAGES',
      f'  prompts = {json.dumps(prompts)}',
      f'  languages = [{json.dumps(lang)}]',
    ]
    evs.insert(0, f'@{scope}/evaluations.ZeroShotEvaluation()')
  lines += [f'{ident}_EVALUATIONS = [{", ".join(evs)}]', '']
  return '\n'.join(lines)


def cmd_gin(args) -> int:
  vocab_size = args.vocab_size
  if args.extension:
    with open(os.path.join(args.extension, 'extension.json'), encoding='utf-8') as f:
      ext = json.load(f)
    args.vocab = args.vocab or ext['vocabulary']
    args.checkpoint = args.checkpoint or ext['checkpoint']
    vocab_size = vocab_size or ext['embedding_rows'][1]
  text = gin_snippet(args.lang, args.vocab, args.checkpoint, vocab_size, args.prompts)
  if args.out:
    with open(args.out, 'w', encoding='utf-8') as f:
      f.write(text)
    print(f'wrote {args.out}', file=sys.stderr)
  else:
    sys.stdout.write(text)
  return 0


_EXAMPLE = """example:
  mlit add-language coverage --vocab=spm.model --lang=am am.txt
  mlit add-language extend-vocab --vocab=spm.model --checkpoint=ckpt --lang=am --texts am.txt \\
      --out=ext_am
  mlit add-language gin --lang=am --extension=ext_am --out=am.gin"""


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    prog='mlit add-language',
    description=__doc__.split('\n')[0],
    epilog=_EXAMPLE,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = p.add_subparsers(dest='step', required=True)

  c = sub.add_parser('coverage', help='1. vocabulary coverage of the language')
  c.add_argument('--vocab', required=True, help='SentencePiece .model of the model to extend')
  c.add_argument('--lang', required=True, help='code of the new language, e.g. am')
  c.add_argument('texts', nargs='+', help='plain text (all of the language) or TSV/JSONL')
  c.add_argument(
    '--max-len', type=int, default=16, help='tuning length in tokens incl. EOS (default 16)'
  )
  c.add_argument('--out', help='directory for coverage.{md,csv,json,png}')

  pr = sub.add_parser('prompts', help='2. translated or human prompts, with round-trip chrF')
  pr.add_argument('--lang', required=True, help='code of the new language, e.g. am')
  pr.add_argument('--english', required=True, help='prompt set file holding the English set')
  pr.add_argument(
    '--english-lang', default='en', help='language key of the English set in --english (en)'
  )
  pr.add_argument(
    '--backend',
    help="translation backend: 'apertium', 'command:<template>', "
    "'transformers:<dir>'; with --human only used for the round trip",
  )
  pr.add_argument('--human', help='prompt set file with human translations for --lang')
  pr.add_argument('--out', required=True, help='prompt set file to write (language added)')
  pr.add_argument('--quality', help='prompt_quality.json to update (default next to --out)')

  e = sub.add_parser('extend-vocab', help='3. new pieces + grown embedding checkpoint')
  e.add_argument('--vocab', required=True, help='current SentencePiece .model')
  e.add_argument('--checkpoint', required=True, help='T5X checkpoint (legacy or Orbax)')
  e.add_argument('--lang', required=True, help='code of the new language, e.g. am')
  e.add_argument(
    '--texts', nargs='+', required=True, help='text files of the language to learn pieces from'
  )
  e.add_argument(
    '--num-pieces', type=int, default=1000, help='new SentencePiece pieces to add (default 1000)'
  )
  e.add_argument('--pad-to', type=int, default=128, help='embedding rows multiple (T5X: 128)')
  e.add_argument(
    '--max-len', type=int, default=16, help='tuning length in tokens incl. EOS (default 16)'
  )
  e.add_argument(
    '--old-texts',
    nargs='*',
    help='texts of existing languages: report how many '
    'are tokenised differently after the extension',
  )
  e.add_argument('--out', required=True, help='output directory (vocabulary, checkpoint, report)')

  g = sub.add_parser('gin', help='4. gin snippet for tuning and evaluation')
  g.add_argument('--lang', required=True, help='code of the new language, e.g. am')
  g.add_argument('--extension', help='output directory of extend-vocab')
  g.add_argument('--vocab', help='SentencePiece .model (default: the one in --extension)')
  g.add_argument('--checkpoint', help='T5X checkpoint (default: the one in --extension)')
  g.add_argument('--vocab-size', type=int, help='embedding rows (default: from --extension)')
  g.add_argument('--prompts', help='prompt set file from the prompts step')
  g.add_argument('--out', help='gin file to write (default: stdout)')

  args = p.parse_args(argv)
  for attr in ('vocab', 'checkpoint', 'english', 'human'):
    path = getattr(args, attr, None)
    if path and args.step != 'gin' and not os.path.exists(path):
      raise SystemExit(f'mlit add-language {args.step}: --{attr} {path}: no such file')
  return {
    'coverage': cmd_coverage,
    'prompts': cmd_prompts,
    'extend-vocab': cmd_extend_vocab,
    'gin': cmd_gin,
  }[args.step](args)


if __name__ == '__main__':
  sys.exit(main())
