"""Truncation and token-id collisions of the texts an evaluation embeds, at the model's length.

The encoder cuts every text to its text length (sticky EOS). A cut text loses words; two classes
whose texts become the same token ids get identical embeddings, and no model can tell them apart
(with ties counted against the model, ranks.py, both always score wrong at top-1). These numbers
say where that happens; they go into each language's meta in results.json and into the report.
"""

import collections
import copy
import functools
import logging
from typing import Sequence

import numpy as np

from eval_multilingual import prompts as prompts_lib

EXAMPLES = 3  # collided groups named per language


def tokenizer_of(encoder):
  """The encoder's Tokenizer (encoders.py), or None with a warning when it has none."""
  tok = getattr(encoder, 'tokenizer', None)
  if tok is None:
    logging.warning('encoder %r has no tokenizer: no truncation/collision statistics', encoder)
  return tok


def _encode(tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, list[tuple]]:
  """(untruncated token count with EOS, the ids the model sees) per text: ids cut to length - 1
  and a sticky EOS, as the Tokenizer does, so equal keys mean equal model input."""
  ids = tokenizer.encode(texts)
  counts = np.array([len(i) + 1 for i in ids], np.int64)
  return counts, [tuple(i[: tokenizer.length - 1]) for i in ids]


def class_text_stats(tokenizer, prompt_set: prompts_lib.PromptSet) -> tuple[dict, np.ndarray, dict]:
  """(stats, class group ids [C], per class {str(label): {tokens, truncated, collides_with}}).

  A class's key is the sorted token-id rows of all its texts (every alias in every template):
  classes with equal keys have identical classifier weights and share a group id.
  tokens: untruncated length of its first name alone (EOS included); truncated: whether any of
  its texts is cut at the model's length.
  """
  # Evaluations of one run that share a prompt set (the emoji ImageNet held-out and tuning
  # subsets: ~7,700 texts in each of 93 languages) tokenize it once; callers get their own copy.
  return copy.deepcopy(_class_text_stats(tokenizer, prompt_set))


@functools.lru_cache(maxsize=256)
def _class_text_stats(
  tokenizer, prompt_set: prompts_lib.PromptSet
) -> tuple[dict, np.ndarray, dict]:
  length = tokenizer.length
  texts = [
    [t for per_alias in prompt_set.prompts(c) for t in per_alias]
    for c in range(len(prompt_set.classes))
  ]
  # Every text and first name in one tokenizer call (a prompt set has up to ~10^4 texts).
  names = [aliases[0] for aliases in prompt_set.classes]
  counts, rows = _encode(tokenizer, [t for per_class in texts for t in per_class] + names)
  ends = np.cumsum([len(t) for t in texts])
  name_tokens = [int(n) for n in counts[len(counts) - len(names) :]]
  keys, class_truncated = [], []
  for c, end in enumerate(ends):
    start = end - len(texts[c])
    class_truncated.append(bool((counts[start:end] > length).any()))
    keys.append(tuple(sorted(rows[start:end])))
  n_texts = int(ends[-1]) if len(ends) else 0
  texts_truncated = int((counts[:n_texts] > length).sum())
  group_of_key: dict = {}
  groups = np.array([group_of_key.setdefault(k, len(group_of_key)) for k in keys], np.int64)
  members = collections.defaultdict(list)
  for c, g in enumerate(groups):
    members[int(g)].append(c)
  labels = prompt_set.labels
  collided = [m for m in members.values() if len(m) > 1]
  names_truncated = sum(t > length for t in name_tokens)
  stats = {
    'text_length': length,
    'n_classes': len(keys),
    'n_texts': n_texts,
    'texts_truncated_share': texts_truncated / max(n_texts, 1),
    'names_truncated_share': names_truncated / max(len(keys), 1),
    'n_classes_collided': sum(len(m) for m in collided),
    'n_collision_groups': len(collided),
    'collision_examples': [[prompt_set.classes[c][0] for c in m] for m in collided[:EXAMPLES]],
  }
  per_class = {}
  for c, label in enumerate(labels):
    others = [int(labels[o]) for o in members[int(groups[c])] if o != c]
    per_class[str(label)] = {
      'name': prompt_set.classes[c][0],
      'tokens': name_tokens[c],
      'truncated': class_truncated[c],
      'collides_with': others,
    }
  return stats, groups, per_class


def caption_text_stats(tokenizer, texts: Sequence[str]) -> dict:
  """Truncated share of retrieval texts and how many distinct texts share token ids with
  another distinct text."""
  distinct = list(dict.fromkeys(texts))
  counts, rows = _encode(tokenizer, distinct)
  n_by_key = collections.Counter(rows)
  by_text = dict(zip(distinct, counts))
  return {
    'text_length': tokenizer.length,
    'n_texts': len(texts),
    'texts_truncated_share': float(np.mean([by_text[t] > tokenizer.length for t in texts]))
    if texts
    else 0.0,
    'n_texts_collided': sum(n for n in n_by_key.values() if n > 1),
  }
