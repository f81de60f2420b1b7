"""The codec as its users meet it: the `fmacomp` command and the Python API, on the shipped
models and 1-2 s clips.

The command runs as a user runs it (a subprocess, JAX_PLATFORMS unset, so JAX probes every
backend): batches in one call, stdout's lines, a silent stderr, the original's rate, channels
and length back, one-line errors with their exit codes, and `--help` and `info` without JAX.
"""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from fmacomp import errors
from fmacomp.fmac import cli
from fmacomp.fmac import model_store
from tests import signals

SUMMARY = re.compile(r'^duration_s=([0-9.]+) bytes=(\d+) kbps=([0-9.]+)$')
TIMEOUT_S = 240
# Clips that exercise the three codings: mono resampled, stereo (mid/side) at the model rate,
# stereo resampled, none a whole number of latent frames.
CLIPS = {'mono.wav': (22050, 1, 1.5), 'stereo.flac': (44100, 2, 1.0),
         'wide.wav': (48000, 2, 1.25)}


def _clip(rate, channels, seconds):
  """float32 [T] or [T, channels] of plucked notes (seeds differ per channel)."""
  x = np.stack([signals.plucked_notes(seconds, rate, seed=c) for c in range(channels)], axis=1)
  return x[:-7, 0] if channels == 1 else x[:-7]


def run_fmacomp(*args, cwd=None):
  """`fmacomp ARGS` in a subprocess, as an installed console script runs it."""
  env = {k: v for k, v in os.environ.items() if k not in ('JAX_PLATFORMS', 'XLA_FLAGS')}
  return subprocess.run([sys.executable, '-c', 'import sys; from fmacomp.fmac.cli import main; '
                         'sys.exit(main(sys.argv[1:]))', *map(str, args)], capture_output=True,
                        text=True, timeout=TIMEOUT_S, env=env, cwd=cwd)


def _quiet(stderr):
  """No library chatter: JAX's backend probing, orbax's metadata warning, absl, TFDS."""
  noise = [l for l in stderr.splitlines() if re.search(r'tpu|Metadata file|absl|WARNING', l)]
  return stderr == '' and not noise


@pytest.fixture(scope='module')
def batch(tmp_path_factory):
  """One `fmacomp encode FOLDER --out_dir` and one `fmacomp decode A B --out_dir` call."""
  tmp = tmp_path_factory.mktemp('batch')
  (tmp / 'in').mkdir()
  for name, (rate, channels, seconds) in CLIPS.items():
    sf.write(tmp / 'in' / name, _clip(rate, channels, seconds), rate)
  (tmp / 'in' / 'notes.txt').write_text('not audio: a folder gives its audio files only')
  enc = run_fmacomp('encode', tmp / 'in', '--out_dir', tmp / 'fmac')
  fmacs = [tmp / 'fmac' / (os.path.splitext(n)[0] + '.fmac') for n in sorted(CLIPS)]
  dec = run_fmacomp('decode', *fmacs, f'--out_dir={tmp / "wav"}')
  return tmp, enc, dec


def test_a_folder_encodes_in_one_call_with_the_default_model_and_a_quiet_stderr(batch):
  tmp, enc, _ = batch
  assert enc.returncode == 0, enc.stderr[-3000:]
  assert _quiet(enc.stderr), enc.stderr[-3000:]
  lines = enc.stdout.splitlines()
  assert len(lines) == 3 * len(CLIPS)
  for name, (head, point, summary) in zip(sorted(CLIPS), zip(*[iter(lines)] * 3)):
    out = tmp / 'fmac' / (os.path.splitext(name)[0] + '.fmac')
    assert head == f'in={tmp / "in" / name} out={out}'
    assert re.match(r'^model=music-fullband-v1 operating_point=[0-9] nominal_kbps=[0-9.]+$', point)
    duration, size, _ = SUMMARY.match(summary).groups()
    rate, _, _ = CLIPS[name]
    assert int(size) == os.path.getsize(out)
    assert float(duration) == pytest.approx(sf.info(tmp / 'in' / name).frames / rate, abs=1e-3)
  assert sorted(os.listdir(tmp / 'fmac')) == ['mono.fmac', 'stereo.fmac', 'wide.fmac']


