"""Emoji -> ImageNet mapping file and the translated-ImageNet-prompt evaluation on emoji renders."""

import json
import os

import numpy as np
import pytest
from spm_fixture import spm_model_path  # noqa: F401

from eval_multilingual import clip_benchmark_prompts, encoders
from eval_multilingual.datasets import emoji_imagenet
from tasks.emoji_cldr import emoji_list, sources


def test_mapping_matches_imagenet_classes_and_the_emoji_list():
  rows = emoji_imagenet.read_mapping()
  assert len(rows) >= 150
  names = clip_benchmark_prompts.imagenet_prompt_set('en').classes
  for r in rows:  # every id is an ImageNet class, named as clip-benchmark names it
    assert names[r.imagenet_id][0] == r.imagenet_name, r
  test = emoji_list.parse_emoji_test(sources.find_input('emoji_test'))
  by_codepoints = {' '.join(f'{c:04X}' for c in e.codepoints): e for e in test.emoji}
  for r in rows:  # every concept is an emoji of the build's list, under its English name
    assert by_codepoints[r.codepoints].english == r.english, r


def test_malformed_mapping_line_names_the_line(tmp_path):
  path = tmp_path / 'm.tsv'
  path.write_text('# header\n1F34C\tbanana\t954\tbanana\n1F34B\tlemon\t1000\tlemon\n')
  with pytest.raises(emoji_imagenet.MappingError, match=r'm.tsv:3: imagenet_id'):
    emoji_imagenet.read_mapping(str(path))


# (codepoints, English name, ImageNet id, split): 'soft ice cream' is held out but its class holds
# the tuned 'ice cream', so it is not zero-shot.
CONCEPTS = [
  ('1F34C', 'banana', 954, 'heldout'),
  ('1F34B', 'lemon', 951, 'heldout'),
  ('1F355', 'pizza', 963, 'heldout'),
  ('1F366', 'soft ice cream', 928, 'heldout'),
  ('1F368', 'ice cream', 928, 'tuning'),
  ('1F69C', 'tractor', 866, 'tuning'),
  ('1F353', 'strawberry', 949, 'tuning'),
]


def _write_build(root):
  os.makedirs(root / 'texts')
  with open(root / 'concepts.jsonl', 'w', encoding='utf-8') as f:
    for i, (cp, english, _, split) in enumerate(CONCEPTS):
      row = {'index': i, 'codepoints': cp.split(), 'english': english, 'split': split}
      f.write(json.dumps(row) + '\n')
  rng = np.random.default_rng(0)
  np.save(root / 'noto_eval.npy', rng.integers(0, 256, (len(CONCEPTS), 16, 16, 3), np.uint8))
  (root / 'subgroups.json').write_text('[]')
  (root / 'manifest.json').write_text(json.dumps({'languages': {'en': {}}}))
  with open(root / 'mapping.tsv', 'w', encoding='utf-8') as f:
    for cp, english, cid, _ in CONCEPTS:
      f.write(f'{cp}\t{english}\t{cid}\tx\n')
    f.write('1F34D\tpineapple\t953\tpineapple\n')  # not in this build: counted, not fatal


def test_evaluation_numbers_recomputed_with_numpy(tmp_path, spm_model_path):  # noqa: F811
  from mlit.models import text_tower, two_tower

  _write_build(tmp_path)
  model = two_tower.TwoTower(
    text=text_tower.T5Config(
      vocab_size=512, emb_dim=16, num_heads=2, num_encoder_layers=1, head_dim=8, mlp_dim=32
    ),
    out_dim=8,
    image=dict(width=16, depth=1, mlp_dim=32, num_heads=2, patch_size=(8, 8)),
    image_head=True,
  )
  params = encoders.init_params(model, 16, seed=1)
  enc = encoders.TwoTowerEncoder(model, params, encoders.Tokenizer(spm_model_path, 16), 64)
  mapping = str(tmp_path / 'mapping.tsv')
  held = emoji_imagenet.EmojiImageNetEvaluation(
    str(tmp_path), clip_benchmark_prompts.IMAGENET, 'heldout', ['en'], mapping
  )
  tuned = emoji_imagenet.EmojiImageNetEvaluation(
    str(tmp_path), clip_benchmark_prompts.IMAGENET, 'tuning', None, mapping
  )
  assert held.key == 'emoji_imagenet1k_heldout/zeroshot_classification'
  assert held.source.n_not_in_build == 1
  np.testing.assert_array_equal(held.mask, [True, True, True, False, False, False, False])
  assert held.languages() == ['en'] and 'ja' in tuned.languages()
  for ev in (held, tuned):
    metrics, meta = ev.run(enc, 'en')
    assert meta['n_concepts'] == ev.mask.sum() == meta['n_examples']
    assert meta['n_classes'] == 6 and meta['text']['n_texts'] == 6 * 80
    # Plain NumPy: prompt-ensembled class weights, cosine logits, ties against the model.
    ps = ev.prompt_set('en')
    assert sorted(ps.labels) == [866, 928, 949, 951, 954, 963]
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    w = unit(np.stack([unit(enc.embed_texts(ps.prompts(c)[0])).mean(0) for c in range(6)]))
    img = unit(
      enc.embed_images(np.asarray(ev.source.images[ev.mask], np.float32) / 127.5 - 1, 'image')
    )
    logits = img @ w.T
    y = np.array([list(ps.labels).index(l) for l in ev.source.labels[ev.mask]])
    own = logits[np.arange(len(y)), y]
    rank = (logits >= own[:, None]).sum(1) - 1
    assert metrics['acc1'] == pytest.approx(float(np.mean(rank < 1)), abs=0)
    assert metrics['acc5'] == pytest.approx(float(np.mean(rank < 5)), abs=0)
