"""Exceptions that the launchers turn into DESIGN.md's one-line errors.

Every error a user can cause names the file (or flag) at fault and the reason, so that a
launcher prints `fmacomp: error: <path>: <reason>` and exits with `exit_code`.
"""


class FmacompError(Exception):
  """Base class: an error about `path`, explained by `reason`."""

  exit_code = 1

  def __init__(self, path, reason):
    super().__init__(f'{path}: {reason}')
    self.path = str(path)
    self.reason = str(reason)


class InputError(FmacompError):
  """Bad input or usage (exit 2): a missing file, a malformed manifest, a bad flag."""

  exit_code = 2


class AudioError(InputError):
  """An audio file that cannot be read: missing, empty, not audio, or truncated."""


class RunError(FmacompError):
  """A failure at run time (exit 1), e.g. a non-finite loss."""

  exit_code = 1
