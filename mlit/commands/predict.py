"""`mlit predict`: zero-shot labels for images with a trained run, a ranked table per image.

  mlit predict --model runs/demo --image a.png b.png --labels "cat,dog" [--lang sw] [--top-k 5]
  mlit predict --model runs/demo --image a.png --labels-file names.txt   # one name per line

--labels splits at commas (also full-width '，'); names that hold commas go in --labels-file.

Labels are put in templates (default: the bare label, as the demo tunes on names). --templates
takes a template ('a photo of a {}.'), a prompt set file (JSON, eval_multilingual/prompts.py) or a
clip-benchmark set ('clip_benchmark/imagenet1k', 'clip_benchmark/babel_imagenet'); --lang picks
its language (--lang alone: Babel-ImageNet's templates in that language).
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'predict')  # `python -m`: the command, before the heavy imports

import argparse
import os
import sys

from mlit.inference import user_text
from tasks.user_error import UserError


def _check_unique(numbered: list[tuple[int, str]], where: str, unit: str) -> None:
  """(position, label) pairs: a label given twice would split its probability between the two
  copies."""
  first: dict[str, int] = {}
  for i, label in numbered:
    if label in first:
      raise UserError(
        f'{where}: {label!r} is given twice ({unit} {first[label]} and {i}); the probabilities '
        'are a softmax over the labels, so each label goes in once'
      )
    first[label] = i


def parse_labels(text: str) -> list[str]:
  """Comma-separated names (ASCII or full-width commas)."""
  labels = [s.strip() for s in text.replace('，', ',').split(',')]
  blank = [user_text.is_blank(label) for label in labels]  # zero-width characters look empty too
  if all(blank):
    raise UserError('--labels: empty label list (give e.g. --labels "cat,dog")')
  if any(blank):
    raise UserError(f'--labels: empty label in {text!r}')
  if len(labels) == 1 and os.path.isfile(text):
    raise UserError(
      f'--labels {text}: a file; give --labels-file {text} (one label per line) or the names '
      'themselves, comma-separated'
    )
  _check_unique(list(enumerate(labels, 1)), '--labels', 'labels')
  return labels


def read_labels_file(path: str) -> list[str]:
  """One label per line (names may hold commas); blank lines are skipped and counted."""
  try:
    with open(path, encoding='utf-8-sig') as f:  # a BOM (Notepad's UTF-8) is no part of a label
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f'--labels-file {path}: unreadable ({e})') from e
  numbered = [(n, line.strip()) for n, line in enumerate(lines, 1) if not user_text.is_blank(line)]
  labels = [label for _, label in numbered]
  if not labels:
    raise UserError(f'--labels-file {path}: no label (one per line)')
  _check_unique(numbered, f'--labels-file {path}', 'lines')
  if len(labels) < len(lines):
    print(
      f'mlit predict: --labels-file {path}: skipped {len(lines) - len(labels)} blank line(s)',
      file=sys.stderr,
    )
  return labels


# The prompt set --lang alone picks.
LANG_TEMPLATES = 'clip_benchmark/babel_imagenet'


def resolve_templates(templates: str | None, lang: str | None) -> list[str] | None:
  """--templates/--lang -> template strings (None: the bare label). --lang alone takes
  Babel-ImageNet's templates in that language (NLLB translations, 93 languages)."""
  if templates is None and lang is None:
    return None
  if templates is None:
    templates = LANG_TEMPLATES
  if '{}' in templates and not os.path.exists(templates):
    if lang is not None:
      raise UserError('--lang picks the language of a prompt set; --templates is one template')
    return [templates]
  if not templates.startswith('clip_benchmark/') and not os.path.isfile(templates):
    raise UserError(
      f"--templates {templates}: not a template (it needs '{{}}' where the label goes), a prompt "
      'set file, or clip_benchmark/imagenet1k | clip_benchmark/babel_imagenet'
    )
  from eval_multilingual import clip_benchmark_prompts, prompts  # pylint: disable=g-import-not-at-top

  if lang is None:
    raise UserError(f"--templates {templates}: give --lang (the prompt set's language)")
  if templates.startswith('clip_benchmark/'):
    try:
      return list(clip_benchmark_prompts.load(templates, lang).templates)
    except (KeyError, ImportError) as e:
      why = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
      raise UserError(f'--templates {templates} --lang {lang}: {why}') from e
  sets = prompts.load_prompt_file(templates)
  if lang not in sets:
    raise UserError(f'--templates {templates}: --lang must be one of {sorted(sets)}')
  return list(sets[lang].templates)


def _check_paths(paths: list[str]) -> None:
  """A missing path or a directory is a mistake in the command: one line, before the model
  loads. (A file that is not a readable image is skipped later, when it is decoded.)"""
  for p in paths:
    if os.path.isdir(p):
      raise UserError(f'--image {p}: a directory; give image files (e.g. {p}/*.png)')
    if not os.path.isfile(p):
      raise UserError(f'--image {p}: no such file')


