"""Finds the Debian-packaged inputs of the emoji/CLDR benchmark.

Each input is looked up under `root` at the path its Debian package documents;
with the default root '/' a `dpkg -L <package>` listing is the fallback (other
distributions or moved files). A missing input raises MissingPackageError that
names the package to install.
"""

import dataclasses
import os
import shutil
import subprocess


class MissingPackageError(FileNotFoundError):
  """An input file is missing; the message names the Debian package."""


@dataclasses.dataclass(frozen=True)
class _Input:
  package: str
  rel_path: str  # the Debian install location, relative to the root
  suffix: str  # what a `dpkg -L` line must end with to be this input
  is_dir: bool = False


_INPUTS = {
  'annotations': _Input(
    'unicode-cldr-core',
    'usr/share/unicode/cldr/common/annotations',
    '/common/annotations',
    is_dir=True,
  ),
  'annotations_derived': _Input(
    'unicode-cldr-core',
    'usr/share/unicode/cldr/common/annotationsDerived',
    '/common/annotationsDerived',
    is_dir=True,
  ),
  'ldml_dtd': _Input(
    'unicode-cldr-core', 'usr/share/unicode/cldr/common/dtd/ldml.dtd', '/common/dtd/ldml.dtd'
  ),
  'emoji_test': _Input(
    'unicode-data', 'usr/share/unicode/emoji/emoji-test.txt', '/emoji/emoji-test.txt'
  ),
  'noto_font': _Input(
    'fonts-noto-color-emoji',
    'usr/share/fonts/truetype/noto/NotoColorEmoji.ttf',
    '/NotoColorEmoji.ttf',
  ),
  'symbola_font': _Input(
    'fonts-symbola',
    'usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf',
    '/Symbola_hint.ttf',
  ),
}

OPTIONAL = ('annotations_derived',)


def _dpkg_lookup(inp: _Input) -> str | None:
  if shutil.which('dpkg') is None:
    return None
  try:
    out = subprocess.run(
      ['dpkg', '-L', inp.package], capture_output=True, text=True, check=False, timeout=30
    ).stdout
  except (OSError, subprocess.TimeoutExpired):
    return None
  for line in out.splitlines():
    line = line.strip()
    if line.endswith(inp.suffix) and (os.path.isdir(line) if inp.is_dir else os.path.isfile(line)):
      return line
  return None


def find_input(name: str, root: str = '/') -> str | None:
  """Path of input `name` (a key of _INPUTS), or None if it is optional and absent."""
  inp = _INPUTS[name]
  path = os.path.join(root, inp.rel_path)
  if os.path.isdir(path) if inp.is_dir else os.path.isfile(path):
    return path
  if os.path.abspath(root) == '/':
    found = _dpkg_lookup(inp)
    if found:
      return found
  if name in OPTIONAL:
    return None
  raise MissingPackageError(
    f'emoji_cldr: {path} not found (input {name!r}). Install the Debian '
    f'package {inp.package} (apt-get install {inp.package}) or pass the '
    f'root directory it is installed under.'
  )


def find_all(root: str = '/') -> dict[str, str | None]:
  """All inputs; raises for the first missing required one, naming every missing package."""
  found, missing = {}, []
  for name in _INPUTS:
    try:
      found[name] = find_input(name, root)
    except MissingPackageError:
      missing.append(name)
  if missing:
    pkgs = sorted({_INPUTS[n].package for n in missing})
    raise MissingPackageError(
      f'emoji_cldr: missing inputs {missing} under root {root!r}. Install the '
      f'Debian package(s): apt-get install {" ".join(pkgs)}'
    )
  return found
