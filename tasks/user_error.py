"""The one exception type for mistakes in a user's input (flags, config, files).

It lives in the lowest layer so that data code, the trainer and the evaluation can all raise it;
the `mlit` dispatcher prints its message as one line and exits 2 (traceback only with --verbose).
The message must name what to fix: the flag, file and line, or config key.
"""


class UserError(ValueError):
  """Bad user input: the message says which flag, file, line or key, and what to do."""
