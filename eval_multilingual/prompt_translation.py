"""Prompt sets for a new language: machine-translated or human, validated, with round-trip chrF.

Templates carry a '{}' slot for the class name; a translator would translate or drop it, so it is
replaced by a sentinel word before translation and put back after. Templates whose sentinel did
not survive are dropped and counted. Quality is the chrF (sacrebleu) of the round trip
English -> language -> English against the English originals, per templates and class names.
"""

import dataclasses

import sacrebleu

from eval_multilingual import prompts as prompts_lib

SENTINEL = 'Zorblax'  # an invented word translators pass through unchanged


@dataclasses.dataclass
class Translated:
  prompt_set: prompts_lib.PromptSet
  dropped_templates: list[str]
  quality: dict


def translate_names(backend, names: list[str], source: str, target: str) -> list[str]:
  """Translates class names; a capital the translator added to a lower-case name is removed."""
  out = backend.translate([n.strip() for n in names], source, target)
  fixed = []
  for orig, t in zip(names, out):
    t = t.strip()
    if t and orig[:1].islower() and t[:1].isupper():
      t = t[0].lower() + t[1:]
    fixed.append(t)
  return fixed


def _fill_slot(templates):
  return [t.replace(prompts_lib.PLACEHOLDER, SENTINEL) for t in templates]


def _restore_slot(lines):
  kept, dropped = [], []
  for line in lines:
    n = line.count(SENTINEL)
    if n == 1:
      kept.append(line.replace(SENTINEL, prompts_lib.PLACEHOLDER))
    else:
      dropped.append(line)
  return kept, dropped


def round_trip_quality(
  backend, lang: str, english: prompts_lib.PromptSet, target: prompts_lib.PromptSet
) -> dict:
  """chrF of target -> English against the English originals (templates, classes, all)."""
  en_classes = [c[0] for c in english.classes]
  tgt_classes = [c[0] for c in target.classes]
  if len(en_classes) != len(tgt_classes):
    raise ValueError(f'{lang}: {len(tgt_classes)} class names vs {len(en_classes)} in English')
  back_classes = translate_names(backend, tgt_classes, lang, 'en')
  # Templates may have been dropped, so score each back-translated template against every
  # English template (the best match) rather than by position.
  back_templates = backend.translate(_fill_slot(target.templates), lang, 'en')
  en_templates = _fill_slot(english.templates)
  best = []
  for b in back_templates:
    best.append(max(en_templates, key=lambda e, b=b: sacrebleu.sentence_chrf(b, [e]).score))
  hyp = back_classes + back_templates
  ref = en_classes + best
  # Each template's round trip, for a person to check: a wrong word that translates back to the
  # original ('a picture of' -> 'un quadre' (a painting) -> 'a picture of') keeps chrF 100.
  rows = [
    {
      'template': t,
      'back': b.replace(SENTINEL, prompts_lib.PLACEHOLDER),
      'english': e.replace(SENTINEL, prompts_lib.PLACEHOLDER),
      'chrf': sacrebleu.sentence_chrf(b, [e]).score,
    }
    for t, b, e in zip(target.templates, back_templates, best)
  ]
  return {
    'round_trip_templates': rows,
    'chrf': sacrebleu.corpus_chrf(hyp, [ref]).score,
    'chrf_classes': sacrebleu.corpus_chrf(back_classes, [en_classes]).score,
    'chrf_templates': sacrebleu.corpus_chrf(back_templates, [best]).score,
    'n_classes': len(en_classes),
    'n_templates': len(back_templates),
    'backend': getattr(backend, 'name', type(backend).__name__),
  }


def translate_prompt_set(
  backend, english: prompts_lib.PromptSet, lang: str, name: str
) -> Translated:
  """English PromptSet -> validated PromptSet in `lang` plus round-trip quality."""
  classes = [list(aliases) for aliases in english.classes]
  flat = [a for aliases in classes for a in aliases]
  out = translate_names(backend, flat, 'en', lang)
  it = iter(out)
  translated_classes = [[next(it) for _ in aliases] for aliases in classes]
  templates, dropped = _restore_slot(backend.translate(_fill_slot(english.templates), 'en', lang))
  if not templates:
    raise ValueError(
      f'{lang}: no template kept its class slot after translation '
      f'({len(dropped)} dropped), e.g. {dropped[:2]}'
    )
  ps = prompts_lib.make_prompt_set(
    name,
    lang,
    translated_classes,
    templates,
    english.num_classes,
    list(english.class_indices) if english.class_indices else None,
    source=f'<translated by {getattr(backend, "name", "backend")}>',
  )
  return Translated(ps, dropped, round_trip_quality(backend, lang, english, ps))
