"""Launcher plumbing: absl `app.run` with DESIGN.md's error contract, and the launchers' shared
flags. It lives beside the launchers because absl flags belong to scripts, never to the library
(`fmacomp/` takes arguments; the `fmacomp` command parses its own with argparse).

Launchers call `launcher.run(main)`. A `FmacompError` becomes one line on stderr,
`fmacomp: error: <path>: <reason>`, and its exit code (2 bad input, 1 run-time failure); a flag
parsing error exits 2 the same way. `--verbose` re-raises with the traceback.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from fmacomp import errors

flags.DEFINE_bool('verbose', False, 'Show tracebacks for errors instead of one line.')


def define_distributed_flags():
  """Defines the multi-host flags of a launcher (`initialize_distributed` reads them)."""
  flags.DEFINE_bool('distributed', False, 'Multi-host with the cluster auto-detected by JAX '
                    '(TPU VM pod, Slurm, Open MPI).')
  flags.DEFINE_string('coordinator_address', '', 'host:port of process 0 (multi-host).')
  flags.DEFINE_integer('num_processes', 0, 'Number of processes (multi-host).')
  flags.DEFINE_integer('process_id', -1, 'This process\'s index (multi-host).')


def initialize_distributed():
  """`fmacomp.distributed.initialize` with the flags of `define_distributed_flags`."""
  from fmacomp import distributed  # pylint: disable=g-import-not-at-top (imports jax)
  values = flags.FLAGS
  distributed.initialize(values.coordinator_address, values.num_processes, values.process_id,
                         auto_detect=values.distributed)


def fail(error):
  """Prints `error` as DESIGN.md's one line and exits with its code."""
  sys.stdout.flush()
  sys.stderr.write(f'fmacomp: error: {error}\n')
  sys.stderr.flush()
  sys.exit(error.exit_code)


def _reason(exception):
  """The last non-empty line of an exception's text (config files raise with tracebacks)."""
  lines = [line.strip() for line in str(exception).splitlines() if line.strip()]
  return lines[-1] if lines else type(exception).__name__


def _parse_flags(argv):
  """absl flag parsing with DESIGN.md's errors: a bad flag or config is one line, exit 2."""
  try:
    rest = flags.FLAGS(argv)
    for name in list(flags.FLAGS):
      # Config files load lazily, on first attribute access: load them here, not mid-run.
      getattr(getattr(flags.FLAGS, name), 'keys', None)
    return rest
  except flags.Error as e:
    # A config file's own error arrives as "flag --config=F: Error whilst parsing ...".
    where = next((a.split('=', 1)[0] for a in argv[1:] if a.startswith('--') and
                  a.split('=', 1)[0] in str(e)), 'flags')
    fail(errors.InputError(where, _reason(e)))
  except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
    # ml_collections raises these for a missing config file or an unknown --config.key.
    unknown = isinstance(e, (KeyError, AttributeError))
    fail(errors.InputError('--config', f'unknown config key {_reason(e)}' if unknown else
                           _reason(e)))


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
