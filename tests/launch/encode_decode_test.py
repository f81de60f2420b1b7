"""launch/encode.py and launch/decode.py as a user runs them, in subprocesses, on the session's
trained tiny codec (tests/trained_codec.py): the stdout contract, a round trip that restores the
original's rate, channels and length, the default shipped model, and one-line errors with exit 2
and no output file."""

import os
import re

import numpy as np
import pytest
import soundfile as sf

from fmacomp.fmac import model_store
from tests import trained_codec

SUMMARY = re.compile(r'^duration_s=([0-9.]+) bytes=(\d+) kbps=([0-9.]+)$')


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, tiny_data_dir):
  return trained_codec.workdir(tmp_path_factory, tiny_data_dir)


def assert_one_line_error(result, path, reason):
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stdout == ''
  errors = [l for l in result.stderr.splitlines() if l.startswith('fmacomp: error:')]
  assert len(errors) == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert errors[0].startswith(f'fmacomp: error: {path}: ') and reason in errors[0], errors[0]


@pytest.fixture(scope='module')
def song(launcher, workdir, tmp_path_factory):
  """encode.py on 2 s of stereo 44.1 kHz FLAC, not a whole number of frames: (dir, result)."""
  tmp = tmp_path_factory.mktemp('song')
  x = trained_codec.synthetic_music(2.0, 44100, 2, seed=11)[:88199]
  sf.write(tmp / 'song.flac', x, 44100)
  result = launcher.run('encode.py', tmp / 'song.flac', tmp / 'song.fmac', f'--model={workdir}',
                        '--kbps=2')
  assert result.returncode == 0, result.stderr[-3000:]
  return tmp, result


def test_round_trip_through_the_commands(launcher, workdir, song, tmp_path):
  tmp, enc = song
  lines = enc.stdout.strip().splitlines()
  assert re.match(r'^model=conv_codec operating_point=0 nominal_kbps=[0-9.]+$', lines[-2])
  duration, size, kbps = SUMMARY.match(lines[-1]).groups()
  assert int(size) == os.path.getsize(tmp / 'song.fmac')
  assert float(duration) == pytest.approx(88199 / 44100, abs=1e-3)
  assert float(kbps) == pytest.approx(int(size) * 8 / float(duration) / 1000, rel=1e-3)
  assert 'operating point 0' in enc.stderr  # --kbps says which point it picked
  dec = launcher.run('decode.py', tmp / 'song.fmac', tmp_path / 'song.wav', f'--model={workdir}')
  assert dec.returncode == 0, dec.stderr[-3000:]
  assert SUMMARY.match(launcher.last_line(dec.stdout))
  info = sf.info(tmp_path / 'song.wav')
  assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, 88199,
                                                                          'PCM_16')


def test_encode_uses_the_default_shipped_model_without_model_or_kbps(launcher, tmp_path):
  sf.write(tmp_path / 'clip.wav', trained_codec.synthetic_music(1.0, 22050), 22050)
  result = launcher.run('encode.py', tmp_path / 'clip.wav', tmp_path / 'clip.fmac')
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  point = model_store.nearest(model_store.operating_points(model_store.DEFAULT_MODEL),
                              model_store.DEFAULT_KBPS)  # the README: the point nearest 6 kbps
  assert lines[-2].startswith(f'model={model_store.DEFAULT_MODEL} '
                              f'operating_point={point.index} '), lines
  assert model_store.DEFAULT_MODEL == 'music-fullband-v1'  # what the README promises
  assert SUMMARY.match(lines[-1])


def test_encode_errors_are_one_line_exit_2_and_leave_nothing(launcher, workdir, tmp_path):
  sf.write(tmp_path / 'short.wav', np.zeros(10, np.float32), 16000)
  out = tmp_path / 'out.fmac'
  cases = [
      ((tmp_path / 'missing.wav', out, f'--model={workdir}'), tmp_path / 'missing.wav',
       'no such file'),
      ((tmp_path / 'short.wav', out, f'--model={workdir}'), tmp_path / 'short.wav',
       'less than one latent frame'),
      ((tmp_path / 'short.wav', out, f'--model={tmp_path / "nowhere"}'), tmp_path / 'nowhere',
       'unknown model'),
  ]
  for args, path, reason in cases:
    assert_one_line_error(launcher.run('encode.py', *args), path, reason)
    assert not out.exists()
  assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]


def test_decode_errors_are_one_line_exit_2_and_leave_nothing(launcher, workdir, song, tmp_path):
  data = (song[0] / 'song.fmac').read_bytes()
  (tmp_path / 'cut.fmac').write_bytes(data[:-5])
  (tmp_path / 'good.fmac').write_bytes(data)
  out = tmp_path / 'out.wav'
  out.write_bytes(b'previous')  # replaced only by a successful decode
  cases = [
      (tmp_path / 'cut.fmac', (f'--model={workdir}',), 'truncated'),
      (tmp_path / 'good.fmac', (), 'not a shipped model'),
  ]
  for path, flags, reason in cases:
    assert_one_line_error(launcher.run('decode.py', path, out, *flags), path, reason)
    assert out.read_bytes() == b'previous'
  assert sorted(os.listdir(tmp_path)) == ['cut.fmac', 'good.fmac', 'out.wav']