def _embed(model, paths: list[str]):
  """(decoded paths, [N, D] embeddings, {reason: skipped paths}), a batch of files at a time
  (one batch of pixels in memory). Each file is decoded once, at the run's size; one that is not
  a readable image is skipped and named, as embed and search do, and the others are predicted."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from mlit.inference import preprocess  # pylint: disable=g-import-not-at-top

  kept, parts, skipped = [], [], {}
  batch = model.encoder.batch_size
  for start in range(0, len(paths), batch):
    pixels = []
    for p in paths[start : start + batch]:
      try:
        pixels.append(preprocess.load_images([p], model.image_size))
        kept.append(p)
      except UserError as e:
        skipped.setdefault(getattr(e, 'reason', UNREADABLE), []).append(p)
    if pixels:
      parts.append(model.encoder.embed_images(np.concatenate(pixels), 'image'))
  return kept, (np.concatenate(parts) if parts else None), skipped


UNREADABLE = 'not a readable image'


def _class_embeddings(model, labels: list[str], templates: list[str] | None):
  """model.class_embeddings, with its cut-text warning (which names positions in its internal
  list of label x template texts) replaced by a line naming the labels and templates given."""
  import warnings  # pylint: disable=g-import-not-at-top

  _say_cut_labels(model, labels, templates)
  with warnings.catch_warnings():
    warnings.filterwarnings('ignore', message='encode_text: .* were cut', category=UserWarning)
    return model.class_embeddings(labels, templates)


def _say_cut_labels(model, labels: list[str], templates: list[str] | None) -> None:
  forms = templates or ['{}']
  keep = model.text_length - 1  # and the end-of-text token
  cut = {}
  for label in labels:
    ids = model.encoder.tokenizer.encode([t.replace('{}', label) for t in forms])
    cut_in = [t for t, row in zip(forms, ids) if len(row) > keep]
    if cut_in:
      cut[label] = cut_in
  if not cut:
    return
  if templates is None:
    named = ', '.join(repr(label) for label in list(cut)[:10])
  else:
    named = ', '.join(
      f'{label!r} (in {len(ts)} of {len(forms)} templates, e.g. {ts[0]!r})'
      for label, ts in list(cut.items())[:10]
    )
  more = f' and {len(cut) - 10} more' if len(cut) > 10 else ''
  print(
    f"mlit predict: {len(cut)} of {len(labels)} labels are cut to the run's {model.text_length} "
    f'tokens (EOS included), as in training: {named}{more}',
    file=sys.stderr,
  )


def _probabilities(model, image_emb, weights):
  """model.classify's probabilities [N, C]: softmax of the logit scale times the cosines."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  emb = image_emb / np.maximum(np.linalg.norm(image_emb, axis=-1, keepdims=True), 1e-12)
  logits = model.logit_scale * (emb @ weights.T)
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  return p / p.sum(axis=1, keepdims=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    prog='mlit predict', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    '--model', required=True, help='the run: MODEL_DIR, its parent, or MODEL_DIR/checkpoints/<step>'
  )
  parser.add_argument('--image', nargs='+', required=True, help='image files')
  names = parser.add_mutually_exclusive_group(required=True)
  names.add_argument('--labels', help='comma-separated class names')
  names.add_argument('--labels-file', help='UTF-8 file, one class name per line')
  parser.add_argument('--templates', default=None, help='template, prompt file or set name')
  parser.add_argument('--lang', default=None, help="the prompt set's language")
  parser.add_argument('--top-k', type=int, default=5, help='labels shown per image (default 5)')
  args = parser.parse_args(argv)
  if args.top_k < 1:
    raise UserError(f'--top-k {args.top_k}: give 1 or more')
  labels = parse_labels(args.labels) if args.labels else read_labels_file(args.labels_file)
  templates = resolve_templates(args.templates, args.lang)
  if templates is not None and len(templates) > 1:  # say what the labels are put in
    source = args.templates or LANG_TEMPLATES
    print(
      f'mlit predict: each label in {len(templates)} templates of {source} ({args.lang}), e.g. '
      f'{templates[0]!r}; the labels go in as given (in that language, for its templates)',
      file=sys.stderr,
    )
  _check_paths(args.image)
  from mlit.inference import model as model_lib  # pylint: disable=g-import-not-at-top
  from mlit.inference import run_spec  # pylint: disable=g-import-not-at-top

  run_spec.find_model_dir(args.model)  # a missing run fails before anything loads
  model = model_lib.load(args.model)
  if model.image_size is None:
    model.encode_image([])  # raises the run's reason
  images, image_emb, skipped = _embed(model, args.image)
  if not images:
    raise UserError(
      f'--image: no readable image among {len(args.image)}: {", ".join(args.image[:10])}'
    )
  cli.print_skipped('predict', skipped)
  probs = _probabilities(model, image_emb, _class_embeddings(model, labels, templates))
  if len(labels) == 1:
    print(
      f'mlit predict: one label ({labels[0]!r}): its probability is 1 for every image, since '
      'they are a softmax over the labels given; give two or more',
      file=sys.stderr,
    )
  k = min(args.top_k, len(labels))
  width = max(user_text.display_width(s) for s in labels)  # CJK takes two columns
  for path, p in zip(images, probs):
    print(path)
    for rank, c in enumerate(p.argsort()[::-1][:k], 1):
      print(f'  {rank:>2}  {user_text.pad(labels[c], width)}  {p[c]:.3f}')
  sys.stdout.flush()
  return 0
