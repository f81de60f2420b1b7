"""files: atomic outputs appear whole or not at all, with the mode an ordinary open() gives."""

import os
import subprocess
import sys
import textwrap

import pytest

from fmacomp import files


def test_a_finished_block_replaces_the_file(tmp_path):
  path = tmp_path / 'out.txt'
  path.write_text('old')
  files.write_text_atomic(path, 'new')
  assert path.read_text() == 'new'
  assert os.listdir(tmp_path) == ['out.txt']


def test_a_failed_block_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / 'out.txt'
  path.write_text('old')
  with pytest.raises(RuntimeError):
    with files.atomic_path(path) as tmp:
      with open(tmp, 'w') as f:
        f.write('half')
      raise RuntimeError('interrupted')
  assert path.read_text() == 'old'
  assert os.listdir(tmp_path) == ['out.txt']


@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask(tmp_path, umask, mode):
  # mkstemp alone makes every output 0600: a report or results file others cannot read.
  script = textwrap.dedent(f'''
      import os, sys
      os.umask({umask:#o})
      from fmacomp import files
      files.write_text_atomic(sys.argv[1], 'x')
      print(oct(os.stat(sys.argv[1]).st_mode & 0o777))
  ''')
  run = subprocess.run([sys.executable, '-c', script, str(tmp_path / 'out.txt')],
                       capture_output=True, text=True, timeout=60)
  assert run.returncode == 0, run.stderr
  assert run.stdout.strip() == oct(mode)
