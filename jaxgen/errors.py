"""The one exception type that reaches the user as a one-line message."""


class UserError(Exception):
  """A bad input the user can fix: the message names the value, what was expected, and what to do.

  The CLI prints it as a single line and exits non-zero, without a traceback.
  """
