"""`mlit export --format transformers`: the text tower as a Hugging Face transformers directory.

OUT/ holds an MT5EncoderModel (gated-GELU MLP) or T5EncoderModel (other MLPs): config.json and
model.safetensors; the SentencePiece model (spiece.model) and a fast tokenizer built from it
(tokenizer.json, tokenizer_config.json: spm_backend) that gives mlit's ids, byte fallback
included; the text head and pooling (mlit.inference.text_head: text_projection.safetensors,
text_head.json); and a model card, README.md.

T5X -> transformers names (the T5 v1.1 / mT5 encoder): token_embedder/embedding -> shared
(and encoder.embed_tokens); the one relative position bias table [heads, buckets] -> block 0's
relative_attention_bias [buckets, heads]; each dense kernel [in, out] -> a Linear weight
[out, in]; RMS norm scales unchanged.
"""

import json
import os
import shutil
import warnings

import numpy as np

from mlit.inference import model_card, run_spec, text_head
from mlit.inference.tokenizer import EOS_ID, PAD_ID
from tasks.user_error import UserError

FEED_FORWARD = {('gelu', 'linear'): 'gated-gelu', ('relu',): 'relu', ('gelu',): 'gelu'}


def _transformers():
  # transformers' model code imports torchvision when it is installed; the CPU-only torchvision
  # the test extra pins lacks its compiled image ops and says so on import, which an export
  # never uses. Loaded here once, under the filter; later imports reuse the loaded modules.
  with warnings.catch_warnings():
    warnings.filterwarnings('ignore', message='Failed to load image Python extension')
    try:
      import transformers  # pylint: disable=g-import-not-at-top
    except ImportError as e:  # mlit's core install leaves it out; the demo and test extras have it
      raise UserError(
        f"--format transformers needs the transformers package ({e}): pip install -e '.[demo]' "
        "(make demo installs it) or pip install 'transformers>=4.40,<6'"
      ) from e
    import transformers.modeling_utils  # noqa: F401  # pylint: disable=g-import-not-at-top
  # Its 'Writing model shards' bar for a one-shard model is noise beside mlit's own 'wrote' line.
  transformers.utils.logging.disable_progress_bar()

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


def export(model, out_dir: str, results: tuple[dict, str] | None = None) -> str:
  """model: mlit.inference.model.Model; results: model_card.read_results' (for the card). Writes
  OUT; returns it."""
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
    f.write(model_card.text(model, class_name, head, results))
  # safetensors creates its files owner-only (0600); the directory is for sharing, so every file
  # gets the mode the umask gives new files, as the others have.
  umask = os.umask(0)
  os.umask(umask)
  for name in os.listdir(out_dir):
    os.chmod(os.path.join(out_dir, name), 0o666 & ~umask)
  return out_dir


# SentencePiece piece types (sentencepiece_model.proto) that it matches against the text.
_NORMAL, _USER_DEFINED = 1, 4


