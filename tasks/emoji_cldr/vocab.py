"""Trains a SentencePiece vocabulary (byte fallback) on the emoji_cldr tuning texts.

T5 conventions: PAD 0, EOS 1, UNK 2, no BOS. Only tuning concepts' names and
keyword phrases are used, so held-out names are seen by neither the text
tower nor the tokenizer. Unique texts only (keyword phrases repeat a lot).
`python -m tasks.emoji_cldr vocab --data DIR --out PREFIX` writes PREFIX.model
and PREFIX.json (config + stats); an up-to-date model is reused.
"""

import argparse
import hashlib
import json
import os
import random
import sys
import time

import sentencepiece as spm

from tasks import sentencepiece_training
from tasks.emoji_cldr import data as data_lib
from tasks.emoji_cldr import pairs as pairs_lib


def tuning_texts(data_dir: str, languages=None, exclude_languages=()) -> list[str]:
  ds = data_lib.load(data_dir)
  langs = [l for l in (languages or ds.languages) if l not in set(exclude_languages)]
  texts = {}
  for lang in langs:
    for t in pairs_lib.tuning_pairs(ds, lang, images='noto_eval').texts:
      texts.setdefault(t, None)
  return list(texts)


def train_vocab(
  data_dir: str,
  out_prefix: str,
  vocab_size: int = 8000,
  languages=None,
  exclude_languages=(),
  character_coverage: float = 0.9995,
  max_texts: int = 60000,
  num_threads: int = 2,
  force: bool = False,
) -> dict:
  """Trains (or reuses) out_prefix.model; returns the stats dict also saved as .json.

  max_texts: a seeded sample of at most this many unique texts (training time
  grows with it; 60k trains in about 15 s of CPU).
  """
  manifest_path = os.path.join(data_dir, 'manifest.json')
  with open(manifest_path, 'rb') as f:
    data_hash = hashlib.sha256(f.read()).hexdigest()[:16]
  config = {
    'vocab_size': vocab_size,
    'languages': list(languages) if languages else None,
    'exclude_languages': sorted(exclude_languages),
    'character_coverage': character_coverage,
    'max_texts': max_texts,
    'data_manifest_sha256': data_hash,
  }
  info_path = out_prefix + '.json'
  if not force and os.path.isfile(out_prefix + '.model') and os.path.isfile(info_path):
    with open(info_path, encoding='utf-8') as f:
      info = json.load(f)
    if info.get('config') == config:
      info['reused'] = True
      return info
  t0 = time.time()
  all_texts = tuning_texts(data_dir, languages, exclude_languages)
  if not all_texts:
    raise ValueError(f'{data_dir}: no tuning texts to train a vocabulary on')
  texts = random.Random(0).sample(all_texts, max_texts) if len(all_texts) > max_texts else all_texts
  os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
  sentencepiece_training.train_t5_sentencepiece(
    texts,
    out_prefix,
    vocab_size,
    character_coverage=character_coverage,
    split_digits=True,
    num_threads=num_threads,
  )
  sp = spm.SentencePieceProcessor(model_file=out_prefix + '.model')
  info = {
    'config': config,
    'n_texts': len(all_texts),
    'n_sampled': len(texts),
    'vocab_size': sp.get_piece_size(),
    'seconds': round(time.time() - t0, 2),
  }
  with open(info_path, 'w', encoding='utf-8') as f:
    json.dump(info, f, indent=1)
  info['reused'] = False
  return info


def shortfall(info: dict) -> str:
  """Why a vocabulary has fewer pieces than asked (SentencePiece's limit is soft here)."""
  texts = f'{info["n_sampled"]} unique tuning texts'
  if info['n_sampled'] < info['n_texts']:
    texts += f' (a sample of {info["n_texts"]}: --max_texts)'
  return (
    f'the vocabulary has {info["vocab_size"]} pieces, fewer than the --vocab_size '
    f'{info["config"]["vocab_size"]} asked: SentencePiece found no more in the {texts} it was '
    'trained on (more languages or emoji give more)'
  )


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog='python -m tasks.emoji_cldr vocab', description=__doc__)
  p.add_argument('--data', required=True, help='built emoji_cldr directory')
  p.add_argument('--out', required=True, help='model prefix (writes PREFIX.model)')
  p.add_argument('--vocab_size', type=int, default=8000, help='pieces (default 8000)')
  p.add_argument('--languages', default=None, help='comma-separated (default: all)')
  p.add_argument(
    '--exclude_languages', default='', help='comma-separated languages the vocabulary leaves out'
  )
  p.add_argument(
    '--max_texts', type=int, default=60000, help='texts sampled for training (default 60000)'
  )
  p.add_argument('--force', action='store_true', help='retrain even if --out is up to date')
  a = p.parse_args(argv)
  info = train_vocab(
    a.data,
    a.out,
    a.vocab_size,
    a.languages.split(',') if a.languages else None,
    [l for l in a.exclude_languages.split(',') if l],
    max_texts=a.max_texts,
    force=a.force,
  )
  print(json.dumps(info, indent=1))
  if info['vocab_size'] < a.vocab_size:
    print(f'python -m tasks.emoji_cldr vocab: warning: {shortfall(info)}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
