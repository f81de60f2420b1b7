"""Trained codec workdirs, one per config per test session, shared by the codec test modules.

`workdir` is a `codec.py:tiny` run, `stft_workdir` a `stft_codec.py:tiny` run. Each is trained
in-process for its config's few steps on the session's synthetic_music/tiny build
(tests/conftest.py) through the real trainer (the compilations jax logged are kept beside it:
`compiled`), then its integer tables are exported as a user's workdir would have them. The
first module that asks trains (about a minute on a loaded 2-core machine); later modules find
the finished workdir (a DONE marker under the session's base temp dir) and reuse it.
"""

import logging

import jax

from fmacomp.configs import codec as codec_config
from fmacomp.configs import stft_codec as stft_codec_config
from fmacomp.fmac import model_store
from fmacomp.training import train

DONE = 'DONE'
COMPILED = 'compiled.txt'


class LogMessages(logging.Handler):
  """Collects the messages logged while attached (e.g. jax's compilation log lines)."""

  def __init__(self):
    super().__init__()
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


def _trained(tmp_path_factory, data_dir, config_module, name):
  """The workdir of `config_module`'s tiny config, trained once per session (a pathlib.Path)."""
  root = tmp_path_factory.getbasetemp() / name
  path = root / 'workdir'
  if not (root / DONE).exists():
    config = config_module.get_config('tiny')
    config.data.data_dir = str(data_dir)
    handler = LogMessages()
    logging.getLogger('jax').addHandler(handler)
    try:
      with jax.log_compiles(True):
        train.train_and_evaluate(config, str(path))
    finally:
      logging.getLogger('jax').removeHandler(handler)
    (root / COMPILED).write_text(''.join(
        m.splitlines()[0] + '\n' for m in handler.messages if m.startswith('Compiling ')))
    model_store.export_tables(str(path))
    (root / DONE).write_text('')
  return path


def compiled(path):
  """The 'Compiling ...' lines jax logged while the workdir at `path` trained."""
  return (path.parent / COMPILED).read_text().splitlines()


def workdir(tmp_path_factory, data_dir):
  """The trained conv_codec workdir."""
  return _trained(tmp_path_factory, data_dir, codec_config, 'tiny_codec')


def stft_workdir(tmp_path_factory, data_dir):
  """The trained stft_codec workdir (rate-conditioned: one operating point per gain row)."""
  return _trained(tmp_path_factory, data_dir, stft_codec_config, 'tiny_stft_codec')


def synthetic_music(seconds, rate, channels=1, seed=99):
  """Held-out music: synthetic_music tracks of a seed the tiny build (seed 0) never used.

  Returns float32 [T] (mono) or [T, channels]: channel i is track i of the style cycle, panned.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from fmacomp.datasets import synth  # pylint: disable=g-import-not-at-top
  from fmacomp.datasets import synthetic_music as sm  # pylint: disable=g-import-not-at-top
  tracks = [synth.render(sm.compose_track(seed, i % 8, i, seconds), rate)[:int(seconds * rate)]
            for i in range(max(channels, 2))]
  if channels == 1:
    return np.asarray(tracks[0], np.float32)
  mix = [0.7 * tracks[i] + 0.3 * tracks[(i + 1) % len(tracks)] for i in range(channels)]
  return np.stack(mix, axis=1).astype(np.float32)