def test_several_files_decode_to_the_originals_rate_channels_and_length(batch):
  tmp, enc, dec = batch
  assert enc.returncode == 0 and dec.returncode == 0, dec.stderr[-3000:]
  assert _quiet(dec.stderr), dec.stderr[-3000:]
  assert [SUMMARY.match(l) is not None for l in dec.stdout.splitlines()] == [False, True] * 3
  for name in CLIPS:
    original = sf.info(tmp / 'in' / name)
    decoded = sf.info(tmp / 'wav' / (os.path.splitext(name)[0] + '.wav'))
    assert (decoded.samplerate, decoded.channels, decoded.frames, decoded.subtype) == (
        original.samplerate, original.channels, original.frames, 'PCM_16')


def _default_point():
  return model_store.nearest(model_store.operating_points(model_store.DEFAULT_MODEL),
                             model_store.DEFAULT_KBPS)


def test_info_describes_a_file_and_checks_it_without_jax(batch):
  tmp, enc, _ = batch
  assert enc.returncode == 0
  path = tmp / 'fmac' / 'stereo.fmac'
  result = subprocess.run(
      [sys.executable, '-c', 'import sys; from fmacomp.fmac.cli import main; main(sys.argv[1:]);'
       ' assert "jax" not in sys.modules', 'info', str(path)],
      capture_output=True, text=True, timeout=TIMEOUT_S)
  assert result.returncode == 0 and result.stderr == '', result.stderr[-3000:]
  info = dict(line.split('=', 1) for line in result.stdout.splitlines())
  size = os.path.getsize(path)
  assert info['file'] == str(path) and info['model'] == model_store.DEFAULT_MODEL
  assert (info['operating_point'], info['sample_rate'], info['channels'], info['stereo_mode'],
          info['num_samples']) == (str(_default_point().index), '44100', '2', 'mid_side',
                                   str(44100 - 7))
  assert float(info['duration_s']) == pytest.approx((44100 - 7) / 44100, abs=1e-3)
  assert int(info['bytes']) == size
  assert float(info['kbps']) == pytest.approx(size * 8 / ((44100 - 7) / 44100) / 1000, rel=1e-3)
  assert int(info['chunks']) >= 1 and info['checksums'] == 'ok'


