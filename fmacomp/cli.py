"""Launcher plumbing: absl `app.run` with DESIGN.md's error contract.

Launchers call `cli.run(main)`. A `FmacompError` becomes one line on stderr,
`fmacomp: error: <path>: <reason>`, and its exit code (2 bad input, 1 run-time failure); a flag
parsing error exits 2 the same way. `--verbose` re-raises with the traceback.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from fmacomp import errors

flags.DEFINE_bool('verbose', False, 'Show tracebacks for errors instead of one line.')


def fail(error):
  """Prints `error` as DESIGN.md's one line and exits with its code."""
  sys.stdout.flush()
  sys.stderr.write(f'fmacomp: error: {error}\n')
  sys.stderr.flush()
  sys.exit(error.exit_code)


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(errors.InputError(argv[0] if argv else 'flags', str(e).replace('\n', ' ')))


class _QuietLibraries(logging.logging.Filter):
  """Drops INFO chatter of orbax and TFDS (their warnings and errors still show)."""

  _NOISY = ('/orbax/', '/tensorflow_datasets/', '/grain/')

  def filter(self, record):
    return record.levelno >= logging.logging.WARNING or not any(
        part in record.pathname for part in self._NOISY)


def run(main):
  """Runs `main(argv)` under absl with one-line errors."""

  def wrapped(argv):
    try:
      return main(argv)
    except errors.FmacompError as e:
      if flags.FLAGS.verbose:
        raise
      fail(e)

  logging.set_stderrthreshold('info')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  app.run(wrapped, flags_parser=_parse_flags)
