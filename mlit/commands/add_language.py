"""`mlit add-language {coverage,prompts,extend-vocab,gin,run}`: bring a new language into mlit.

1. coverage      how the current vocabulary tokenises the language's texts
2. prompts       class names + templates in the language (machine-translated or human),
                 validated, with round-trip chrF and each template's round trip written to
                 prompt_quality.json; templates whose round trip drifts are flagged
3. extend-vocab  new SentencePiece pieces for the language appended to the vocabulary (none
                 that would change how a sample of each old language is segmented, unless
                 --allow-old-changes), the token embedding grown to match: reads an mlit run
                 (writes OUT/checkpoints/, for CONTINUE_FROM) or a T5X checkpoint (writes
                 OUT/checkpoint_0/, for INITIAL_CHECKPOINT_PATH)
4. gin           a gin file that continues the base run with the language added, on the
                 emoji/CLDR set or on WIT rows
5. run           steps 3-4, the continued tuning and the evaluation before and after, at once
                 (mlit/commands/add_language_run.py)
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'add-language')  # `python -m`: the command, before the heavy imports

import argparse
import collections
import gzip
import json
import os
import random
import sys

import numpy as np
import sentencepiece as spm

from eval_multilingual import coverage, languages
from mlit import run_layout
from mlit.commands import add_language_codes as codes
from mlit.language import gin_file, grown_run, vocab_extension
from tasks.user_error import UserError


class AddLanguageError(UserError):
  """Bad input to a step: printed as one line, exit code 2."""


def _skipped_text(skipped: dict) -> str:
  return ', '.join(f'{n:,} {reason.replace("_", " ")}' for reason, n in sorted(skipped.items()))


def read_language_texts(paths: list[str], lang: str, args=None) -> list[str]:
  """Texts of `lang`: TSV/JSONL rows whose language field is `lang`, every line of plain text.
  Rows skipped (no text field, empty, other languages) are counted on stderr."""
  fields = dict(text_field=getattr(args, 'text_field', None))
  texts, skipped, other, lines = [], {}, collections.Counter(), 0
  first_without_text = None  # (where, fields) of the first JSONL row without a text field
  for path in paths:
    name = path[:-3] if path.endswith('.gz') else path
    structured = name.endswith(('.tsv', '.jsonl', '.json'))
    if not structured:  # the plain reader drops blank lines without counting them
      opener = gzip.open if path.endswith('.gz') else open
      with opener(path, 'rt', encoding='utf-8', newline='') as f:
        for line in f:
          lines += 1
          if not line.strip():
            skipped['blank_lines'] = skipped.get('blank_lines', 0) + 1
    reader = coverage.InputReader(
      lang=None if structured else lang, lang_field=getattr(args, 'lang_field', None), **fields
    )
    try:
      pairs = list(reader.read(path))
    except ValueError as e:  # a named --text-field/--lang-field the file lacks
      raise AddLanguageError(str(e)) from e
    texts += [t for l, t in pairs if l == lang]
    other.update(l for l, _ in pairs if l != lang)
    for reason, n in reader.skipped.items():
      skipped[reason] = skipped.get(reason, 0) + n
    first_without_text = first_without_text or reader.first_without_text
  if other:
    skipped['rows_of_other_languages'] = sum(other.values())
  if not texts:
    why = f' ({_skipped_text(skipped)})' if skipped else ''
    text_from = (
      f'the field --text-field {fields["text_field"]!r}'
      if fields['text_field']
      else f'a field named one of {coverage.TEXT_FIELDS} (--text-field names another)'
    )
    lang_field = getattr(args, 'lang_field', None)
    lang_from = (
      f'--lang-field {lang_field!r}'
      if lang_field
      else f'one of {coverage.LANG_FIELDS} (--lang-field)'
    )
    hint = (
      f'; texts are read from {text_from} and languages from {lang_from}'
      if skipped.get('no_text_field') or other
      else ''
    )
    if first_without_text:
      where, keys = first_without_text
      hint += f'; the first row without a text, {where}, has fields {", ".join(keys) or "(none)"}'
    found = (
      '; the languages there: ' + ', '.join(f'{k} {n:,}' for k, n in other.most_common(5))
      if other
      else ''
    )
    raise AddLanguageError(f'no texts of language {lang!r} in {", ".join(paths)}{why}{found}{hint}')
  duplicates = len(texts) - len(set(texts))
  read = f'{lines:,} lines read, ' if lines else ''
  dup = f', {duplicates:,} of them duplicates (kept: frequency counts)' if duplicates else ''
  if skipped or duplicates:
    skip = f'; skipped {_skipped_text(skipped)}' if skipped else ''
    print(f'{lang} texts: {read}{len(texts):,} texts{dup}{skip}', file=sys.stderr)
  mismatch = codes.script_mismatch(lang, texts)
  if mismatch:
    print(f'warning: {mismatch}', file=sys.stderr)
  return texts


def _sample(texts: list[str], n: int, seed: int = 0) -> list[str]:
  texts = sorted(set(texts))
  return random.Random(seed).sample(texts, n) if len(texts) > n else texts


def new_and_old_texts(args) -> tuple[list[str], dict[str, list[str]]]:
  """The new language's texts and a sample of each old language's (--emoji-data or files)."""
  if args.emoji_data:
    if args.texts or args.old_texts:
      raise AddLanguageError(
        "--emoji-data gives both the new and the old languages' texts: drop --texts/--old-texts, "
        'or drop --emoji-data to use the files'
      )
    from tasks.emoji_cldr import data as emoji_data  # pylint: disable=g-import-not-at-top
    from tasks.emoji_cldr import vocab as emoji_vocab  # pylint: disable=g-import-not-at-top

    build = emoji_data.load(args.emoji_data).languages
    if args.lang not in build:
      raise AddLanguageError(f'--emoji-data {args.emoji_data}: no language {args.lang!r} built')
    # Tuning concepts only: held-out names stay unseen by the tokenizer, as in the base run.
    texts = emoji_vocab.tuning_texts(args.emoji_data, [args.lang])
    old = {
      lang: _sample(emoji_vocab.tuning_texts(args.emoji_data, [lang]), args.old_sample)
      for lang in build
      if lang != args.lang
    }
    return texts, old
  if not args.texts:
    raise AddLanguageError('give --texts FILE... or --emoji-data DIR')
  texts = read_language_texts(args.texts, args.lang, args)
  old: dict[str, list[str]] = {}
  for path in args.old_texts or []:
    reader = coverage.InputReader(lang_field=args.lang_field, text_field=args.text_field)
    try:
      pairs = [(lang, text) for lang, text in reader.read(path) if lang != args.lang]
    except ValueError as e:
      raise AddLanguageError(f'--old-texts: {e}') from e
    if not pairs:
      why = f' ({_skipped_text(reader.skipped)})' if reader.skipped else ''
      raise AddLanguageError(
        f'--old-texts {path}: no text of another language than {args.lang}{why}; texts are read '
        f'from a field named one of {coverage.TEXT_FIELDS} (--text-field) and languages from one '
        f'of {coverage.LANG_FIELDS} (--lang-field) or detected'
      )
    for lang, text in pairs:
      old.setdefault(lang, []).append(text)
  return texts, {lang: _sample(t, args.old_sample) for lang, t in old.items()}


def cmd_coverage(args) -> int:
  sp = coverage.load_sentencepiece(args.vocab)
  texts = read_language_texts(args.texts, args.lang, args)
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


def _piece_report_lines(lang: str, texts: list[str], r: dict, old_checked: bool) -> list[str]:
  distinct = len(set(texts))
  n = f'{len(texts)} {lang} texts' + (f' ({distinct} distinct)' if distinct != len(texts) else '')
  lines = [
    f'pieces: requested {r["requested"]}, added {r["added"]}. The {n} gave a '
    f'SentencePiece model of {r["trained_model_pieces"]} pieces: {r["already_in_vocabulary"]} '
    f'already in the vocabulary, {r["special_pieces"]} special (control, byte, lone "▁"), '
    f'{r["new_candidates"]} new.'
  ]
  if r['excluded_changing_old_languages']:
    lines.append(
      f'  {r["excluded_changing_old_languages"]} new pieces would change how old languages are '
      f'segmented and were left out (--allow-old-changes keeps them), e.g. '
      + ', '.join(repr(p) for p in r['excluded_pieces'][:8])
    )
  if r['not_added']:
    # Fewer new pieces than requested is the texts' doing; the rest are the left-out ones.
    from_texts = min(r['not_added'], max(0, r['requested'] - r['new_candidates']))
    reasons = []
    if r['not_added'] > from_texts:
      reasons.append(f'{r["not_added"] - from_texts} for the pieces left out above')
    if from_texts:
      reasons.append(
        f'{from_texts} because the texts offer no more new pieces (SentencePiece keeps no '
        'piece below its frequency floor; more texts give more pieces)'
      )
    lines.append(f'  {r["not_added"]} not added: ' + '; '.join(reasons))
  changed, changed_all = r['old_language_changed'], r['old_language_changed_if_all_added']
  sizes = r['old_language_texts']
  if sizes:
    share = {k: changed[k] / max(1, sizes[k]) for k in sizes}
    share_all = {k: changed_all[k] / max(1, sizes[k]) for k in sizes}
    worst = sorted(share, key=share.get, reverse=True)[:3]
    worst_all = sorted(share_all, key=share_all.get, reverse=True)[:3]
    lines.append(
      f'old languages: {sum(v > 0 for v in changed.values())} of {len(sizes)} have texts whose '
      f'ids change (sample of up to {max(sizes.values())} texts each; highest: '
      + ', '.join(f'{k} {100 * share[k]:.1f}%' for k in worst)
      + '); with the first pieces tried: '
      + ', '.join(f'{k} {100 * share_all[k]:.1f}%' for k in worst_all)
    )
  elif not old_checked:
    lines.append(
      'old languages: not checked (no --old-texts): a new piece may change how their texts are '
      "segmented; give --old-texts FILE... (TSV/JSONL texts of the base run's languages) to "
      'leave such pieces out'
    )
  return lines


def _run_spec(checkpoint: str) -> tuple[str, dict | None]:
  """(MODEL_DIR, its mlit_model.json or None) of an mlit run given as MODEL_DIR or checkpoints/."""
  from mlit.inference import run_spec  # pylint: disable=g-import-not-at-top

  model_dir = run_layout.model_dir_of(checkpoint)
  if not os.path.isfile(os.path.join(model_dir, run_spec.FILENAME)):
    return model_dir, None
  return model_dir, run_spec.read(model_dir)


def check_vocab_is_the_runs(vocab: str, checkpoint: str) -> None:
  """An mlit run records the vocabulary it was tuned with (mlit_model.json, sha256): another
  one would point every old language's ids at the wrong embedding rows."""
  from tasks import file_io  # pylint: disable=g-import-not-at-top

  model_dir, spec = _run_spec(checkpoint)
  if spec is None:
    print(
      f'warning: --checkpoint {checkpoint} has no mlit_model.json (a checkpoint grown by an older mlit, or a run '
      f'older than it): that --vocab {vocab} is the vocabulary it was tuned with is not checked',
      file=sys.stderr,
    )
    return
  recorded = spec.get('vocabulary')
  if recorded is None:
    raise AddLanguageError(
      f'--checkpoint {checkpoint}: the run was tuned on token ids, no vocabulary'
    )
  if file_io.file_sha256(vocab) != recorded['sha256']:
    raise AddLanguageError(
      f'--vocab {vocab} is not the vocabulary the run at --checkpoint {checkpoint} was tuned with '
      f'(its copy: {os.path.join(model_dir, recorded["file"])}, from {recorded.get("source")}); '
      'give that file as --vocab'
    )


