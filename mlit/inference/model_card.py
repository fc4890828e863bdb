"""README.md of an exported text tower: what it is, how to use it, its data and evaluation."""

import json
import os
import re
import sys

from mlit import run_layout
from tasks.user_error import UserError

# The step in an evaluated model's name: 'mlit:runs/mine@60+efficientnet_lite:...'.
_STEP = re.compile(r'@(\d+)(?:\+|$)')

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


def evaluated_step(results: dict) -> int | None:
  """The checkpoint step an `mlit eval` results.json scored, from its model name."""
  model = results.get('model')
  m = _STEP.search(str(model.get('name', ''))) if isinstance(model, dict) else None
  return int(m.group(1)) if m else None


def read_results(path: str, model) -> tuple[dict, str]:
  """(results, file) of `mlit export --results PATH` (an `mlit eval` RUN_DIR or its
  results.json), refused in one line unless it scored this export's step."""
  file = path if path.endswith('.json') else run_layout.results(path)
  try:
    with open(file, encoding='utf-8') as f:
      results = json.load(f)
  except OSError as e:
    raise UserError(f'--results {path}: cannot read {file} ({e.strerror})') from e
  except ValueError as e:
    raise UserError(f'--results {path}: {file} is not JSON ({e})') from e
  if not isinstance(results, dict) or not isinstance(results.get('macro'), dict):
    raise UserError(
      f'--results {path}: {file} has no macro scores: not an `mlit eval` results.json'
    )
  step = evaluated_step(results)
  if step != model.step:
    name = (
      (results.get('model') or {}).get('name') if isinstance(results.get('model'), dict) else None
    )
    raise UserError(
      f'--results {path}: {file} scored {name or "a model it does not name"}'
      + (f' (step {step})' if step is not None else '')
      + f', not step {model.step} of {model.model_dir} that this export writes: run `mlit eval` '
      'on that step, or export the step it scored (--model MODEL_DIR/checkpoints/STEP)'
    )
  return results, file


def _shared_texts_lines(results: dict) -> list[str]:
  """Per retrieval task whose texts include strings that caption several images: R@1 both ways
  with each such text counted for each of its images (eval meta shared_texts_merged), averaged
  over the languages like the table (a language without shared texts counts as scored)."""
  out = []
  meta = results.get('meta') if isinstance(results.get('meta'), dict) else {}
  for key in sorted(results['macro']):
    per_lang = {
      lang: (m.get(key) or {})
      for lang, m in meta.items()
      if isinstance(m, dict) and isinstance(m.get(key), dict)
    }
    shared = [lang for lang, m in per_lang.items() if m.get('shared_texts_merged')]
    if not shared:
      continue
    means = {}
    for metric in ('image_retrieval_recall@1', 'text_retrieval_recall@1'):
      values = [
        (per_lang[lang].get('shared_texts_merged') or {}).get(metric)
        if lang in shared
        else (results.get('languages', {}).get(lang, {}).get(key) or {}).get(metric)
        for lang in per_lang
      ]
      values = [v for v in values if isinstance(v, (int, float))]
      if values:
        means[metric] = sum(values) / len(values)
    shown = ', '.join(f'{k} {v:.4f}' for k, v in means.items())
    out += [
      '',
      f'{key}: in {len(shared)} of {len(per_lang)} languages some texts caption several images; '
      'a string ties with itself for each of its images, and ties count against the model. With '
      f'each such text counted as a caption of each of its images: {shown}.',
    ]
  return out


def text(model, class_name: str, head: dict, results: tuple[dict, str] | None = None) -> str:
  """model: mlit.inference.model.Model; head: text_head.write's content; results: read_results'
  (results, file), else a results.json beside the run of the same step is used."""
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
  note = None
  if results is None:
    for file in (run_layout.results(root), run_layout.results(model.model_dir)):
      try:
        found = _read_json(file)
      except ValueError as e:  # a damaged file: the export goes on without its scores
        note = 'The results.json beside the run is not JSON: left out.'
        print(
          f'mlit export: warning: {file} is not JSON ({e}): the model card has no evaluation',
          file=sys.stderr,
        )
        break
      if isinstance(found, dict) and found.get('macro'):
        step = evaluated_step(found)
        if step == model.step:
          results = (found, file)
        else:  # another step's scores are not this tower's
          note = (
            f'The results.json beside the run scored step {step}, not this step ({model.step}): '
            'left out.'
          )
        break
  if results:
    results, file = results
    lines += [
      f'Mean over languages (`{os.path.basename(file)}` of `mlit eval` on step {model.step}):',
      '',
      '| task | metric | value |',
      '|---|---|---|',
    ]
    for key, metrics in sorted(results['macro'].items()):
      for name, value in sorted(metrics.items()):
        shown = f'{value:.4f}' if isinstance(value, float) else str(value)
        lines.append(f'| {key} | {name} | {shown} |')
    lines += _shared_texts_lines(results)
  else:
    lines += [note] if note else []
    lines.append(
      'No evaluation of this step beside the run: `mlit eval` on it, then `mlit export '
      '--results EVAL_RUN_DIR` puts its scores here.'
    )
  return '\n'.join(lines) + '\n'
