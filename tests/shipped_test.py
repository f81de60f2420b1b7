"""The shipped real-music codecs: present in the package, and each one encodes and decodes.

They are read through the installed package (`importlib.resources`), as after `pip install`;
`setup.cfg`'s package_data (`shipped/*, shipped/**/*`) is what puts them there, which a test
checks on a wheel built from this checkout: every shipped file is in it, and encode and decode
run from the unpacked wheel alone, as does the wheel's `fmacomp` console script.
"""

import importlib.resources
import json
import os
import re
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
from fmacomp import models

from tests import trained_codec

RATE = 44100


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


def test_the_default_model_and_the_older_three_are_shipped():
  names = _package_models()
  assert names == model_store.shipped_models()
  assert model_store.DEFAULT_MODEL in names and OLDER <= set(names)
  for name in names:
    folder = os.path.join(model_store.SHIPPED_DIR, name)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
    assert size < MAX_BYTES[name], (name, size)
    with open(os.path.join(folder, 'config.json')) as f:
      family = json.load(f)['model']['name']
    points = model_store.operating_points(name)
    assert all(p.model == name for p in points)
    rates = [p.kbps for p in points]
    assert rates == sorted(rates) and len({round(r, 1) for r in rates}) == len(rates), rates
    if name in OLDER:  # one conv_codec per bitrate
      assert family == 'conv_codec' and len(points) == 1 and 3 <= rates[0] <= 24, rates
    else:  # one rate-conditioned network, several bitrates
      assert family in models.RATE_CONDITIONED and len(points) >= 4, (family, rates)
      assert 2 <= rates[0] <= 4 and rates[-1] >= 2 * rates[0], rates


# Quality floors, on 4-s synthetic_music clips at each model's rate (seeds 101 and 103, measured
# here), per operating point. kbps: within KBPS_BAND of the point's validation rate (a header and
# chunk context on 4 s). Older models, at 22.05 kHz: mel distance at most 2.44 / 2.75 / 2.94
# (6 / 9 / 12 kbps), noise of the clip's loudness 5.5-6.6, silence 11-12: each floor is 1.35x
# its model's worst, and noise and silence miss every floor by >= 1.39x. Log-spectral distance
# (dB): 9.6-14.7, noise 23.6-28.9, silence 54-56; floor 19, >= 1.24x from each side. (Plucked
# notes, tests/signals.py, cannot tell a codec from noise under these metrics: noise scores 3.9
# on them, the 12-kbps model 3.1-3.4.) music-fullband-v1, at 44.1 kHz: mel distance at most
# 2.27 / 2.22 / 2.22 / 2.20 / 2.20 (points 0-4), floors 1.35x those; noise 8.0-8.5 and silence
# 12.2-12.8 miss them by >= 2.6x; LSD 11.4-13.5 dB (noise 41-48, silence 69-70); kbps 1.01-1.18x
# each point's validation rate (the rate follows the content: synthetic music is not the
# validation music), so its band is 30 %.
MEL_FLOORS = {'music-6kbps': {0: 3.3}, 'music-9kbps': {0: 3.7}, 'music-12kbps': {0: 4.0},
              'music-fullband-v1': {0: 3.07, 1: 3.0, 2: 3.0, 3: 2.97, 4: 2.97}}
LSD_FLOOR = 19.0
KBPS_BAND = {'music-6kbps': 0.1, 'music-9kbps': 0.1, 'music-12kbps': 0.1, 'music-fullband-v1': 0.3}
QUALITY_RATE = {'music-6kbps': 22050, 'music-9kbps': 22050, 'music-12kbps': 22050,
                'music-fullband-v1': 44100}
OLDER = {'music-6kbps', 'music-9kbps', 'music-12kbps'}
MAX_BYTES = {name: 5_000_000 for name in OLDER}  # "a few MB" per model
MAX_BYTES['music-fullband-v1'] = 10_000_000  # 4.9 M parameters, dense kernels as float16


def _quality(x, y, rate):
  """(mel distance, log-spectral distance) of `y` against the reference `x`."""
  return metrics.mel_distance(x, y, rate), metrics.log_spectral_distance(x, y, rate)