def tuned_languages(checkpoint: str) -> dict[str, int]:
  """{language: examples} the mlit run at `checkpoint` was tuned on (its language_stats.json;
  {} when it has none)."""
  model_dir = _run_spec(checkpoint)[0]
  try:
    with open(run_layout.language_stats(model_dir), encoding='utf-8') as f:
      stats = json.load(f)
  except (OSError, ValueError):
    return {}
  if not isinstance(stats, dict):
    return {}
  counts = {k: int(v.get('n_train_examples', 0)) for k, v in stats.items() if isinstance(v, dict)}
  return {k: n for k, n in counts.items() if n > 0}


def remove_empty_dirs(root: str) -> None:
  """Removes `root` and the directories under it that a failed step left empty."""
  if not os.path.isdir(root):
    return
  for d, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
    if not os.listdir(d):
      os.rmdir(d)


def cmd_extend_vocab(args) -> int:
  if os.path.exists(args.out) and os.listdir(args.out):
    raise AddLanguageError(f'--out {args.out} exists and is not empty: choose another --out')
  existed = os.path.exists(args.out)
  try:
    return _extend_vocab(args)
  finally:  # a failure leaves no empty --out (a later run would find it in the way)
    if not existed:
      remove_empty_dirs(args.out)


def _extend_vocab(args) -> int:
  coverage.load_sentencepiece(args.vocab)  # one line on a file that is not a vocabulary
  if grown_run.is_mlit_run(args.checkpoint):
    check_vocab_is_the_runs(args.vocab, args.checkpoint)
    tuned = tuned_languages(args.checkpoint).get(args.lang, 0)
    if tuned:
      print(
        f'warning: --lang {args.lang}: the base run at --checkpoint {args.checkpoint} was already '
        f'tuned on {args.lang} ({tuned:,} examples, {run_layout.LANGUAGE_STATS}): its pieces are '
        'added anyway; extend-vocab is for a language the run lacks',
        file=sys.stderr,
      )
  if args.max_len is None:  # the run's own text length; T5X checkpoints do not record one
    spec = _run_spec(args.checkpoint)[1] if grown_run.is_mlit_run(args.checkpoint) else None
    args.max_len = spec['text_length'] if spec else 16
  old = vocab_extension.load_proto(args.vocab)
  texts, old_texts = new_and_old_texts(args)
  try:
    ext = vocab_extension.extend(old, texts, args.num_pieces, old_texts, args.allow_old_changes)
  except ValueError as e:
    raise AddLanguageError(str(e)) from e
  os.makedirs(args.out, exist_ok=True)
  vocab_path = os.path.abspath(os.path.join(args.out, 'sentencepiece.model'))
  if grown_run.is_mlit_run(args.checkpoint):
    grown = grown_run.grow_run(args.checkpoint, ext, args.out, args.pad_to)
    kind, ckpt_dir, ckpt_root, rows = 'mlit', grown['checkpoint'], os.path.abspath(args.out), None
    rows = grown['rows']
  else:
    from mlit.checkpoints import t5x as t5x_checkpoint  # pylint: disable=g-import-not-at-top

    flat = t5x_checkpoint.read_t5x_checkpoint(
      args.checkpoint, include=r'^(token_embedder|encoder)/'
    )
    if vocab_extension.EMBEDDING_KEY not in flat:
      raise AddLanguageError(f'{args.checkpoint}: no {vocab_extension.EMBEDDING_KEY} in it')
    emb = np.asarray(flat[vocab_extension.EMBEDDING_KEY])
    flat[vocab_extension.EMBEDDING_KEY] = vocab_extension.grow_embedding(
      emb, ext.old_vocab_size, ext.tokenisations, args.pad_to
    )
    ckpt_dir = vocab_extension.save_t5x_orbax(flat, args.out)
    kind, ckpt_root = 't5x', ckpt_dir
    rows = [int(emb.shape[0]), int(flat[vocab_extension.EMBEDDING_KEY].shape[0])]
  with open(vocab_path, 'wb') as f:
    f.write(ext.proto.SerializeToString())
  if kind == 'mlit':  # the grown model loads, predicts and evaluates as a run does
    grown_run.write_model_spec(
      run_layout.model_dir_of(args.checkpoint), os.path.abspath(args.out), vocab_path, rows[1]
    )

  old_sp = spm.SentencePieceProcessor(model_file=args.vocab)
  new_sp = spm.SentencePieceProcessor(model_file=vocab_path)
  pairs = [(args.lang, t) for t in texts]
  before = coverage.coverage(old_sp, pairs, args.max_len)[args.lang]
  after = coverage.coverage(new_sp, pairs, args.max_len)[args.lang]
  summary = {
    'language': args.lang,
    'old_vocab': os.path.abspath(args.vocab),
    'old_checkpoint': os.path.abspath(args.checkpoint),
    'checkpoint_kind': kind,
    'old_vocab_size': ext.old_vocab_size,
    'new_vocab_size': len(ext.proto.pieces),
    'new_pieces': len(ext.pieces),
    'pieces': ext.report,
    'embedding_rows': rows,
    'first_new_pieces': [p for p, _ in ext.pieces[:20]],
    'coverage_before': before,
    'coverage_after': after,
    'vocabulary': vocab_path,
    'checkpoint': ckpt_dir,
    'checkpoint_root': ckpt_root,
  }
  with open(os.path.join(args.out, 'extension.json'), 'w', encoding='utf-8') as f:
    json.dump(summary, f, ensure_ascii=False, indent=1)
  old_checked = bool(args.emoji_data or args.old_texts)
  for line in _piece_report_lines(args.lang, texts, ext.report, old_checked):
    print(line)
  print(
    f'vocabulary {ext.old_vocab_size} -> {len(ext.proto.pieces)} pieces; embedding rows '
    f'{rows[0]} -> {rows[1]}; {args.lang} byte-fallback share '
    f'{100 * before["byte_fallback_share"]:.1f}% -> {100 * after["byte_fallback_share"]:.1f}%'
    f', tokens/{after["unit"]} {before["tokens_per_unit"]:.2f} -> {after["tokens_per_unit"]:.2f}'
    ' (measured on the texts the pieces were trained on)'
  )
  if kind == 'mlit':
    print(
      f'vocabulary: {vocab_path}\ncheckpoint: {ckpt_dir}  (mlit run state; continue it with '
      f'CONTINUE_FROM = {ckpt_root!r} and text_tower.T5Config.vocab_size = {rows[1]}: '
      '`mlit add-language gin` writes that file)'
    )
  else:
    print(
      f'vocabulary: {vocab_path}\ncheckpoint: {ckpt_dir}  (T5X Orbax layout; pass as '
      f'INITIAL_CHECKPOINT_PATH with setups/LU.gin and text_tower.T5Config.vocab_size = {rows[1]})'
    )
  return 0


