"""Truncation/collision statistics at the model's text length, and the cross-lingual per-class
error analysis built from per-class zero-shot results."""

import numpy as np
import seqio
from spm_fixture import spm_model_path  # noqa: F401

from eval_multilingual import encoders, error_analysis, text_stats, zeroshot
from eval_multilingual import prompts as prompts_lib


def _prompt_set(names, templates=('{}',), labels=None):
  return prompts_lib.make_prompt_set(
    'toy', 'xx', names, list(templates), 10, class_indices=labels or list(range(len(names)))
  )


def test_collisions_and_truncation_at_the_text_length(spm_model_path):  # noqa: F811
  names = ['sunset over the sea', 'sunset over the city', 'dog', 'cat']
  ps = _prompt_set(names, labels=[3, 5, 7, 9])
  short = encoders.Tokenizer(spm_model_path, length=3)
  ids = short(names)
  assert (ids[0] == ids[1]).all() and not (ids[0] == ids[2]).all()  # the case under test
  stats, groups, per_class = text_stats.class_text_stats(short, ps)
  assert stats['n_classes_collided'] == 2 and stats['n_collision_groups'] == 1
  assert stats['collision_examples'] == [names[:2]]
  assert groups[0] == groups[1] and len(set(groups.tolist())) == 3
  assert per_class['3']['collides_with'] == [5] and per_class['7']['collides_with'] == []
  assert per_class['3']['truncated'] and per_class['3']['tokens'] > 3
  vocab = seqio.SentencePieceVocabulary(spm_model_path)
  n_long = sum(len(vocab.encode(n)) + 1 > 3 for n in names)
  assert stats['names_truncated_share'] == n_long / 4
  long = encoders.Tokenizer(spm_model_path, length=16)
  stats, groups, _ = text_stats.class_text_stats(long, ps)
  assert stats['n_classes_collided'] == 0 and stats['names_truncated_share'] == 0
  # Templates multiply the texts: every text is counted.
  stats, _, _ = text_stats.class_text_stats(short, _prompt_set(names, ('{}', 'a {} here')))
  assert stats['n_texts'] == 8
  caps = text_stats.caption_text_stats(short, names + ['dog'])
  assert caps['n_texts_collided'] == 2 and caps['n_texts'] == 5


def test_collided_classes_score_wrong_raw_and_right_merged(spm_model_path):  # noqa: F811
  names = ['sunset over the sea', 'sunset over the city', 'dog', 'cat']
  ps = _prompt_set(names)

  class Encoder:  # a deterministic text embedding of the token ids: collided ids, same row
    tokenizer = encoders.Tokenizer(spm_model_path, length=3)

    def __call__(self, texts):
      ids = self.tokenizer(texts).astype(np.float32)
      return np.concatenate([ids, np.sin(ids.sum(1, keepdims=True))], axis=1)

  enc = Encoder()
  weights = zeroshot.classifier_weights(enc, ps)
  image_emb = weights.copy()  # each class's image is its own text embedding
  metrics, meta = zeroshot.evaluate_language(enc, ps, image_emb, np.arange(4), weights)
  assert metrics['acc1'] == 0.5  # the two collided classes tie: counted wrong
  assert meta['collisions_merged']['acc1'] == 1.0
  assert meta['text']['n_classes_collided'] == 2
  assert meta['per_class']['0']['confused_with'] == 1
  assert meta['per_class']['0']['collides_with'] == [1]


def _row(name, acc1, confused=None, tokens=2, truncated=False, collides=()):
  return {
    'name': name,
    'acc1': acc1,
    'n_images': 1,
    'confused_with': confused,
    'tokens': tokens,
    'truncated': truncated,
    'collides_with': list(collides),
  }


