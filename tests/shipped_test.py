"""The shipped real-music codecs: present in the package, and each one encodes and decodes.

They are read through the installed package (`importlib.resources`), as after `pip install`;
`setup.cfg`'s package_data (`shipped/*, shipped/**/*`) is what puts them there, which a test
checks on a wheel built from this checkout: every shipped file is in it, and encode and decode
run from the unpacked wheel alone.
"""

import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import soundfile as sf

import fmacomp
from fmacomp.fmac import compress
from fmacomp.fmac import model_store
from fmacomp import metrics

RATE = 44100
MAX_BYTES = 5_000_000  # "a few MB" per model


def _package_models():
  root = importlib.resources.files('fmacomp.fmac') / 'shipped'
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


WHEEL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import soundfile as sf
    import fmacomp
    from fmacomp.fmac import compress, model_store
    site, tmp = sys.argv[1:3]
    assert fmacomp.__file__.startswith(site), fmacomp.__file__
    rate = 22050
    t = np.arange(rate) / rate
    sf.write(tmp + '/in.wav', 0.3 * np.sin(2 * np.pi * 440 * t), rate)
    for name in model_store.shipped_models():
      compress.encode_file(tmp + '/in.wav', tmp + '/x.fmac', model_store.load(name))
      compress.decode_file(tmp + '/x.fmac', tmp + '/out.wav')
      assert sf.info(tmp + '/out.wav').frames == rate
      print(name)
""")


def test_a_wheel_carries_every_shipped_model_and_they_run_from_it(tmp_path):
  # A copy of the checkout's package files, so that no stale build/ folder leaks into the wheel
  # and the build writes nothing into the checkout.
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  source = tmp_path / 'source'
  shutil.copytree(os.path.join(repo, 'fmacomp'), source / 'fmacomp',
                  ignore=shutil.ignore_patterns('__pycache__'))
  for name in ('setup.cfg', 'pyproject.toml', 'README.md'):
    shutil.copy(os.path.join(repo, name), source / name)
  # No build isolation: the test extra pins a setuptools that builds wheels by itself, offline.
  build = subprocess.run(
      [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
       '--disable-pip-version-check',
       '-w', str(tmp_path / 'dist'), str(source)], capture_output=True, text=True, timeout=300)
  assert build.returncode == 0, build.stderr[-3000:]
  (wheel,) = (tmp_path / 'dist').glob('fmacomp-*.whl')
  names = set(zipfile.ZipFile(wheel).namelist())
  root = os.path.dirname(os.path.dirname(os.path.abspath(fmacomp.__file__)))  # site-packages
  shipped = {os.path.relpath(os.path.join(d, f), root)
             for d, _, fs in os.walk(model_store.SHIPPED_DIR) for f in fs}
  assert shipped and shipped <= names, sorted(shipped - names)[:5]
  site = tmp_path / 'site'
  zipfile.ZipFile(wheel).extractall(site)
  run = subprocess.run([sys.executable, '-c', WHEEL_SCRIPT, str(site), str(tmp_path)],
                       env={**os.environ, 'PYTHONPATH': str(site)}, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stdout.split() == model_store.shipped_models()
