"""`mlit export --format transformers`: the text tower as a Hugging Face transformers directory.

OUT/ holds an MT5EncoderModel (gated-GELU MLP) or T5EncoderModel (other MLPs): config.json and
model.safetensors; the SentencePiece model (spiece.model) with a T5 tokenizer's files; the
text head and pooling (mlit.inference.text_head: text_projection.safetensors, text_head.json);
and a model card, README.md.

T5X -> transformers names (the T5 v1.1 / mT5 encoder): token_embedder/embedding -> shared
(and encoder.embed_tokens); the one relative position bias table [heads, buckets] -> block 0's
relative_attention_bias [buckets, heads]; each dense kernel [in, out] -> a Linear weight
[out, in]; RMS norm scales unchanged.
"""

import os
import shutil
import warnings

import numpy as np

from mlit.inference import model_card, run_spec, text_head
from tasks.user_error import UserError

FEED_FORWARD = {('gelu', 'linear'): 'gated-gelu', ('relu',): 'relu', ('gelu',): 'gelu'}


def _transformers():
  # transformers' model code imports torchvision when it is installed; the CPU-only torchvision
  # the test extra pins lacks its compiled image ops and says so on import, which an export
  # never uses. Loaded here once, under the filter; later imports reuse the loaded modules.
  with warnings.catch_warnings():
    warnings.filterwarnings('ignore', message='Failed to load image Python extension')
    import transformers  # pylint: disable=g-import-not-at-top
    import transformers.modeling_utils  # noqa: F401  # pylint: disable=g-import-not-at-top

  return transformers


def hf_config(cfg):
  transformers = _transformers()

  acts = tuple(cfg.mlp_activations)
  if acts not in FEED_FORWARD:
    raise UserError(f"the text tower's MLP activations {acts} have no transformers T5 equivalent")
  gated = acts == ('gelu', 'linear')
  config_cls = transformers.MT5Config if gated else transformers.T5Config
  config = config_cls(
    vocab_size=cfg.vocab_size,
    d_model=cfg.emb_dim,
    d_kv=cfg.head_dim,
    d_ff=cfg.mlp_dim,
    num_layers=cfg.num_encoder_layers,
    num_heads=cfg.num_heads,
    relative_attention_num_buckets=cfg.relative_attention_num_buckets,
    relative_attention_max_distance=cfg.relative_attention_max_distance,
    dropout_rate=0.0,
    layer_norm_epsilon=1e-6,
    feed_forward_proj=FEED_FORWARD[acts],
    tie_word_embeddings=False,
    pad_token_id=0,
    eos_token_id=1,
  )
  return config, ('MT5EncoderModel' if gated else 'T5EncoderModel')


def hf_state_dict(txt_params, cfg) -> dict:
  """TextTower params -> transformers T5 encoder state dict (NumPy float32)."""
  p = lambda *names: np.asarray(_get(txt_params, names), np.float32)  # noqa: E731
  sd = {'shared.weight': p('token_embedder', 'embedding')}
  sd['encoder.embed_tokens.weight'] = sd['shared.weight']
  sd['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'] = p(
    'encoder', 'relpos_bias', 'rel_embedding'
  ).T
  for i in range(cfg.num_encoder_layers):
    layer, hf = ('encoder', f'layers_{i}'), f'encoder.block.{i}.layer.'
    sd[hf + '0.layer_norm.weight'] = p(*layer, 'pre_attention_layer_norm', 'scale')
    for a, b in (('q', 'query'), ('k', 'key'), ('v', 'value'), ('o', 'out')):
      sd[hf + f'0.SelfAttention.{a}.weight'] = p(*layer, 'attention', b, 'kernel').T
    sd[hf + '1.layer_norm.weight'] = p(*layer, 'pre_mlp_layer_norm', 'scale')
    for name in _get(txt_params, layer + ('mlp',)):
      sd[hf + f'1.DenseReluDense.{name}.weight'] = p(*layer, 'mlp', name, 'kernel').T
  sd['encoder.final_layer_norm.weight'] = p('encoder', 'encoder_norm', 'scale')
  return {k: np.ascontiguousarray(v) for k, v in sd.items()}


def _get(tree, names):
  for n in names:
    tree = tree[n]
  return tree


def export(model, out_dir: str) -> str:
  """model: mlit.inference.model.Model. Writes OUT; returns it."""
  import torch  # pylint: disable=g-import-not-at-top

  transformers = _transformers()

  enc = model.encoder
  cfg = enc.model.text
  config, class_name = hf_config(cfg)
  hf_model = getattr(transformers, class_name)(config).eval()
  state = {k: torch.tensor(v) for k, v in hf_state_dict(enc.params['txt'], cfg).items()}
  missing, unexpected = hf_model.load_state_dict(state, strict=False)
  if missing or unexpected:
    raise ValueError(f'transformers {class_name}: missing {missing}, unexpected {unexpected}')
  os.makedirs(out_dir, exist_ok=True)
  hf_model.save_pretrained(out_dir, safe_serialization=True)
  spm = run_spec.vocabulary_path(model.model_dir, model.spec)
  shutil.copyfile(spm, os.path.join(out_dir, 'spiece.model'))
  _save_tokenizer(out_dir, enc.tokenizer.length)
  head = text_head.write(out_dir, enc.model, enc.params, enc.tokenizer.length, model.logit_scale)
  with open(os.path.join(out_dir, 'README.md'), 'w', encoding='utf-8') as f:
    f.write(model_card.text(model, class_name, head))
  return out_dir


def _save_tokenizer(out_dir: str, max_length: int) -> None:
  """T5 tokenizer files converted from spiece.model (ids + EOS, truncation keeps EOS last).

  The conversion maps SentencePiece's byte-fallback pieces to <unk>; spiece.model itself gives
  the exact ids (the model card says so)."""
  transformers = _transformers()

  tok = transformers.T5Tokenizer.from_pretrained(out_dir, extra_ids=0, model_max_length=max_length)
  tok.save_pretrained(out_dir)
