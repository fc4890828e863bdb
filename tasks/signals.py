"""YFCC text signals (title, description, tags) and the three ways to train on them.

Modes (Appendix C of the paper): 'joint' keeps three text features and the trainer
sums three contrastive losses; 'per_image' samples one non-empty signal per example
into 'text'; 'per_batch' samples one signal for a whole batch (a batch-level
transform the input pipeline applies after batching, see `select_signal_per_batch`).
All randomness is stateless and seeded through seqio's map seeds.
"""

import seqio
import tensorflow as tf

SIGNALS = ('title', 'description', 'tags')
MODES = ('joint', 'per_image', 'per_batch')
TAG_SEPARATOR = '\n'
# A random one of these joins the shuffled tags ("space, newline or basic punctuation").
TAG_JOINERS = (' ', '\n', ',', ', ', '.', ';', ':', '!', '?', '-', '/', '|')


@seqio.map_over_dataset(num_seeds=2)
def join_shuffled_tags(ex, seeds):
  """'tags' ("a\\nb\\nc") -> the tags in a random order, joined by a random joiner."""
  tags = tf.strings.split(ex['tags'], TAG_SEPARATOR)
  tags = tf.boolean_mask(tags, tf.strings.length(tags) > 0)
  keys = tf.random.stateless_uniform(tf.shape(tags), seed=seeds[0])
  tags = tf.gather(tags, tf.argsort(keys))
  joiner = tf.gather(
    tf.constant(TAG_JOINERS),
    tf.random.stateless_uniform((), seeds[1], 0, len(TAG_JOINERS), dtype=tf.int32),
  )
  ex = dict(ex)
  # reduce_join needs a constant separator: append the joiner, drop the last one.
  joined = tf.strings.reduce_join(tags + joiner)
  ex['tags'] = tf.strings.substr(
    joined, 0, tf.maximum(0, tf.strings.length(joined) - tf.strings.length(joiner))
  )
  return ex


@seqio.map_over_dataset(num_seeds=1)
def select_signal_per_image(ex, seed):
  """Moves one non-empty signal, uniformly at random, to 'text' (+ 'signal' name)."""
  texts = tf.stack([ex[s] for s in SIGNALS])
  present = tf.strings.length(texts) > 0
  # Random keys; absent signals can never win (all-empty rows were skipped upstream).
  keys = tf.random.stateless_uniform((len(SIGNALS),), seed=seed)
  choice = tf.argmax(tf.where(present, keys, -1.0))
  out = {k: v for k, v in ex.items() if k not in SIGNALS and not k.endswith('_lang')}
  out['text'] = tf.gather(texts, choice)
  out['signal'] = tf.gather(tf.constant(SIGNALS), choice)
  if 'title_lang' in ex:
    out['text_lang'] = tf.gather(tf.stack([ex[f'{s}_lang'] for s in SIGNALS]), choice)
  return out


def select_signal_per_batch(batches: tf.data.Dataset, seed: int = 0) -> tf.data.Dataset:
  """Batched joint-signal dataset -> one signal per batch as 'text'.

  Rows whose chosen signal is empty hold only EOS (id 1) at position 0; the trainer
  masks them out of the loss (see `empty_text_mask`).
  """

  def pick(index, batch):
    s = tf.random.stateless_uniform(
      (), tf.stack([tf.cast(seed, tf.int64), index]), 0, len(SIGNALS), dtype=tf.int32
    )
    out = {k: v for k, v in batch.items() if k not in SIGNALS}
    out['text'] = tf.switch_case(s, [lambda n=n: batch[n] for n in SIGNALS])
    return out

  return batches.enumerate().map(pick, num_parallel_calls=tf.data.AUTOTUNE)


def empty_text_mask(tokens):
  """True for rows with text: a tokenized empty string is [EOS, 0, ...]."""
  return tokens[..., 0] > 1
