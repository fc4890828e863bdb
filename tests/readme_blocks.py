"""README.md's command blocks, and running one as printed through the `mlit` dispatcher.

A ``` block whose lines are commands is preceded by `<!-- test: GROUP [ARGS] -->` (run by the
tests of GROUP, with ARGS, e.g. smaller sizes as gin bindings, appended to each command) or
`<!-- untested: REASON -->`.
"""

import dataclasses
import pathlib
import re
import shlex

README = pathlib.Path(__file__).resolve().parent.parent / 'README.md'
_MARK = re.compile(r'^<!-- (test|untested): ?(.*?) ?-->$')
_COMMAND = re.compile(r'^(mlit |python |\.venv/bin/|make )')


@dataclasses.dataclass
class Block:
  line: int  # 1-based line of the opening ```
  mark: str | None  # 'test', 'untested' or None
  arg: str  # group and extra args, or the reason
  commands: list[str]


def blocks(path: pathlib.Path = README) -> list[Block]:
  lines = path.read_text(encoding='utf-8').splitlines()
  out, i = [], 0
  while i < len(lines):
    if not lines[i].strip().startswith('```'):  # an opening fence may name a language
      i += 1
      continue
    start, body = i, []
    i += 1
    while i < len(lines) and lines[i].strip() != '```':
      body.append(lines[i])
      i += 1
    i += 1
    mark = _MARK.match(lines[start - 1].strip()) if start else None
    commands, pending = [], ''
    for text in body:  # backslash continuations make one command
      pending += text.rstrip('\\').strip() + ' ' if text.endswith('\\') else text.strip()
      if not text.endswith('\\'):
        if _COMMAND.match(pending):
          commands.append(pending)
        pending = ''
    out.append(Block(start + 1, mark and mark.group(1), mark.group(2) if mark else '', commands))
  return out


def group_blocks(group: str) -> list[tuple[Block, list[str]]]:
  """The blocks marked `test: group`, with their extra args."""
  found = []
  for b in blocks():
    if b.mark == 'test':
      name, *extra = shlex.split(b.arg)
      if name == group:
        found.append((b, extra))
  return found


def run(command: str, extra=()) -> int:
  """Runs `mlit ...` in this process, through the dispatcher a user's shell would reach."""
  from mlit.commands import cli  # pylint: disable=g-import-not-at-top

  argv = shlex.split(command)
  if argv[0] != 'mlit':
    raise ValueError(f'README test blocks run `mlit` commands, got {command!r}')
  return cli.main([*argv[1:], *extra])
