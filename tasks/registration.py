"""Registers the seqio tasks a gin config asks for, after gin is parsed.

File patterns and options come from gin, so registration cannot happen at import
time. A gin file lists the registration functions to run, e.g.:
  tasks.registration.register_tasks.registrations = [@tasks.yfcc.register_yfcc]
  tasks.yfcc.register_yfcc.tsv_pattern = %YFCC_TSV_PATTERN
and the trainer calls `register_tasks()` once gin is parsed.
"""

from typing import Callable, Sequence

import gin

# Importing makes their configurables known to gin.
from tasks import (
  cc12m,  # noqa: F401
  precomputed,  # noqa: F401
  shard_tasks,  # noqa: F401
  vocabularies,  # noqa: F401
  wit,  # noqa: F401
  yfcc,  # noqa: F401
)


@gin.configurable
def register_tasks(registrations: Sequence[Callable[[], list]] = ()) -> list:
  """Calls each gin-bound registration function; returns all registered names."""
  names = []
  for register in registrations:
    names.extend(register())
  return names


@gin.configurable
def register_mixture(
  name: str = gin.REQUIRED, tasks_and_rates: Sequence[tuple[str, float]] = gin.REQUIRED
) -> list:
  """A seqio mixture of registered tasks (listed after their registrations), e.g.
    tasks.registration.register_tasks.registrations = [
        @tasks.cc12m.register_cc12m, @tasks.wit.register_wit, @tasks.registration.register_mixture]
    tasks.registration.register_mixture.name = 'cc12m_wit'
    tasks.registration.register_mixture.tasks_and_rates = [('cc12m', 1.0), ('wit_reference', 0.5)]
  A task not registered, or a rate that is not > 0, is one line."""
  import seqio  # pylint: disable=g-import-not-at-top

  from tasks import task_builder  # pylint: disable=g-import-not-at-top
  from tasks.user_error import UserError  # pylint: disable=g-import-not-at-top

  pairs = [(str(t), r) for t, r in tasks_and_rates]
  known = set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
  for task, rate in pairs:
    if task not in known:
      raise UserError(
        f'register_mixture.tasks_and_rates: {task!r} is not registered (list its registration '
        'before register_mixture in register_tasks.registrations)'
      )
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
      raise UserError(f'register_mixture.tasks_and_rates: {task!r} rate {rate!r} must be > 0')
  task_builder.add_mixture(name, pairs)
  return [name]


@gin.configurable
def registered_task(name: str = gin.REQUIRED) -> str:
  """Registers the gin-configured tasks, then returns `name`.

  Lets a gin file name a task whose registration needs gin values, without the
  trainer knowing about registration:
    MIXTURE_OR_TASK_NAME = @tasks.registration.registered_task()
    tasks.registration.registered_task.name = 'yfcc100m_full'
  """
  register_tasks()
  return name
