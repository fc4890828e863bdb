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
def registered_task(name: str = gin.REQUIRED) -> str:
  """Registers the gin-configured tasks, then returns `name`.

  Lets a gin file name a task whose registration needs gin values, without the
  trainer knowing about registration:
    MIXTURE_OR_TASK_NAME = @tasks.registration.registered_task()
    tasks.registration.registered_task.name = 'yfcc100m_full'
  """
  register_tasks()
  return name
