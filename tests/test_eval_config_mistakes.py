"""An evaluation's own `languages` binding (eval/*.gin, demo/eval_emoji.gin): a list or 'de,en',
each code checked against the evaluation's data; and XM3600-format files of your own read in
every language they hold."""

import json

import pytest

from eval_multilingual import evaluations
from eval_multilingual.datasets import xm3600
from tasks.user_error import UserError


def _captions(tmp_path, languages=('de', 'ja', 'rm')) -> str:
  """Three images; Romansh (not one of XM3600's 36) on every one, the others on the first two."""
  path = tmp_path / 'captions.jsonl'
  lines = []
  for i in range(3):
    row = {'image/key': f'k{i}', 'image/locale': 'de'}
    row.update({l: {'caption': [f'{l} {i}']} for l in languages if l == 'rm' or i < 2})
    lines.append(json.dumps(row))
  path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
  (tmp_path / 'images').mkdir(exist_ok=True)
  return str(path)


def _retrieval(tmp_path, languages):
  return evaluations.RetrievalEvaluation(
    'xm3600', _captions(tmp_path), image_dir=str(tmp_path / 'images'), languages=languages
  )


def test_a_code_the_data_lacks_is_named_with_a_suggestion(tmp_path):
  with pytest.raises(UserError) as e:
    _retrieval(tmp_path, ['de', 'jp']).languages()
  assert str(e.value) == (
    f"xm3600/retrieval languages: no texts in {tmp_path}/captions.jsonl for 'jp' (did you mean "
    "'ja'?); available: de, ja, rm"
  )


def test_a_comma_separated_string_is_a_list_of_codes(tmp_path):
  assert _retrieval(tmp_path, 'de, rm').languages() == ['de', 'rm']
  with pytest.raises(UserError, match='languages is empty'):
    _retrieval(tmp_path, ' , ').languages()


def test_zero_shot_languages_the_prompts_lack_are_one_line(tmp_path):
  prompts = tmp_path / 'prompts.json'
  entry = {'classes': ['a', 'b'], 'templates': ['{}']}
  prompts.write_text(json.dumps({'name': 'mine', 'num_classes': 2, 'languages': {'de': entry}}))
  ev = evaluations.ZeroShotEvaluation(None, str(prompts), languages=['de', 'iw'])
  with pytest.raises(UserError, match=r"for 'iw'; available: de$"):
    ev.languages()
  assert evaluations.ZeroShotEvaluation(None, str(prompts), languages='de').languages() == ['de']


def test_own_captions_keep_languages_beyond_xm3600s(tmp_path):
  pairs, counts = xm3600.read_xm3600(_captions(tmp_path))
  assert 'rm' not in xm3600.LANGUAGES
  assert sorted(pairs) == ['de', 'ja', 'rm'] and not counts
  assert pairs['rm'].texts == ['rm 0', 'rm 1', 'rm 2'] and not pairs['rm'].skipped
  assert pairs['de'].image_keys == ['k0', 'k1'] and dict(pairs['de'].skipped) == {'no_caption': 1}


def test_retrieval_config_mistakes_are_user_errors(tmp_path):
  with pytest.raises(UserError, match="RetrievalEvaluation.dataset 'wiki'"):
    evaluations.RetrievalEvaluation('wiki', 'x', image_dir=str(tmp_path))
  from eval_multilingual.datasets import wit

  with pytest.raises(UserError, match="text_fields: 'caption' is not a WIT column"):
    wit.read_wit(str(tmp_path / 'none-*.tsv'), text_fields=['caption'])


@pytest.mark.parametrize('binding', [{'max_pairs': 0}, {'image_size': 0}, {'image_size': 22.5}])
def test_sizes_that_leave_nothing_to_score_are_one_line(tmp_path, binding):
  """WIT_MAX_PAIRS=0 ended in 'no evaluation has any language to run', EVAL_IMAGE_SIZE=0 in every
  image reported undecodable and an empty result, exit 0."""
  (tmp_path / 'images').mkdir()
  with pytest.raises(UserError, match='WIT_MAX_PAIRS|EVAL_IMAGE_SIZE'):
    evaluations.RetrievalEvaluation('wit', 'x', image_dir=str(tmp_path / 'images'), **binding)
