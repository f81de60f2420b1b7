"""Atomic outputs: a command either leaves its complete output or nothing new at all."""

import contextlib
import os
import tempfile

# The process's umask, read once at import (reading it means setting it, which is not safe once
# other threads, such as orbax's, create files). mkstemp makes 0600 files; outputs get the mode
# an ordinary open() would give them, so a shared workdir or report stays readable.
UMASK = os.umask(0o022)
os.umask(UMASK)


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path beside `path`; renames it onto `path` only on success.

  An existing file at `path` is replaced only when the block finishes without an exception;
  on failure the temporary file is removed and `path` is untouched.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp',
                             dir=directory)
  os.close(fd)
  try:
    os.chmod(tmp, 0o666 & ~UMASK)
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def write_text_atomic(path, text):
  """Writes `text` to `path` atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, 'w') as f:
      f.write(text)