def _passes(floor, quality):
  mel, lsd = quality
  return mel < floor and lsd < LSD_FLOOR


@pytest.mark.parametrize('name', model_store.shipped_models())
def test_each_operating_point_of_each_shipped_model_encodes_and_decodes(name, tmp_path):
  assert name in MEL_FLOORS, f'{name}: measure its quality and give it floors'
  rate = QUALITY_RATE[name]
  for point in model_store.operating_points(name):
    codec = model_store.Codec(point)
    floor = MEL_FLOORS[name][point.index]
    for seed in (101, 103):
      x = trained_codec.synthetic_music(4.0, rate, seed=seed)
      src, fmac, out = tmp_path / 'in.wav', tmp_path / 'x.fmac', tmp_path / 'out.wav'
      sf.write(src, x, rate, subtype='FLOAT')
      result = compress.encode_file(src, fmac, codec)
      header, _ = compress.read_header(fmac)
      assert header.model == name and header.operating_point == point.index
      assert result.bytes == os.path.getsize(fmac)
      assert abs(result.kbps / point.kbps - 1) < KBPS_BAND[name], (result.kbps, point.kbps)
      compress.decode_file(fmac, out)  # the model is found from the header's name alone
      y, out_rate = sf.read(out, dtype='float32')
      assert out_rate == rate and y.shape == x.shape
      quality = _quality(x, y, rate)
      print(f'{name} p{point.index} seed={seed} kbps={result.kbps:.3f} mel={quality[0]:.3f} '
            f'lsd={quality[1]:.2f}')
      assert _passes(floor, quality), quality
      # A broken codec fails the same floors: noise of the clip's loudness, or silence.
      noise = np.random.default_rng(seed).standard_normal(x.size).astype(np.float32)
      noise *= np.std(x) / np.std(noise)
      assert not _passes(floor, _quality(x, noise, rate))
      assert not _passes(floor, _quality(x, np.zeros_like(x), rate))


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
  _check_the_console_script(wheel, site, tmp_path)


def _check_the_console_script(wheel, site, tmp_path):
  """The wheel's `fmacomp` command: encode two files, decode them and describe one."""
  (entry_points,) = [n for n in zipfile.ZipFile(wheel).namelist()
                     if n.endswith('.dist-info/entry_points.txt')]
  text = zipfile.ZipFile(wheel).read(entry_points).decode()
  (target,) = re.findall(r'^fmacomp\s*=\s*(\S+)$', text.split('[console_scripts]')[1], re.M)
  assert target == 'fmacomp.fmac.cli:main', text
  module, function = target.split(':')
  # What pip's generated `fmacomp` script does, from the unpacked wheel alone.
  script = (f'import sys; import fmacomp; assert fmacomp.__file__.startswith({str(site)!r}); '
            f'from {module} import {function}; sys.exit({function}())')
  rate = 22050
  for name, channels in (('one.wav', 1), ('two.wav', 2)):
    sf.write(tmp_path / name, np.tile(_music(1.0)[:rate, None], (1, channels)), rate)

  def fmacomp_command(*args):
    result = subprocess.run([sys.executable, '-c', script, *map(str, args)],
                            env={**os.environ, 'PYTHONPATH': str(site)}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == '', result.stderr[-3000:]
    return result.stdout.splitlines()

  encoded = fmacomp_command('encode', tmp_path / 'one.wav', tmp_path / 'two.wav',
                            '--out_dir', tmp_path / 'fmac')
  assert encoded[1].startswith(f'model={model_store.DEFAULT_MODEL} ')
  assert sorted(os.listdir(tmp_path / 'fmac')) == ['one.fmac', 'two.fmac']
  fmacomp_command('decode', tmp_path / 'fmac' / 'one.fmac', tmp_path / 'fmac' / 'two.fmac',
                  '--out_dir', tmp_path / 'wav')
  for name, channels in (('one.wav', 1), ('two.wav', 2)):
    info = sf.info(tmp_path / 'wav' / name)
    assert (info.samplerate, info.channels, info.frames) == (rate, channels, rate)
  described = fmacomp_command('info', tmp_path / 'fmac' / 'two.fmac')
  assert {'channels=2', f'sample_rate={rate}', 'checksums=ok'} <= set(described), described
