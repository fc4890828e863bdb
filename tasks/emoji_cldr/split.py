"""Fixed, seeded split of emoji concepts into tuning and held-out concepts.

Within each Unicode subgroup, emoji are ranked by a keyed hash of the emoji
string and the first round(fraction * n) are held out, so every subgroup with
3+ members keeps some tuning concepts (the image tower is trained on subgroups)
and the split of an emoji does not depend on the order of the input file.
"""

import collections
import hashlib
from collections.abc import Iterable

TUNING, HELDOUT = 'tuning', 'heldout'


def _rank_key(seed: int, emoji: str) -> bytes:
  return hashlib.sha256(f'{seed}\x00{emoji}'.encode('utf-8')).digest()


def split_concepts(
  concepts: Iterable[tuple[str, str]], heldout_fraction: float = 0.2, seed: int = 0
) -> dict[str, str]:
  """concepts: (emoji, subgroup) pairs -> {emoji: 'tuning' | 'heldout'}."""
  if not 0.0 <= heldout_fraction < 1.0:
    raise ValueError(f'heldout_fraction must be in [0, 1), got {heldout_fraction}')
  by_subgroup = collections.defaultdict(list)
  for emoji, subgroup in concepts:
    by_subgroup[subgroup].append(emoji)
  out = {}
  for members in by_subgroup.values():
    ranked = sorted(set(members), key=lambda e: _rank_key(seed, e))
    # Round half down so that a subgroup of 2 keeps both for tuning.
    n_heldout = int(heldout_fraction * len(ranked) + 0.5 - 1e-9)
    n_heldout = min(n_heldout, len(ranked) - 1)
    for i, e in enumerate(ranked):
      out[e] = HELDOUT if i < n_heldout else TUNING
  return out