def _base_config(run: str) -> str:
  path = run_layout.config(run)
  if not os.path.isfile(path):
    raise AddLanguageError(f"--base-run {run}: no config.gin (give the base run's MODEL_DIR)")
  with open(path, encoding='utf-8') as f:
    return f.read()


def cmd_gin(args) -> int:
  path = os.path.join(args.extension, 'extension.json')
  if not os.path.isfile(path):
    raise AddLanguageError(f'--extension {args.extension}: no extension.json (run extend-vocab)')
  with open(path, encoding='utf-8') as f:
    ext = json.load(f)
  if ext.get('checkpoint_kind') != 'mlit':
    raise AddLanguageError(
      f'--extension {args.extension} grew a T5X checkpoint: continuing needs an mlit run '
      '(extend-vocab --checkpoint MODEL_DIR); a T5X text tower starts a new LU run instead '
      '(INITIAL_CHECKPOINT_PATH with setups/LU.gin)'
    )
  if ext['language'] != args.lang:
    raise AddLanguageError(
      f'--extension {args.extension} is for {ext["language"]}, not {args.lang}'
    )
  base_run = run_layout.model_dir_of(args.base_run or ext['old_checkpoint'])
  grown_from = run_layout.model_dir_of(ext['old_checkpoint'])
  if args.base_run and os.path.realpath(base_run) != os.path.realpath(grown_from):
    print(
      f'warning: --base-run {args.base_run} is not the run the extension grew '
      f"({grown_from}, extension.json's old_checkpoint): this file takes its config.gin with "
      "the other run's weights",
      file=sys.stderr,
    )
  wit = None
  if args.wit_train or args.wit_images:
    wit = {'train': args.wit_train, 'images': args.wit_images}
  try:
    text, warnings = gin_file.write(
      lang=args.lang,
      language_name=languages.lookup(args.lang).name,
      base_config=_base_config(base_run),
      base_run=base_run,
      extension=ext,
      model_dir=os.path.abspath(args.model_dir),
      steps=args.steps,
      warmup=args.warmup,
      repeat=args.repeat,
      wit=wit,
      base_languages=tuned_languages(base_run),
    )
  except gin_file.GinFileError as e:
    raise AddLanguageError(str(e)) from e
  for w in warnings:
    print(f'warning: {w}', file=sys.stderr)
  if args.out:
    with open(args.out, 'w', encoding='utf-8') as f:
      f.write(text)
    print(f'wrote {args.out}; train with: mlit train --gin_file={args.out}')
  else:
    sys.stdout.write(text)
  return 0


