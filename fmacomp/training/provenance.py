"""Where a run came from: one record per launch in `<workdir>/launches.jsonl`.

`config.json` is the config of the latest launch; a resumed run may have been launched before
with other settings, so every launch also appends its own record (process 0 only):

  time_utc         when it started (ISO 8601, seconds)
  start_step       the restored step, 0 for a fresh run: checkpoints at steps in
                   (start_step, next line's start_step] were made by this launch
  config           the resolved config, as config.json holds it
  git_commit       HEAD of the checkout the code was imported from; null when that is not a git
                   checkout (an installed package) or git is absent
  git_dirty        whether tracked files differ from that commit (null when unknown)
  fmacomp_version  `fmacomp.__version__`
  host, processes  process 0's host name and the number of processes (hosts)
  devices          {'count', 'local', 'platform', 'kind'} ('kind' lists the distinct kinds)
  data             the build the run reads: `base.AudioBuilder.data_identity()` (for
                   music_folder, the folder's content hash and the files of each split)

The file is rewritten whole through a temporary file and a rename, so a crash mid-write leaves
the earlier lines as they were; `read_launches` returns them in order.
"""

import datetime
import json
import os
import socket
import subprocess

import jax

import fmacomp
from fmacomp import files

LAUNCHES_FILE = 'launches.jsonl'
_GIT_TIMEOUT_S = 10


def _git(root, *args):
  """stdout of `git -C root args`, or None when git is absent, fails or hangs."""
  # GIT_DIR and friends would point git at another repository than the code's;
  # GIT_OPTIONAL_LOCKS=0 keeps `status` from taking index.lock under a concurrent commit.
  env = {k: v for k, v in os.environ.items() if not k.startswith('GIT_')}
  env['GIT_OPTIONAL_LOCKS'] = '0'
  try:
    result = subprocess.run(['git', '-C', root, *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=_GIT_TIMEOUT_S, env=env,
                            check=False)
  except (OSError, subprocess.SubprocessError):
    return None
  return result.stdout if result.returncode == 0 else None


def git_state(root=None):
  """(commit, dirty) of the git checkout whose top level is `root`, else (None, None).

  Args:
    root: the folder that holds the `fmacomp` package; by default the one this code was
      imported from. A package installed into site-packages is not a checkout, even when the
      virtual environment sits inside one, so the top level must be `root` itself.
  """
  if root is None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(fmacomp.__file__)))
  out = _git(root, 'rev-parse', '--show-toplevel', 'HEAD')
  if out is None or len(out.split()) != 2:
    return None, None
  top, commit = out.split()
  if os.path.realpath(top) != os.path.realpath(root):
    return None, None
  status = _git(root, 'status', '--porcelain', '--untracked-files=no')
  return commit, None if status is None else bool(status.strip())


def launch_record(config, start_step, data):
  """The record of this launch (see the module docstring); JSON-ready."""
  commit, dirty = git_state()
  devices = jax.devices()
  return {
      'time_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'start_step': int(start_step),
      'config': json.loads(config.to_json()),
      'git_commit': commit,
      'git_dirty': dirty,
      'fmacomp_version': fmacomp.__version__,
      'host': socket.gethostname(),
      'processes': jax.process_count(),
      'devices': {'count': len(devices), 'local': jax.local_device_count(),
                  'platform': devices[0].platform,
                  'kind': ', '.join(sorted({d.device_kind for d in devices}))},
      'data': data,
  }


def record_launch(workdir, config, start_step, builder):
  """Appends this launch's record to `<workdir>/launches.jsonl` (on process 0 only)."""
  if jax.process_index() != 0:
    return
  append_launch(workdir, launch_record(config, start_step, builder.data_identity()))


def append_launch(workdir, record):
  """Appends `record` as one line, rewriting the file atomically (earlier lines stay intact)."""
  path = os.path.join(workdir, LAUNCHES_FILE)
  text = ''
  if os.path.exists(path):
    with open(path) as f:
      text = f.read()
    if text and not text.endswith('\n'):  # not written here; keep it a line of its own
      text += '\n'
  files.write_text_atomic(path, text + json.dumps(record, sort_keys=True) + '\n')


def read_launches(workdir):
  """The launch records of `workdir`, oldest first ([] when it has none)."""
  path = os.path.join(workdir, LAUNCHES_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
