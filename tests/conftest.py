"""Fixtures shared by the training tests: one tiny dataset build and one reference run.

`tiny_data_dir` builds `synthetic_music/tiny` once per session (about 15 s). `reference_run` is
one uninterrupted `launch/train.py` run of REFERENCE_FLAGS (a time_ae tiny config that saves
every step), made once per session, with `jax_log_compiles` on; the resume, multi-device,
multi-process, non-finite and recompilation tests compare themselves with it.

Launchers run as subprocesses, each under a timeout, on CPU; XLA_FLAGS reaches a subprocess
only when a test passes it (it must be set before jax is imported, so never in this process).
"""

import dataclasses
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch'
CONFIGS = REPO / 'fmacomp' / 'configs'
TIMEOUT_S = 240
DATASET = 'synthetic_music/tiny'


class Launcher:
  """Runs `launch/<script>` in a subprocess on CPU, under a timeout (the `launcher` fixture)."""

  repo = REPO
  configs = CONFIGS
  timeout_s = TIMEOUT_S

  @staticmethod
  def env(**extra):
    """The environment: CPU, no inherited XLA_FLAGS or compile logging, `extra` on top."""
    env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'JAX_LOG_COMPILES')}
    env.update(JAX_PLATFORMS='cpu', TFDS_DATA_DIR='', **extra)
    return env

  @staticmethod
  def command(script, *args):
    return [sys.executable, str(LAUNCH / script), *map(str, args)]

  @staticmethod
  def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else ''

  def run(self, script, *args, env=None, timeout=TIMEOUT_S):
    """Runs to completion; returns the CompletedProcess (text stdout and stderr)."""
    return subprocess.run(self.command(script, *args), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env or self.env())


def reference_flags(data_dir):
  """time_ae tiny for 12 steps, a checkpoint every step, validation on the whole split."""
  return [f'--config={CONFIGS / "time_ae.py"}:tiny', f'--config.data.name={DATASET}',
          f'--config.data.data_dir={data_dir}', '--config.steps=12',
          '--config.checkpoint_every=1', '--config.eval_every=6', '--config.log_every=2',
          '--config.eval_batches=0']


@dataclasses.dataclass
class Run:
  """A finished launcher run."""
  workdir: pathlib.Path
  flags: list
  result: subprocess.CompletedProcess

  @property
  def checksum(self):
    return Launcher.last_line(self.result.stdout).partition('=')[2]


@pytest.fixture(scope='session')
def launcher():
  return Launcher()


@pytest.fixture(scope='session')
def tiny_data_dir(tmp_path_factory):
  """A session's synthetic_music/tiny build (8 styles x 4 tracks x 6 s at 16 kHz)."""
  from fmacomp import datasets  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp('tfds')
  datasets.prepare(DATASET, data_dir=str(data_dir))
  return data_dir


@pytest.fixture(scope='session')
def reference_run(launcher, tiny_data_dir, tmp_path_factory):
  """The uninterrupted single-device run of `reference_flags`, compiles logged."""
  workdir = tmp_path_factory.mktemp('reference') / 'wd'
  flags = reference_flags(tiny_data_dir)
  result = launcher.run('train.py', *flags, f'--workdir={workdir}',
                        env=launcher.env(JAX_LOG_COMPILES='1'))
  assert result.returncode == 0, result.stderr[-3000:]
  assert Launcher.last_line(result.stdout).startswith('params_checksum=')
  return Run(workdir, flags, result)
