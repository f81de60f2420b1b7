"""The shipped real-music codecs: present in the package, and each one encodes and decodes.

They are read through the installed package (`importlib.resources`), as after `pip install`;
`setup.cfg`'s package_data (`shipped/*, shipped/**/*`) is what puts them there.
"""

import importlib.resources
import json
import os

import numpy as np
import pytest
import soundfile as sf

from fmacomp import compress
from fmacomp import metrics
from fmacomp import model_store

RATE = 44100
MAX_BYTES = 5_000_000  # "a few MB" per model


def _package_models():
  root = importlib.resources.files('fmacomp') / 'shipped'
  return sorted(p.name for p in root.iterdir() if (p / 'config.json').is_file())


def _music(seconds=1.5, seed=0):
  """A short mono clip: three decaying harmonic notes over soft noise. [T] float32"""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * RATE)) / RATE
  x = 0.01 * rng.standard_normal(t.size)
  for k, f0 in enumerate((220.0, 277.2, 329.6)):
    onset = k * seconds / 4
    env = np.where(t >= onset, np.exp(-3 * (t - onset)), 0.0)
    x += sum(0.15 / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 6)) * env
  return (0.8 * x / np.abs(x).max()).astype(np.float32)


def test_three_operating_points_between_3_and_24_kbps_are_shipped():
  names = _package_models()
  assert names == model_store.shipped_models()
  assert len(names) >= 3
  rates = []
  for name in names:
    folder = os.path.join(model_store.SHIPPED_DIR, name)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
    assert size < MAX_BYTES, (name, size)
    with open(os.path.join(folder, 'config.json')) as f:
      assert json.load(f)['model']['name'] == 'conv_codec'
    (point,) = model_store.operating_points(name)
    assert point.model == name
    rates.append(point.kbps)
  assert all(3 <= r <= 24 for r in rates), rates
  assert len({round(r) for r in rates}) == len(rates), rates  # distinct operating points


@pytest.mark.parametrize('name', model_store.shipped_models())
def test_each_shipped_model_encodes_and_decodes(name, tmp_path):
  x = _music()
  src, fmac, out = tmp_path / 'in.wav', tmp_path / 'x.fmac', tmp_path / 'out.wav'
  sf.write(src, x, RATE, subtype='FLOAT')
  result = compress.encode_file(src, fmac, model_store.load(name))
  header, _ = compress.read_header(fmac)
  assert header.model == name
  assert result.bytes == os.path.getsize(fmac)
  assert 1 < result.kbps < 40, result.kbps  # header and chunk context weigh on 1.5 s
  compress.decode_file(fmac, out)  # the model is found from the header's name alone
  y, rate = sf.read(out, dtype='float32')
  assert rate == RATE and y.shape == x.shape
  # The decoded clip is music, not silence or noise: far closer to the input than silence is.
  assert metrics.mel_distance(x, y, RATE) < 0.5 * metrics.mel_distance(x, 0 * x + 1e-4, RATE)