def _load_or(path: str, default: dict) -> dict:
  if not os.path.exists(path):
    return default
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _write_json(path: str, data: dict) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(data, f, ensure_ascii=False, indent=1)


def _add_prompt_language(path: str, lang: str, entry: dict, name: str, num_classes: int) -> None:
  """Adds (or replaces) one language of a prompt set file, creating the file if needed."""
  data = _load_or(path, {'name': name, 'num_classes': num_classes, 'languages': {}})
  if data.get('num_classes') != num_classes:
    raise AddLanguageError(
      f'{path}: num_classes {data.get("num_classes")} differs from the English set ({num_classes})'
    )
  data.setdefault('languages', {})[lang] = entry
  _write_json(path, data)


def check_backend_pair(backend, lang: str, forward: bool) -> None:
  """Before any work: the backend translates en -> lang (if `forward`) and lang -> en."""
  from mlit.translation import backends  # pylint: disable=g-import-not-at-top

  if not isinstance(backend, backends.ApertiumBackend):
    return  # other backends report an unsupported pair on their first call
  import shutil  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top

  if shutil.which(backend.executable) is None:
    raise AddLanguageError(
      f'--backend apertium: `{backend.executable}` is not installed (apt-get install apertium '
      f'apertium-eng-{backend.code(lang)} or the pair package covering en and {lang})'
    )
  proc = subprocess.run([backend.executable, '-l'], capture_output=True, text=True, check=False)
  modes = sorted(proc.stdout.split())
  pairs = ([('en', lang)] if forward else []) + [(lang, 'en')]
  missing = [f'{backend.code(a)}-{backend.code(b)}' for a, b in pairs if not backend.supports(a, b)]
  if missing:
    raise AddLanguageError(
      f'--backend apertium has no mode {" or ".join(missing)} for {lang}; installed modes: '
      f'{", ".join(modes) or "none"}'
    )


