"""The languages a user chooses for an evaluation: `run.evaluate.languages` or an evaluation's own
`languages` binding, as a list or a comma-separated string ('de,en'). A code no evaluation has is
an error naming it, with the code it was probably meant as: never a language silently left out."""

from typing import Sequence

from tasks.language_codes import check_languages
from tasks.user_error import UserError


def parse(languages, where: str) -> list[str] | None:
  """None (every language) or the chosen codes; a string is split at commas (a bare string
  would otherwise be read letter by letter)."""
  if languages is None:
    return None
  if isinstance(languages, str):
    languages = [c.strip() for c in languages.split(',') if c.strip()]
  languages = list(languages)
  if not languages:
    raise UserError(
      f'{where} is empty: nothing to evaluate (leave it unbound, None, for every language '
      'the evaluations have)'
    )
  return languages


def chosen(languages, available: Sequence[str], key: str, source: str) -> list[str]:
  """An evaluation's languages: all of `available` when `languages` (its binding) is None, else
  the codes given, each checked against `available`. `key` names the evaluation and `source`
  its data in the error ('no prompts in X for')."""
  codes = parse(languages, f'{key} languages')
  if codes is None:
    return list(available)
  check_languages(codes, set(available), f'{key} languages', source)
  return codes
