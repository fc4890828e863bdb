"""Regex rules over flattened parameter names ('txt/encoder/layers_0/...').

Each rule list is an ordered sequence of (regex, value); the first regex found
in a name (re.search: anchor with ^ / $ where needed) decides the value, as in
big_vision. Three kinds of rules exist:

  freeze:   regexes; a matching parameter is locked (no update, no state).
  lr_mults: (regex, float); multiplies the learning rate of matching params.
  delays:   (regex, int); matching params get no update before that step and
            then their own warm-up + cosine schedule over the remaining
            steps (paper Appendix F, the "delay" schedule).
"""

import difflib
import re
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

import flax.linen as nn
import jax

from tasks.user_error import UserError

V = TypeVar('V')


def _key_str(k: Any) -> str:
  for attr in ('key', 'name', 'idx'):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def path_name(path: Sequence[Any]) -> str:
  """A jax key path -> 'a/b/c'."""
  return '/'.join(_key_str(k) for k in path)


def _is_leaf(x: Any) -> bool:
  return isinstance(x, nn.meta.AxisMetadata)


def param_names(params: Any) -> list[str]:
  """Flattened names of all leaves (boxed LogicallyPartitioned count as one)."""
  return [
    path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_leaf)[0]
  ]


def map_names(fn: Callable[[str], Any], params: Any) -> Any:
  """Tree with the same structure as params, leaf = fn(flattened name)."""
  return jax.tree_util.tree_map_with_path(lambda p, _: fn(path_name(p)), params, is_leaf=_is_leaf)


def _compile(rules: Iterable[tuple[str, V]], kind: str):
  compiled = []
  for i, rule in enumerate(rules):
    if not (isinstance(rule, (tuple, list)) and len(rule) == 2):
      raise UserError(f'{kind} rule #{i} must be a (regex, value) pair, got {rule!r}')
    try:
      compiled.append((re.compile(rule[0]), rule[1]))
    except re.error as e:
      raise UserError(f'{kind} rule #{i}: bad regex {rule[0]!r}: {e}') from e
  return compiled


def first_match(name: str, rules, default: V) -> V:
  """Value of the first compiled rule whose regex is found in name."""
  for rx, value in rules:
    if rx.search(name):
      return value
  return default


def check_rules_match(params: Any, rules: Sequence[tuple[str, Any]], kind: str) -> None:
  """Raises if a rule matches no parameter: a typo would silently do nothing."""
  names = param_names(params)
  for rx, _ in _compile(rules, kind):
    if not any(rx.search(n) for n in names):
      raise UserError(
        f'{kind} rule {rx.pattern!r} matches no parameter{_close_prefixes(rx.pattern, names)}; '
        f'names look like {names[:: max(len(names) // 3, 1)][:3]}'
      )


def _close_prefixes(pattern: str, names: Sequence[str]) -> str:
  """' (did you mean 'txt/encoder/'?)' for a misspelt path in a rule, or ''. The first names
  alone ('img_head/bias', ...) would not show the text tower's."""
  parts = [n.split('/') for n in names]
  prefixes = {'/'.join(p[:depth]) + '/' for p in parts for depth in range(1, len(p))}
  close = difflib.get_close_matches(pattern.strip('^$'), sorted(prefixes), n=2, cutoff=0.8)
  return f' (did you mean {" or ".join(map(repr, close))}?)' if close else ''


def frozen_mask(params: Any, freeze: Sequence[str], check: bool = True) -> Any:
  """Bool tree: True where a `freeze` regex matches the parameter name."""
  rules = [(r, True) for r in freeze]
  if check:
    check_rules_match(params, rules, 'freeze')
  compiled = _compile(rules, 'freeze')
  return map_names(lambda n: first_match(n, compiled, False), params)


def lr_multipliers(params: Any, lr_mults: Sequence[tuple[str, float]], check: bool = True) -> Any:
  """Float tree of learning-rate multipliers (default 1.0)."""
  if check:
    check_rules_match(params, lr_mults, 'lr_mult')
  compiled = _compile(lr_mults, 'lr_mult')
  return map_names(lambda n: float(first_match(n, compiled, 1.0)), params)


def unlock_steps(params: Any, delays: Sequence[tuple[str, int]], check: bool = True) -> Any:
  """Int tree: the step from which each parameter trains (default 0)."""
  if check:
    check_rules_match(params, delays, 'delay')
  compiled = _compile(delays, 'delay')
  return map_names(lambda n: int(first_match(n, compiled, 0)), params)


def describe(
  params: Any,
  freeze: Sequence[str] = (),
  lr_mults: Sequence[tuple[str, float]] = (),
  delays: Sequence[tuple[str, int]] = (),
) -> list[str]:
  """One human-readable line per parameter: name, lock / lr mult / delay."""
  fz = _compile([(r, True) for r in freeze], 'freeze')
  lm = _compile(lr_mults, 'lr_mult')
  dl = _compile(delays, 'delay')
  lines = []
  for n in param_names(params):
    if first_match(n, fz, False):
      lines.append(f'{n}: locked')
    else:
      lines.append(f'{n}: lr x{first_match(n, lm, 1.0):g}, from step {first_match(n, dl, 0)}')
  return lines


def group_labels(
  params: Any,
  freeze: Sequence[str] = (),
  lr_mults: Sequence[tuple[str, float]] = (),
  delays: Sequence[tuple[str, int]] = (),
  check: bool = True,
) -> tuple[Any, dict[str, tuple]]:
  """Labels for optax.multi_transform, one per distinct (mult, start) group.

  Returns:
    (labels tree, groups) where labels are 'frozen' or 'g<k>' and
    groups['g<k>'] = (lr_mult, start_step).
  """
  fz = frozen_mask(params, freeze, check)
  lm = lr_multipliers(params, lr_mults, check)
  st = unlock_steps(params, delays, check)
  groups: dict[tuple, str] = {}

  def label(frozen: bool, mult: float, start: int) -> str:
    if frozen or mult == 0.0:
      return 'frozen'
    return groups.setdefault((mult, start), f'g{len(groups)}')

  labels = jax.tree_util.tree_map(label, fz, lm, st)
  return labels, {v: k for k, v in groups.items()}


def resolve(rules: Optional[Sequence[Any]]) -> list:
  """Normalises gin-given rules (lists from gin become tuples)."""
  return [tuple(r) if isinstance(r, list) else r for r in (rules or ())]
