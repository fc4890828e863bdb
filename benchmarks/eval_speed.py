"""Evaluation speed: prompts/s, 10k x 10k retrieval, zero-shot classifier.

Uses the evaluation code itself (eval_multilingual.encoders.TwoTowerEncoder,
retrieval.retrieval_metrics, zeroshot.classifier_weights) on a randomly
initialised model and a small SentencePiece model trained here, so the
figures include tokenisation, batching and padding as an evaluation run
does them.
"""

import tempfile

import flax.linen as nn
import jax
import numpy as np

from benchmarks import generated_text, model_shapes, timing
from eval_multilingual import encoders, retrieval, zeroshot
from eval_multilingual import prompts as prompts_lib
from mlit.models import two_tower


def make_encoder(text: str, out_dim: int, batch_size: int, workdir: str):
  shape = model_shapes.TEXT_SHAPES[text]
  model = two_tower.TwoTower(text=shape.t5_config(), out_dim=out_dim)
  params = nn.unbox(
    model.init(
      jax.random.PRNGKey(0),
      image_embedding=np.zeros((1, out_dim), np.float32),
      text=np.ones((1, 16), np.int32),
    )['params']
  )
  tok = encoders.Tokenizer(generated_text.train_spm(workdir), length=16)
  return encoders.TwoTowerEncoder(model, params, tok, batch_size=batch_size)


def prompts_per_second(enc, n: int, *, warmup: int, repeats: int) -> dict:
  # New texts for every call: the encoder embeds a text it has seen once (its memo), so timing
  # one set again would time dictionary lookups.
  sets = iter([generated_text.texts(n, 1000 + i) for i in range(warmup + repeats)])
  t = timing.seconds(lambda: enc.embed_texts(next(sets)), warmup=warmup, repeats=repeats)
  return {'n_prompts': n, 'prompts_per_s': n / t['median_s'], 'time': t}


def retrieval_seconds(n: int, dim: int, *, warmup: int, repeats: int) -> dict:
  rng = np.random.default_rng(0)
  img = rng.standard_normal((n, dim)).astype(np.float32)
  txt = img + rng.standard_normal((n, dim)).astype(np.float32)
  links = np.arange(n)
  t = timing.seconds(
    lambda: retrieval.retrieval_metrics(txt, img, links), warmup=warmup, repeats=repeats
  )
  return {'n_texts': n, 'n_images': n, 'dim': dim, 'time': t}


def classifier_seconds(enc, n_classes: int, n_templates: int, *, repeats: int) -> dict:
  names = [f'class {i} ' + ' '.join(generated_text.texts(1, i)) for i in range(n_classes)]
  templates = [f'template {j} ' + '{}' for j in range(n_templates)]
  pset = prompts_lib.make_prompt_set('bench', 'en', names, templates, n_classes)
  enc.embed_texts(generated_text.texts(enc.batch_size, 2))  # compile outside the timing
  t = timing.seconds(
    lambda: zeroshot.classifier_weights(enc.embed_texts, pset), warmup=0, repeats=repeats
  )
  return {
    'n_classes': n_classes,
    'n_templates': n_templates,
    'n_prompts': n_classes * n_templates,
    'time': t,
  }


def run(
  texts: list[str],
  *,
  n_prompts: int,
  n_retrieval: int,
  n_classes: int,
  n_templates: int,
  classifier_text: str,
  out_dim: int = 384,
  batch_size: int = 256,
  warmup: int = 1,
  repeats: int = 3,
) -> dict:
  out = {'prompts': {}}
  with tempfile.TemporaryDirectory() as d:
    for text in texts:
      enc = make_encoder(text, out_dim, batch_size, d)
      out['prompts'][text] = prompts_per_second(enc, n_prompts, warmup=warmup, repeats=repeats)
      out['prompts'][text]['classifier_estimate_s'] = (
        n_classes * n_templates / out['prompts'][text]['prompts_per_s']
      )
    enc = make_encoder(classifier_text, out_dim, batch_size, d)
    out['classifier'] = dict(
      text=classifier_text,
      **classifier_seconds(enc, n_classes, n_templates, repeats=max(1, repeats // 2)),
    )
  out['retrieval'] = retrieval_seconds(n_retrieval, out_dim, warmup=warmup, repeats=repeats)
  return out