def cmd_prompts(args) -> int:
  from eval_multilingual import prompt_translation  # pylint: disable=g-import-not-at-top
  from eval_multilingual import prompts as prompts_lib  # pylint: disable=g-import-not-at-top
  from mlit.translation import backends as translation_backends  # pylint: disable=g-import-not-at-top

  if not args.backend and not args.human:
    raise AddLanguageError('give --backend (machine translation) and/or --human FILE')
  if not 0 <= args.drift_chrf <= 100:
    raise AddLanguageError(f'--drift-chrf {args.drift_chrf:g}: chrF is 0 to 100')
  english_sets = prompts_lib.load_prompt_file(args.english)
  if args.english_lang not in english_sets:
    raise AddLanguageError(
      f'{args.english}: no language {args.english_lang!r} (has {sorted(english_sets)})'
    )
  english = english_sets[args.english_lang]
  qpath = args.quality or os.path.join(
    os.path.dirname(os.path.abspath(args.out)), run_layout.PROMPT_QUALITY
  )
  previous = _load_or(qpath, {}).get(args.lang, {})
  if not args.human and previous.get('source') == 'human':
    raise AddLanguageError(
      f'{args.out} has a human translation of {args.lang} ({qpath}): a machine translation does '
      'not replace it (give --human FILE again, or remove the language from both files)'
    )
  try:
    backend = translation_backends.make_backend(args.backend) if args.backend else None
  except ValueError as e:
    raise AddLanguageError(str(e)) from e
  if backend:
    check_backend_pair(backend, args.lang, forward=not args.human)
  dropped = []
  if args.human:
    human = prompts_lib.load_prompt_file(args.human)
    if args.lang not in human:
      raise AddLanguageError(f'{args.human}: no language {args.lang!r} (has {sorted(human)})')
    ps = human[args.lang]
    quality = (
      prompt_translation.round_trip_quality(backend, args.lang, english, ps) if backend else None
    )
  else:
    try:
      t = prompt_translation.translate_prompt_set(backend, english, args.lang, english.name)
    except ValueError as e:  # e.g. no template kept its class slot: nothing usable to write
      raise AddLanguageError(f'--backend {args.backend}: {e}') from e
    ps, dropped, quality = t.prompt_set, t.dropped_templates, t.quality
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
  source = 'human' if args.human else 'machine'
  print(
    f'wrote {len(ps.classes)} classes, {len(ps.templates)} templates ({source}) for {args.lang} '
    f'to {args.out}'
  )
  record = {'source': source}
  if quality is not None:
    quality['dropped_templates'] = len(dropped)
    drifted = [r for r in quality['round_trip_templates'] if r['chrf'] < args.drift_chrf]
    quality['drifted_templates'] = len(drifted)
    record.update(quality)
    print(
      f'round-trip chrF {quality["chrf"]:.1f} (classes {quality["chrf_classes"]:.1f}, '
      f"templates {quality['chrf_templates']:.1f}); each template's round trip (check the "
      'middle column: a wrong word that translates back unchanged keeps chrF 100):'
    )
    for r in quality['round_trip_templates']:
      flag = 'DRIFT' if r['chrf'] < args.drift_chrf else 'ok'
      print(
        f'  {flag:5} chrF {r["chrf"]:5.1f}  {r["english"]!r} -> {r["template"]!r} -> {r["back"]!r}'
      )
    if drifted:
      what = 'a human file is kept as given' if args.human else 'a --human FILE always wins'
      print(
        f'{len(drifted)} template(s) drift (round-trip chrF < {args.drift_chrf}): check them '
        f'({what})'
      )
  _write_json(qpath, {**_load_or(qpath, {}), args.lang: record})
  print(f'quality and round trips -> {qpath}')
  return 0


