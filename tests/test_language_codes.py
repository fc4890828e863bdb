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