def test_language_gaps_both_directions():
  key = 'toy/zeroshot_classification'
  per_class = {
    (key, 'en'): {
      '0': _row('banana', 1.0),
      '1': _row('lemon', 1.0),
      '2': _row('pizza', 0.0, confused=0),
      '3': _row('tractor', 1.0),
    },
    (key, 'de'): {
      '0': _row('Banane', 0.0, confused=1, tokens=3),
      '1': _row('Zitrone', 0.0, confused=0, tokens=9, truncated=True, collides=[3]),
      '2': _row('Pizza', 1.0),
      '3': _row('Traktor', 1.0),
    },
    (key, 'fr'): None,  # a language without per-class rows is skipped
  }
  data = error_analysis.analyse(per_class, top_k=5)
  gaps = data['tasks'][key]['gaps']['de']
  assert gaps['n_classes'] == 4
  assert gaps['n_english_right_language_wrong'] == 2
  worse = gaps['english_right_language_wrong']
  # Equal gaps: the collided, truncated name first.
  assert [e['label'] for e in worse] == ['1', '0']
  assert worse[0]['name_en'] == 'lemon' and worse[0]['name'] == 'Zitrone'
  assert worse[0]['confused_with'] == 0 and worse[0]['confused_with_name'] == 'Banane'
  assert worse[0]['collides_with'] == [3] and worse[0]['truncated'] is True
  assert worse[0]['collides_with_names'] == ['Traktor']
  better = gaps['language_right_english_wrong']
  assert [e['label'] for e in better] == ['2'] and better[0]['acc1_en'] == 0.0
  assert set(data['tasks'][key]['classes']['0']) == {'en', 'de'}


def test_report_blocks_show_collisions_errors_and_emoji_imagenet(tmp_path):
  from eval_multilingual import report_doc, report_error_analysis, run

  key = 'toy/zeroshot_classification'
  per_class = {
    (key, 'en'): {'0': _row('lemon', 1.0), '1': _row('banana', 1.0)},
    (key, 'de'): {'0': _row('Zitrone', 0.0, confused=1, collides=[1]), '1': _row('Banane', 0.0)},
  }
  run._write_json(str(tmp_path / error_analysis.FILENAME), error_analysis.analyse(per_class))
  text = {'text_length': 8, 'names_truncated_share': 0.5, 'texts_truncated_share': 0.5,
          'n_classes_collided': 2, 'collision_examples': [['Zitrone', 'Banane']]}  # fmt: skip
  ik = 'emoji_babel_imagenet_heldout/zeroshot_classification'
  results = {
    'languages': {'de': {key: {'acc1': 0.0}, ik: {'acc1': 0.25, 'acc5': 1.0}}},
    'meta': {
      'de': {
        key: {'n_examples': 2, 'text': text, 'collisions_merged': {'acc1': 1.0}},
        ik: {'n_examples': 4, 'n_classes': 6},
      }
    },
  }
  md = report_doc.markdown('t', report_error_analysis.blocks(str(tmp_path), results))
  assert '| de | 2 | 8 | 50.0 | 50.0 | 2 | 0.0 | 100.0 | Zitrone / Banane |' in md
  assert '| de | lemon | Zitrone | 2/2 | | Banane | Banane |' in md.replace('|  |', '| |')
  assert '| de | 4 | 6 | 25.0 | 100.0 |' in md


def test_tokenizer_batch_equals_one_text_at_a_time(spm_model_path):  # noqa: F811
  # The batched path (one SentencePiece call, vectorised padding) against the definition:
  # ids cut to length - 1, sticky EOS, PAD 0; empty, short, exact-fit and long texts.
  tok = encoders.Tokenizer(spm_model_path, length=5)
  vocab = seqio.SentencePieceVocabulary(spm_model_path)  # the reference, one text at a time
  texts = ['', 'a', 'hello world', 'the quick brown fox jumps over the lazy dog', 'ñandú 😀', ' ']
  got = tok(texts)
  assert got.shape == (len(texts), 5) and got.dtype == np.int32
  for row, text in zip(got, texts):
    ids = list(vocab.encode(text))[:4] + [tok.eos_id]
    assert list(row) == ids + [0] * (5 - len(ids)), text
  assert tok([]).shape == (0, 5)
  assert [list(i) for i in tok.encode(texts)] == [list(vocab.encode(t)) for t in texts]


def test_equal_prompt_sets_share_statistics_but_not_objects(spm_model_path):  # noqa: F811
  # Held-out and tuning evaluations build equal prompt sets: the second is served from the
  # first's statistics, as a copy its caller may change.
  tok = encoders.Tokenizer(spm_model_path, length=3)
  names = ['sunset over the sea', 'sunset over the city', 'dog']
  first = text_stats.class_text_stats(tok, _prompt_set(names))
  first[0]['n_texts'] = -1
  first[2]['0']['collides_with'].append(99)
  second = text_stats.class_text_stats(tok, _prompt_set(names))
  assert second[0]['n_texts'] == 3 and second[2]['0']['collides_with'] == [1]
  assert (first[1] == second[1]).all() and first[1] is not second[1]
  other = text_stats.class_text_stats(tok, _prompt_set(names[:2]))  # a different set
  assert other[0]['n_texts'] == 2