# After `make demo` and the README's run that leaves Sinhala out (runs/add_si/train, tuned
# without si texts or si pieces in runs/add_si/spm.model); the texts are the demo's CLDR names.
_STEP_EXAMPLES = {
  'coverage': 'mlit add-language coverage --vocab runs/add_si/spm.model --lang si '
  '--text-field name runs/demo/data/texts/si.jsonl',
  'prompts': 'mlit add-language prompts --lang oc --english en_prompts.json --backend apertium '
  '--out prompts.json\n  (en_prompts.json: a prompt set file with an "en" entry, see '
  'eval_multilingual/prompts.py)',
  'extend-vocab': 'mlit add-language extend-vocab --vocab runs/add_si/spm.model --checkpoint '
  'runs/add_si/train --lang si \\\n      --emoji-data runs/demo/data --out runs/add_si/ext',
  'gin': 'mlit add-language gin --lang si --extension runs/add_si/ext --model-dir '
  'runs/add_si/cont --out runs/add_si/si.gin',
  'run': 'mlit add-language run --vocab runs/add_si/spm.model --checkpoint runs/add_si/train '
  '--lang si \\\n      --emoji-data runs/demo/data --num-pieces 1000 --steps 300 --warmup 30 '
  '--repeat 10 \\\n      --eval-gin demo/eval_emoji_zeroshot.gin --out runs/add_si/add',
}

