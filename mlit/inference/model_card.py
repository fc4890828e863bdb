"""README.md of an exported text tower: what it is, how to use it, its data and evaluation."""

import json
import os

from mlit import run_layout

USAGE = """```python
import json, torch, transformers
from safetensors.torch import load_file

d = 'THIS_DIR'
tok = transformers.AutoTokenizer.from_pretrained(d)
enc = transformers.{cls}.from_pretrained(d).eval()
head = json.load(open(f'{{d}}/text_head.json'))
proj = load_file(f'{{d}}/text_projection.safetensors')
batch = tok(['a photo of a dog'], padding='max_length', truncation=True,
            max_length=head['max_length'], return_tensors='pt')
with torch.no_grad():
  hidden = enc(**batch).last_hidden_state
mask = batch['attention_mask'][..., None].float()
pooled = (hidden * mask).sum(1) / mask.sum(1)           # pooling 'mean'
emb = torch.nn.functional.normalize(pooled @ proj['weight'].T + proj['bias'], dim=-1)
```

The tokenizer (`tokenizer.json`, a fast tokenizer built from `spiece.model`) gives the ids the
model was tuned on: SentencePiece's ids, cut to `max_length - 1`, then EOS (1), then PAD (0).
Characters the vocabulary lacks become their UTF-8 byte pieces (`<0xE6>`...), as in
SentencePiece's byte fallback, and special-token text such as `</s>` is read as characters
(when the vocabulary has each of them). It differs from SentencePiece only where `tokenizers`
normalizes a text differently (some runs of combining marks, decomposed (NFD) text, conjoining
Hangul jamo, halfwidth kana with sound marks), i.e. where
`tok.backend_tokenizer.normalizer.normalize_str(text)` differs from
`sentencepiece.SentencePieceProcessor(model_file=...).normalize(text)`; for exact ids on such
text encode with `spiece.model` itself (`.encode(text)`, then cut, EOS and PAD as above).
"""


def _read_json(path):
  if os.path.isfile(path):
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  return None


def text(model, class_name: str, head: dict) -> str:
  """model: mlit.inference.model.Model; head: text_head.write's content."""
  root = os.path.dirname(model.model_dir)
  cfg = model.encoder.model.text
  lines = [
    '# mlit text tower',
    '',
    f'The text tower of an mlit (multilingual LiT) run, tuned against a locked image tower: '
    f'{"an" if class_name.startswith("M") else "a"} {class_name} ({cfg.num_encoder_layers} '
    f'layer{"" if cfg.num_encoder_layers == 1 else "s"}, width {cfg.emb_dim}, vocabulary '
    f'{cfg.vocab_size}) with its {head["pooling"]} pooling and linear head to '
    f'{head["out_features"]} dimensions, L2-normalised.',
    '',
    f'- run: step {model.step}, fingerprint `{model.fingerprint}`',
    f'- tuning task: `{model.spec.get("task")}`; texts of at most {head["max_length"]} tokens',
  ]
  stats = _read_json(run_layout.language_stats(model.model_dir)) or _read_json(
    run_layout.language_stats(root)
  )
  if stats:
    lines.append(f'- languages ({len(stats)}): ' + ', '.join(sorted(stats)))
  lines += ['', '## Use', '', USAGE.format(cls=class_name), '## Evaluation', '']
  results = _read_json(run_layout.results(root)) or _read_json(run_layout.results(model.model_dir))
  if results and results.get('macro'):
    lines += [
      'Mean over languages (`results.json` of the run):',
      '',
      '| task | metric | value |',
      '|---|---|---|',
    ]
    for key, metrics in sorted(results['macro'].items()):
      for name, value in sorted(metrics.items()):
        shown = f'{value:.4f}' if isinstance(value, float) else str(value)
        lines.append(f'| {key} | {name} | {shown} |')
  else:
    lines.append('No results.json found beside the run (run `mlit eval` on it).')
  return '\n'.join(lines) + '\n'
