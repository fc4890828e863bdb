"""add_language_codes.normalize_lang: what `mlit add-language --lang` accepts, warns on, refuses."""

import pytest

from mlit.commands import add_language_codes as codes
from tasks.user_error import UserError


def _refusal(code: str) -> str:
  with pytest.raises(UserError) as e:
    codes.normalize_lang(code)
  assert len(str(e.value).splitlines()) == 1
  return str(e.value)


def test_private_use_code_keeps_its_case_and_is_noted(capsys):
  assert codes.normalize_lang('x-mine') == 'x-mine'
  assert capsys.readouterr().err == (
    "warning: --lang x-mine: a private-use code (x-..., qaa..qtz): mlit's language tables have "
    'no name for it\n'
  )
  assert codes.normalize_lang('qaa') == 'qaa'
  assert 'private-use' in capsys.readouterr().err


def test_single_letter_subtag_is_refused_naming_the_code():
  assert _refusal('ha_w') == (
    "--lang ha_w: 'w' is not a script (4 letters), region (2 letters or 3 digits) or variant "
    '(5-8 characters)'
  )
  assert _refusal('en-x').startswith("--lang en-x: 'x' is not a script")


def test_codes_the_tables_do_not_know_get_one_warning_line(capsys):
  assert codes.normalize_lang('haw') == 'haw'
  assert codes.normalize_lang('sgn') == 'sgn'
  err = capsys.readouterr().err.splitlines()
  assert err == [
    f"warning: --lang {c}: mlit's language tables have no name or script for '{c}': check that "
    'it is the ISO 639 code you mean'
    for c in ('haw', 'sgn')
  ]
  assert codes.normalize_lang('hawaiian') == 'hawaiian'
  assert capsys.readouterr().err == (
    "warning: --lang hawaiian: 'hawaiian' is not an ISO 639 code (2-3 letters): use the "
    "language's ISO 639 code\n"
  )
  codes.normalize_lang('Greek')
  assert "did you mean 'el' (Greek)?" in capsys.readouterr().err
  for known in ('el', 'sr_Latn', 'zh-TW', 'be-tarask', 'pt-br'):
    codes.normalize_lang(known)
  assert capsys.readouterr().err == ''


def test_words_are_refused_as_language_codes():
  assert _refusal('portuguese') == (
    "--lang portuguese: 'portuguese' is not a language code (2-3 letters, ISO 639): did you mean "
    "'pt' (Portuguese)?"
  )
  assert _refusal('hawaiianlang').endswith(": use the language's ISO 639 code")
