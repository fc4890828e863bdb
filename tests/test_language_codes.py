"""tasks.language_codes: one spelling of a language code for data, eval and reports."""

import json

from eval_multilingual import report_data
from tasks import langid, language_codes


def test_normalize_rule():
  assert language_codes.normalize('ZH-tw') == 'zh-TW'
  assert language_codes.normalize('zh-cn') == 'zh'  # Simplified (mainland) is plain 'zh'
  assert language_codes.normalize('zh_hant') == 'zh-Hant'
  assert language_codes.normalize('pt-br') == 'pt-BR'
  assert language_codes.normalize('be-TARASK') == 'be-tarask'
  assert language_codes.normalize('iw') == 'iw'  # WIT's code is kept, not modernised
  for empty in (None, '', '  ', '-_'):
    assert language_codes.normalize(empty) == language_codes.UNDETERMINED
  assert language_codes.task_name_part('zh-TW') == 'zh_TW'


def test_training_data_keeps_traditional_chinese_apart():
  assert langid.detect_language('我們在公園裡散步，天氣非常晴朗，孩子們開心地玩耍') == 'zh-TW'
  assert langid.detect_language('我们在公园里散步，天气非常晴朗，孩子们开心地玩耍') == 'zh'


def test_report_joins_side_files_across_spellings(tmp_path):
  results = {'languages': {'zh-TW': {'t': {'acc1': 0.5}}, 'zh': {'t': {'acc1': 0.6}}}}
  (tmp_path / 'results.json').write_text(json.dumps(results))
  stats = {'zh_tw': {'n_train_examples': 7}, 'zh-cn': {'n_train_examples': 9}}
  (tmp_path / 'language_stats.json').write_text(json.dumps(stats))
  run = report_data.load_run(str(tmp_path))
  assert report_data.n_tuning_examples(run, 'zh-TW') == 7
  assert report_data.n_tuning_examples(run, 'zh') == 9


def test_subtags_after_a_singleton_are_no_script_or_region():
  assert language_codes.normalize('x-mine') == 'x-mine'  # not 'x-Mine' (a script)
  assert language_codes.normalize('en-x-abcd-us') == 'en-x-abcd-us'
  assert language_codes.normalize('de_u_co_PHONEBK') == 'de-u-co-phonebk'
  assert language_codes.normalize('sr_latn_x_test') == 'sr-Latn-x-test'
  assert language_codes.is_private_use('x-mine') and language_codes.is_private_use('qtz')
  assert not language_codes.is_private_use('qu') and not language_codes.is_private_use('qua')


def test_data_codes_of_any_shape_still_normalize_while_check_tag_says_why():
  # Data pipelines normalize whatever a data file holds; only a typed code is checked.
  assert language_codes.normalize('ha_w') == 'ha-w'
  assert language_codes.check_tag('ha_w') == (
    "'w' is not a script (4 letters), region (2 letters or 3 digits) or variant (5-8 characters)"
  )
  assert "'hawaiianlang' is not a language code" in language_codes.check_tag('hawaiianlang')
  assert "'x' is not a script" in language_codes.check_tag('en-x')
  for ok in ('x-mine', 'en-x-a', 'sr_Latn', 'es-419', 'be-tarask', 'zh-yue', 'de-u-co-phonebk'):
    assert language_codes.check_tag(ok) is None, ok
