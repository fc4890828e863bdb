"""The processes of one multi-process run on localhost (jax.distributed, process 0 the
coordinator), as the multi-host tests start them."""

import pathlib
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def start_training(train_args, env, count: int = 2) -> list[subprocess.Popen]:
  """`count` processes of `python -m mlit.training.train TRAIN_ARGS` (stderr piped)."""
  port = free_port()
  return [
    subprocess.Popen(
      [
        sys.executable,
        '-m',
        'mlit.training.train',
        *train_args,
        f'--coordinator_address=localhost:{port}',
        f'--process_count={count}',
        f'--process_index={i}',
      ],
      cwd=REPO,
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(count)
  ]