@pytest.mark.parametrize('args', [['--help'], ['encode', '--help'], ['decode', '--help']])
def test_help_answers_without_importing_jax(args):
  result = subprocess.run(
      [sys.executable, '-c', 'import sys, fmacomp; from fmacomp.fmac.cli import main\n'
       'try:\n  main(sys.argv[1:])\nfinally:\n  assert "jax" not in sys.modules',
       *args], capture_output=True, text=True, timeout=TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.startswith('usage: fmacomp') and result.stderr == ''


def test_pip_installs_the_fmacomp_command():
  # Every installed copy's metadata (a stale egg-info in the checkout may come first on the path).
  scripts = {ep.value for dist in importlib.metadata.distributions()
             if dist.metadata['Name'] == 'fmacomp' for ep in dist.entry_points
             if (ep.group, ep.name) == ('console_scripts', 'fmacomp')}
  assert scripts == {'fmacomp.fmac.cli:main'}
  script = shutil.which('fmacomp', path=os.path.dirname(sys.executable))
  assert script, 'run `pip install -e .` to install the fmacomp command'
  result = subprocess.run([script, '--version'], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
  assert (result.returncode, result.stdout, result.stderr) == (0, 'fmacomp 0.1.0\n', '')


def _fails(capsys, *args):
  """`fmacomp ARGS` in this process -> (exit code, its one stderr line); nothing on stdout."""
  with pytest.raises(SystemExit) as exit_info:
    cli.main([str(a) for a in args])
  out, err = capsys.readouterr()
  assert out == '' and 'Traceback' not in err, (out, err)
  assert len(err.splitlines()) == 1 and err.startswith('fmacomp: error: '), err
  return exit_info.value.code, err.strip()


def test_bad_input_and_usage_are_one_line_with_exit_2(batch, tmp_path, capsys):
  tmp, enc, _ = batch
  assert enc.returncode == 0
  data = bytearray((tmp / 'fmac' / 'mono.fmac').read_bytes())
  data[-3] ^= 0xFF  # a flipped byte in the last chunk: its CRC catches it
  (tmp_path / 'bad.fmac').write_bytes(bytes(data))
  mono = tmp / 'in' / 'mono.wav'
  cases = [
      (('encode', tmp_path / 'missing.wav', '-o', tmp_path / 'x.fmac'),
       f'{tmp_path / "missing.wav"}: no such file'),
      (('encode', mono, mono, '-o', tmp_path / 'x.fmac'), '-o: names one output, but 2 inputs'),
      (('encode', mono, '--kbps=0'), '--kbps: must be a positive number'),
      (('encode', mono, '--kbps=x'), "encode: argument --kbps: invalid float value: 'x'"),
      (('encode', mono, '--model', tmp_path / 'nowhere', '-o', tmp_path / 'x.fmac'),
       f'{tmp_path / "nowhere"}: unknown model'),
      (('encode', tmp_path), f'{tmp_path}: folder holds no'),
      (('decode', tmp_path / 'bad.fmac', '-o', tmp_path / 'x.wav'),
       f'{tmp_path / "bad.fmac"}: chunk 0 CRC mismatch (corrupted)'),
      (('decode', mono, '-o', tmp_path / 'x.wav'), f'{mono}: not an .fmac file'),
      (('info', tmp_path / 'bad.fmac'), f'{tmp_path / "bad.fmac"}: chunk 0 CRC mismatch'),
      (('decode',), 'decode: the following arguments are required: IN.fmac'),
      (('compress', mono), "usage: argument COMMAND: invalid choice: 'compress'"),
  ]
  for args, message in cases:
    code, line = _fails(capsys, *args)
    assert code == 2 and line.startswith(f'fmacomp: error: {message}'), (args, line)
  assert sorted(os.listdir(tmp_path)) == ['bad.fmac']  # no output, no temporary file


def test_decode_never_replaces_a_file_it_named_itself(batch, tmp_path, capsys):
  tmp, enc, _ = batch
  assert enc.returncode == 0
  (tmp_path / 'mono.fmac').write_bytes((tmp / 'fmac' / 'mono.fmac').read_bytes())
  (tmp_path / 'mono.wav').write_bytes(b'the original')
  code, line = _fails(capsys, 'decode', tmp_path / 'mono.fmac')
  assert code == 2 and line.startswith(f'fmacomp: error: {tmp_path / "mono.wav"}: exists')
  assert (tmp_path / 'mono.wav').read_bytes() == b'the original'


class _StubCodec:
  model, operating_point, nominal_kbps, codec = 'stub', 0, 1.0, None


def test_a_run_time_failure_is_one_line_with_exit_1_and_a_traceback_only_if_verbose(
    batch, tmp_path, capsys, monkeypatch):
  from fmacomp.fmac import api  # pylint: disable=g-import-not-at-top
  from fmacomp.fmac import compress  # pylint: disable=g-import-not-at-top

  def broken(*unused_args):
    raise ValueError('the network returned nonsense')

  monkeypatch.setattr(api, 'load_codec', lambda *unused: _StubCodec())
  monkeypatch.setattr(compress, 'encode_file', broken)
  mono = batch[0] / 'in' / 'mono.wav'
  code, line = _fails(capsys, 'encode', mono, '-o', tmp_path / 'x.fmac')
  assert (code, line) == (1, f'fmacomp: error: {mono}: ValueError: the network returned '
                             'nonsense')
  with pytest.raises(SystemExit):
    cli.main(['encode', str(mono), '-o', str(tmp_path / 'x.fmac'), '--verbose'])
  assert 'Traceback' in capsys.readouterr().err
  assert not os.listdir(tmp_path)


def test_encoding_uses_the_default_model_unless_told_otherwise():
  from fmacomp.fmac import api  # pylint: disable=g-import-not-at-top
  assert model_store.DEFAULT_MODEL == 'music-fullband-v1'
  assert model_store.DEFAULT_MODEL in model_store.shipped_models()
  points = model_store.operating_points(model_store.DEFAULT_MODEL)
  assert api.choose_point() == model_store.nearest(points, model_store.DEFAULT_KBPS)
  # --kbps picks among the default model's points only; other models by name only.
  for kbps in (1, 5, 14, 100):
    assert api.choose_point(kbps=kbps) == model_store.nearest(points, kbps)
  assert api.choose_point(kbps=1) == points[0] and api.choose_point(kbps=100) == points[-1]
  assert len({api.choose_point(kbps=p.kbps) for p in points}) == len(points) >= 4
  assert api.choose_point('music-12kbps', kbps=5).model == 'music-12kbps'
  assert api.choose_point('music-6kbps').model == 'music-6kbps'
  with pytest.raises(errors.InputError, match='--kbps'):
    api.choose_point(kbps=-1)


def test_importing_fmacomp_imports_no_jax():
  result = subprocess.run(
      [sys.executable, '-c', 'import sys, fmacomp; assert callable(fmacomp.load_codec); '
       'assert "jax" not in sys.modules, sorted(sys.modules)'],
      capture_output=True, text=True, timeout=TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope='module')
def codec():
  import fmacomp  # pylint: disable=g-import-not-at-top
  return fmacomp.load_codec()


@pytest.mark.parametrize('name', ['mono.wav', 'stereo.flac'])
def test_the_python_api_round_trip_keeps_shape_rate_and_length(codec, name, tmp_path):
  rate, channels, seconds = CLIPS[name]
  x = _clip(rate, channels, seconds)
  data = codec.encode(x, rate)
  assert isinstance(data, bytes) and data[:8] == b'\x89FMAC\r\n\x1a'
  y, got_rate = codec.decode(data)
  assert (y.shape, y.dtype, got_rate) == (x.shape, np.float32, rate)
  assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.05  # music, not silence
  assert codec.decode(data, always_2d=True)[0].shape == (len(x), channels)
  # The same bytes as the file encoder writes for a float file of the same audio.
  sf.write(tmp_path / 'x.wav', x, rate, subtype='FLOAT')
  from fmacomp.fmac import compress  # pylint: disable=g-import-not-at-top
  compress.encode_file(tmp_path / 'x.wav', tmp_path / 'x.fmac', codec.codec)
  assert (tmp_path / 'x.fmac').read_bytes() == data
  # Integer PCM is scaled as soundfile reads it.
  pcm = np.round(x * 32767).astype(np.int16)
  assert codec.decode(codec.encode(pcm, rate))[0].shape == x.shape


def test_the_python_api_refuses_bad_arguments_naming_them(codec):
  x = _clip(22050, 1, 1.0)
  cases = [
      (lambda: codec.encode(np.zeros((4, 4, 2)), 22050), 'audio: audio must be'),
      (lambda: codec.encode(np.full(22050, np.nan), 22050), 'audio: audio holds NaN'),
      (lambda: codec.encode(x, 0), 'sample_rate: sample rate must be'),
      (lambda: codec.encode(x, 22050.5), 'sample_rate: sample rate must be'),
      (lambda: codec.decode('not bytes'), 'data: must be the bytes'),
      (lambda: codec.decode(b'\x89FMAC\r\n\x1a'), 'data: truncated'),
  ]
  for call, message in cases:
    with pytest.raises(errors.InputError) as error:
      call()
    assert str(error.value).startswith(message), str(error.value)
  other = model_store.Codec(api_point('music-6kbps'))
  from fmacomp.fmac import compress  # pylint: disable=g-import-not-at-top
  data = compress.encode_array(x[:, None], 22050, other)
  with pytest.raises(errors.InputError, match="encoded with model 'music-6kbps'"):
    codec.decode(data)
  # The default model codes any length; the older models refuse less than one latent frame.
  restored, rate = codec.decode(codec.encode(x[:10], 22050))
  assert rate == 22050 and restored.shape == (10,)
  with pytest.raises(errors.InputError, match='too short'):
    compress.encode_array(x[:10, None], 22050, other)


def api_point(name):
  (point,) = model_store.operating_points(name)
  return point
