"""The steps a command runs as `python -m MODULE` (demo stages, add-language steps) run its mlit.

`python -m` puts the working directory first on sys.path, so a `tasks/` or `mlit/` folder where
the user stands (`tasks/` is a common name for a project's own folder) would be imported in the
child instead of mlit's, failing far from the cause. Children get PYTHONSAFEPATH (Python >= 3.11:
no working directory on sys.path) and, unless it is a site-packages directory already on the
path, the directory holding the parent's `mlit` and `tasks` first on PYTHONPATH (so a checkout
run without installing keeps working from any directory).
"""

import os
import site

from mlit.commands import malloc_settings

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def environment(env=None) -> dict:
  """env (default os.environ) for a child step: mlit's malloc settings, TensorFlow's C++ INFO
  and WARNING lines off, and imports that resolve to this process's mlit."""
  env = malloc_settings.environment({**(os.environ if env is None else env)})
  # Forced: a library the parent imported may have set its own level (importing seqio sets 1).
  env['TF_CPP_MIN_LOG_LEVEL'] = '2'
  env['PYTHONSAFEPATH'] = '1'
  site_dirs = {os.path.realpath(d) for d in [*site.getsitepackages(), site.getusersitepackages()]}
  if os.path.realpath(_ROOT) not in site_dirs:
    rest = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p and p != _ROOT]
    env['PYTHONPATH'] = os.pathsep.join([_ROOT, *rest])
  return env