def spm_backend(spm_path: str):
  """spiece.model -> (a `tokenizers.Tokenizer` that encodes like SentencePieceProcessor.encode
  + EOS, its special tokens for transformers): the model's normalizer (precompiled charsmap,
  extra whitespace removal, '▁' escaping, dummy prefix), its unigram pieces and scores, and byte
  fallback, so a character the vocabulary lacks becomes its UTF-8 byte pieces (<0xE6>...), not
  <unk>.

  SentencePiece never matches control, unknown, byte or unused pieces against the text; the
  `tokenizers` trie would match their literal text ('</s>', '<0x41>'). They get a score so low
  that the Viterbi search never picks them over single-character pieces, so such text is
  characters as in SentencePiece, unless one of its characters has no piece (then no score
  keeps it from winning: `tokenizers` scores an unknown character below every piece). That low
  score lowers the unknown-character score too (`tokenizers` derives it from the lowest score,
  SentencePiece from the lowest normal piece's), which changes no segmentation when every
  character of every piece is itself a piece: an unknown character is then covered by nothing but
  its one unknown node. A vocabulary where that does not hold keeps the exact unknown score.

  Not exact: `tokenizers`' Precompiled normalizer applies the charsmap per grapheme with the
  shortest match (SentencePiece: longest match over the text), which differs on some runs of
  combining marks, decomposed (NFD) text, conjoining Hangul jamo and halfwidth kana with sound
  marks (huggingface/tokenizers issues 2116, 2334). Texts SentencePiece normalizes the same way
  (`.normalizer.normalize_str(text) == SentencePieceProcessor.normalize(text)`) get its ids."""
  import tokenizers  # pylint: disable=g-import-not-at-top
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

  decoders, normalizers, Regex = tokenizers.decoders, tokenizers.normalizers, tokenizers.Regex

  proto = sentencepiece_model_pb2.ModelProto()
  with open(spm_path, 'rb') as f:
    proto.ParseFromString(f.read())
  trainer, spec = proto.trainer_spec, proto.normalizer_spec
  if trainer.model_type != sentencepiece_model_pb2.TrainerSpec.UNIGRAM:
    raise UserError(f'{spm_path}: only unigram SentencePiece models convert to transformers')
  if trainer.treat_whitespace_as_suffix:
    raise UserError(f'{spm_path}: treat_whitespace_as_suffix has no transformers equivalent')

  pieces = proto.pieces
  matched = [p.piece for p in pieces if p.type in (_NORMAL, _USER_DEFINED)]
  normal_scores = [p.score for p in pieces if p.type == _NORMAL]
  lowest, highest = min(normal_scores), max(max(normal_scores), 0.0)
  if set(''.join(matched)) <= set(matched):
    # Below as many single-character pieces as the longest piece has characters.
    never = max(len(p.piece) for p in pieces) * (lowest - 1.0) - 1.0
  else:
    never = lowest
  vocab = []
  for p in pieces:
    if p.type == _NORMAL:
      score = p.score
    elif p.type == _USER_DEFINED:
      score = len(p.piece) * highest + 1.0  # SentencePiece's bonus: always picked whole
    else:
      score = never
    vocab.append((p.piece, score))
  tok = tokenizers.Tokenizer(
    tokenizers.models.Unigram(vocab, unk_id=trainer.unk_id, byte_fallback=trainer.byte_fallback)
  )

  # SentencePiece's Normalizer::Normalize, step by step.
  steps = []
  if spec.precompiled_charsmap:
    steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
  if spec.remove_extra_whitespaces:
    steps += [
      normalizers.Replace(Regex(r'\A +| +\z'), ''),
      normalizers.Replace(Regex(' {2,}'), ' '),
    ]
  if spec.escape_whitespaces:
    steps.append(normalizers.Replace(' ', '▁'))
    if spec.remove_extra_whitespaces:  # it strips trailing '▁' of the text too
      steps.append(normalizers.Replace(Regex(r'▁+\z'), ''))
  if spec.add_dummy_prefix:
    steps.append(normalizers.Prepend('▁'))  # not to an empty text, as SentencePiece
  tok.normalizer = normalizers.Sequence(steps)

  decode = [decoders.Replace('▁', ' ')]
  if trainer.byte_fallback:
    decode.append(decoders.ByteFallback())
  decode.append(decoders.Fuse())
  if spec.add_dummy_prefix:
    decode.append(decoders.Strip(' ', 1, 0))
  tok.decoder = decoders.Sequence(decode)
  # mlit.inference.tokenizer's ids: EOS is the model's (1 where it has none), PAD is 0.
  eos_id = trainer.eos_id if trainer.eos_id >= 0 else EOS_ID
  eos = pieces[eos_id].piece
  tok.post_processor = tokenizers.processors.TemplateProcessing(
    single=['$A', eos], pair=['$A', eos, '$B', eos], special_tokens=[(eos, eos_id)]
  )
  specials = {'eos_token': eos, 'pad_token': pieces[PAD_ID].piece}
  specials['unk_token'] = pieces[trainer.unk_id].piece
  return tok, specials


def _save_tokenizer(out_dir: str, max_length: int) -> None:
  """OUT/spiece.model -> tokenizer.json (spm_backend) and tokenizer_config.json, which
  AutoTokenizer loads as a PreTrainedTokenizerFast (transformers 5: TokenizersBackend) with that
  pipeline as it is; transformers' T5Tokenizer would rebuild its own from the vocabulary, without
  byte fallback. Ids + EOS, truncation keeps EOS last, PAD 0; special tokens are not looked for
  in the text ('</s>' in a text is characters, as in SentencePiece)."""
  transformers = _transformers()

  backend, specials = spm_backend(os.path.join(out_dir, 'spiece.model'))
  tok = transformers.PreTrainedTokenizerFast(
    tokenizer_object=backend, model_max_length=max_length, split_special_tokens=True, **specials
  )
  tok.save_pretrained(out_dir)
  # transformers 5 names the class TokenizersBackend, which transformers 4 lacks; both know
  # PreTrainedTokenizerFast (5 as an alias of TokenizersBackend).
  path = os.path.join(out_dir, 'tokenizer_config.json')
  with open(path, encoding='utf-8') as f:
    config = json.load(f)
  config['tokenizer_class'] = 'PreTrainedTokenizerFast'
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(config, f, indent=2, ensure_ascii=False)
    f.write('\n')
