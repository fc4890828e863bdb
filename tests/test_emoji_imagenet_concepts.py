"""demo/eval_emoji.gin's three emoji-ImageNet evaluations share one build: the mapped concepts the
build lacks are reported once, not once per evaluation."""

import logging

from test_emoji_imagenet import _write_build

from eval_multilingual.datasets import emoji_imagenet


def test_concepts_missing_from_the_build_are_reported_once(tmp_path, caplog):
  _write_build(tmp_path)
  mapping = str(tmp_path / 'mapping.tsv')
  with caplog.at_level(logging.WARNING):
    for domain in ('noto_eval', 'noto_eval', 'noto_eval'):
      assert emoji_imagenet.EmojiImageNetImages(str(tmp_path), mapping, domain).n_not_in_build == 1
  assert caplog.text.count('mapped concepts are not in the emoji build') == 1