_EXAMPLE = (
  "examples (after make demo and the README's run leaving Sinhala out, runs/add_si):\n  "
  + _STEP_EXAMPLES['coverage']
  + '\n  '
  + _STEP_EXAMPLES['run']
)


def _step_parser(sub, name: str, summary: str):
  return sub.add_parser(
    name,
    help=summary,
    description=summary,
    epilog=f'example:\n  {_STEP_EXAMPLES[name]}',
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog='mlit add-language',
    description=__doc__.split('\n')[0],
    epilog=_EXAMPLE,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = p.add_subparsers(dest='step', required=True)

  c = _step_parser(sub, 'coverage', '1. vocabulary coverage of the language')
  c.add_argument('--vocab', required=True, help='SentencePiece .model of the model to extend')
  c.add_argument('--lang', required=True, help='code of the new language, e.g. am')
  c.add_argument('texts', nargs='+', help='plain text (all of the language) or TSV/JSONL')
  c.add_argument(
    '--text-field',
    help=f'text field/column of TSV/JSONL texts (default: first of {coverage.TEXT_FIELDS})',
  )
  c.add_argument(
    '--lang-field',
    help=f'language field/column of TSV/JSONL texts (default: first of {coverage.LANG_FIELDS})',
  )
  c.add_argument(
    '--max-len',
    type=int,
    default=16,
    help="the model's text length in tokens incl. EOS, for the truncated share (default 16; a "
    "run's is text_length in MODEL_DIR/mlit_model.json)",
  )
  c.add_argument('--out', help='directory for coverage.{md,csv,json,png}')

  pr = _step_parser(sub, 'prompts', '2. translated or human prompts, with round-trip chrF')
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
  pr.add_argument('--human', help='prompt set file with human translations for --lang (wins)')
  pr.add_argument('--out', required=True, help='prompt set file to write (language added)')
  pr.add_argument('--quality', help='prompt_quality.json to update (default next to --out)')
  pr.add_argument(
    '--drift-chrf',
    type=float,
    default=60.0,
    help='flag templates whose round-trip chrF is below this (default 60)',
  )

  e = _step_parser(sub, 'extend-vocab', '3. new pieces + grown embedding checkpoint')
  add_extend_args(e)
  e.add_argument('--out', required=True, help='output directory (vocabulary, checkpoint, report)')

  g = _step_parser(sub, 'gin', '4. gin file continuing the base run with the language')
  g.add_argument('--lang', required=True, help='code of the new language, e.g. am')
  add_gin_args(g)
  g.add_argument('--extension', required=True, help='output directory of extend-vocab')
  g.add_argument('--base-run', help="MODEL_DIR of the base run (default: extend-vocab's)")
  g.add_argument('--model-dir', required=True, help='MODEL_DIR of the continued run')
  g.add_argument('--out', help='gin file to write (default: stdout)')

  r = _step_parser(
    sub, 'run', '3-4, tuning and evaluation before/after, in one go (each step printed first)'
  )
  add_extend_args(r)
  add_gin_args(r)
  r.add_argument('--out', required=True, help="directory for every step's output")
  r.add_argument(
    '--eval-gin',
    default='demo/eval_emoji.gin',
    help='evaluation gin file (default demo/eval_emoji.gin)',
  )
  r.add_argument(
    '--eval-binding',
    action='append',
    help='NAME=VALUE gin binding for every evaluation, e.g. "EVAL_IMAGE_TOWER_KIND=\'vit\'" for a '
    'base run whose config predates a macro the evaluation file uses',
  )

  return p


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  for attr in ('vocab', 'checkpoint', 'english', 'human', 'emoji_data'):
    path = getattr(args, attr, None)
    if path and not os.path.exists(path):
      print(
        f'mlit add-language {args.step}: error: --{attr.replace("_", "-")} {path}: no such file',
        file=sys.stderr,
      )
      return 2
  for attr in ('texts', 'old_texts'):  # coverage's positional texts, extend-vocab's and run's flags
    for path in getattr(args, attr, None) or []:
      if not os.path.exists(path):
        flag = 'texts' if args.step == 'coverage' else f'--{attr.replace("_", "-")}'
        print(f'mlit add-language {args.step}: error: {flag} {path}: no such file', file=sys.stderr)
        return 2
  steps = {
    'coverage': cmd_coverage,
    'prompts': cmd_prompts,
    'extend-vocab': cmd_extend_vocab,
    'gin': cmd_gin,
  }
  try:
    check_common_args(args)
    if args.step == 'run':
      from mlit.commands import add_language_run  # pylint: disable=g-import-not-at-top

      try:
        return add_language_run.run(args)
      except UserError as e:  # the run's own checks (inputs, an earlier run's steps)
        raise AddLanguageError(str(e)) from e
    return steps[args.step](args)
  except AddLanguageError as e:
    print(f'mlit add-language {args.step}: error: {e}', file=sys.stderr)
    return 2


def resolve_checkpoint(path: str) -> str:
  """--checkpoint as given, or the MODEL_DIR inside a run root that holds train/ (as `mlit demo`
  makes it, and as predict, export and mlit.load accept it)."""
  if grown_run.is_mlit_run(path) or os.path.isfile(os.path.join(path, 'checkpoint')):
    return path
  inner = os.path.join(path, 'train')
  if grown_run.is_mlit_run(inner):
    print(f'--checkpoint {path}: the run in {inner}', file=sys.stderr)
    return inner
  return path


def check_common_args(args) -> None:
  """Flags every step shares, before any work: the language code, --checkpoint, --num-pieces,
  and gin's and run's --steps, --warmup and --repeat."""
  if getattr(args, 'lang', None) is not None:
    try:
      lang = codes.normalize_lang(args.lang)
    except UserError as e:
      raise AddLanguageError(str(e)) from e
    if lang != args.lang:
      print(
        f'--lang {args.lang}: written {lang!r} (the one spelling of mlit data)', file=sys.stderr
      )
    args.lang = lang
  if getattr(args, 'checkpoint', None):
    args.checkpoint = resolve_checkpoint(args.checkpoint)
  if getattr(args, 'num_pieces', None) is not None and args.num_pieces < 1:
    raise AddLanguageError(f'--num-pieces {args.num_pieces}: the minimum is 1 (pieces to add)')
  if getattr(args, 'steps', None) is not None:  # gin and run: checked before the gin is written
    for flag in ('steps', 'repeat'):
      if getattr(args, flag) < 1:
        raise AddLanguageError(f'--{flag} {getattr(args, flag)}: the minimum is 1')
    if not 0 <= args.warmup < args.steps:  # as mlit train's optimizer takes them
      raise AddLanguageError(f'--warmup {args.warmup}: 0 to --steps - 1 ({args.steps - 1})')


def add_extend_args(e) -> None:
  e.add_argument('--vocab', required=True, help="the base run's SentencePiece .model")
  e.add_argument(
    '--checkpoint', required=True, help='mlit run (MODEL_DIR or its checkpoints/) or T5X checkpoint'
  )
  e.add_argument('--lang', required=True, help='code of the new language, e.g. am')
  e.add_argument('--texts', nargs='+', help='texts of the language (plain, TSV or JSONL)')
  e.add_argument(
    '--emoji-data', help="built emoji/CLDR set: its tuning texts, and the other languages' as old"
  )
  e.add_argument(
    '--num-pieces', type=int, default=1000, help='new SentencePiece pieces to add (default 1000)'
  )
  e.add_argument(
    '--pad-to', type=int, default=128, help='embedding rows multiple (default 128, as T5X)'
  )
  e.add_argument(
    '--max-len',
    type=int,
    default=None,
    help="the model's text length in tokens incl. EOS, for the truncated share (default: an mlit "
    "run's text_length, 16 for a T5X checkpoint)",
  )
  e.add_argument(
    '--text-field',
    help=f'text field/column of TSV/JSONL texts (default: first of {coverage.TEXT_FIELDS})',
  )
  e.add_argument(
    '--lang-field',
    help=f'language field/column of TSV/JSONL texts (default: first of {coverage.LANG_FIELDS})',
  )
  e.add_argument(
    '--old-texts',
    nargs='*',
    help='TSV/JSONL texts of existing languages (with --texts): pieces that change their ids '
    'are left out, and the share that changes is reported per language',
  )
  e.add_argument(
    '--old-sample', type=int, default=300, help='texts sampled per old language (default 300)'
  )
  e.add_argument(
    '--allow-old-changes',
    action='store_true',
    help="keep pieces that change old languages' segmentation (their share is reported)",
  )


def add_gin_args(g) -> None:
  g.add_argument(
    '--steps', type=int, default=200, help='TRAIN_STEPS of the continued run (default 200)'
  )
  g.add_argument(
    '--warmup', type=int, default=20, help='WARMUP_STEPS of the continued run (default 20)'
  )
  g.add_argument(
    '--repeat',
    type=int,
    default=8,
    help="times the new language's pairs count against the others' (emoji/CLDR pairs, or WIT "
    'rows with --wit-train; default 8)',
  )
  g.add_argument(
    '--wit-train',
    help='WIT TSV pattern: tune on WIT rows instead, those of every language in them (needs a '
    'base run with a live locked image tower)',
  )
  g.add_argument('--wit-images', help='directory of the WIT images (with --wit-train)')
