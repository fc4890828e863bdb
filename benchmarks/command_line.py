"""The benchmark scripts' flags: a mistake is one line naming it, exit 2, before any work."""

import argparse
import os


class Parser(argparse.ArgumentParser):
  """argparse without the usage block on a bad flag: one line (`--help` has the usage)."""

  def error(self, message):
    self.exit(2, f'{self.prog}: error: {message} ({self.prog} --help lists the options)\n')


def at_least(low: int):
  """A flag type: a whole number >= low."""

  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
    if value < low:
      raise argparse.ArgumentTypeError(f'must be at least {low}, not {value}')
    return value

  return parse


def _file_in_the_way(path: str) -> str | None:
  """The existing file (not a directory) at path or above it, if any."""
  path = os.path.abspath(path)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  return None if os.path.isdir(path) else path


def make_out_dir(parser: argparse.ArgumentParser, path: str) -> None:
  """--out DIR: created with its parents, or one line saying why not."""
  blocker = _file_in_the_way(path)
  if blocker:
    parser.error(f'--out {path}: {blocker} is a file, not a directory')
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    parser.error(f'--out {path}: cannot create it ({e.strerror})')


def make_out_file_dir(parser: argparse.ArgumentParser, path: str) -> None:
  """--out FILE: its folder created now (with its parents), so the result, written after
  minutes of measuring, has a place; or one line saying why not."""
  if os.path.isdir(path):
    parser.error(f'--out {path} is a directory; give a file name (e.g. {path}/result.json)')
  make_out_dir(parser, os.path.dirname(os.path.abspath(path)))
