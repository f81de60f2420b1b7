"""The end-to-end smoke study, run once per test session and shared by the tests that read it.

`launch/main.py --smoke` on `synthetic_music/tiny` in a temporary directory (a subprocess, as a
user runs it). study_test checks the job itself; evaluate_test and report_test read its
eval/results.json and report.html, so the tiny models are trained once, not three times.
"""

import dataclasses
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAIN = ROOT / 'launch' / 'main.py'
TIMEOUT_S = 600
_CACHE = {}


@dataclasses.dataclass(frozen=True)
class Study:
  workdir: pathlib.Path
  data_dir: pathlib.Path
  run: subprocess.CompletedProcess  # the first (training) run
  seconds: float


def run_main(workdir, data_dir, *flags):
  return subprocess.run(
      [sys.executable, str(MAIN), f'--workdir={workdir}', '--dataset=synthetic_music/tiny',
       f'--data_dir={data_dir}', *flags], capture_output=True, text=True, timeout=TIMEOUT_S,
      env=dict(os.environ, TFDS_DATA_DIR='', JAX_PLATFORMS='cpu'))


def get(tmp_path_factory):
  """The session's smoke study (run on first use)."""
  if 'study' not in _CACHE:
    root = tmp_path_factory.mktemp('smoke_study')
    t0 = time.time()
    run = run_main(root / 'study', root / 'data', '--smoke')
    _CACHE['study'] = Study(root / 'study', root / 'data', run, time.time() - t0)
  study = _CACHE['study']
  assert study.run.returncode == 0, study.run.stderr[-3000:]
  return study
