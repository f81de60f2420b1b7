"""Tests for fmacomp/audio.py on real files written with soundfile and decoded for real."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from fmacomp import audio
from fmacomp import errors

RATE = 44100


def _stereo_tone(rate, seconds, freq=440.0):
  """[T, 2]: the same tone at amplitude 0.4 (left) and 0.2 (right); the mono mix is 0.3."""
  t = np.arange(int(rate * seconds)) / rate
  tone = np.sin(2 * np.pi * freq * t)
  return np.stack([0.4 * tone, 0.2 * tone], axis=1).astype(np.float32)


def _peak_hz(x, rate):
  spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
  return np.argmax(spectrum) * rate / len(x)


def _write(path, x, rate, **kwargs):
  sf.write(str(path), x, rate, **kwargs)
  return path


@pytest.fixture
def truncated_mp3(tmp_path):
  """A real MP3 cut in half: its Xing header still declares the whole 3 s."""
  noise = np.random.default_rng(0).uniform(-0.5, 0.5, (3 * RATE, 2)).astype(np.float32)
  whole = _write(tmp_path / 'whole.mp3', noise, RATE)
  data = whole.read_bytes()
  cut = tmp_path / 'cut.mp3'
  cut.write_bytes(data[:len(data) // 2])
  return cut


# Each format libsndfile writes: extension, write kwargs, rate, lossless.
FORMATS = [
    ('wav', {}, RATE, True),
    ('flac', {}, 22050, True),
    ('ogg', {}, 32000, False),
    ('mp3', {}, 48000, False),
    ('opus', {'format': 'OGG', 'subtype': 'OPUS'}, 48000, False),
]


@pytest.mark.parametrize('ext,kwargs,rate,lossless', FORMATS, ids=[f[0] for f in FORMATS])
def test_read_each_format(tmp_path, ext, kwargs, rate, lossless):
  x = _stereo_tone(rate, 1.5)
  path = _write(tmp_path / f'tone.{ext}', x, rate, **kwargs)

  mono, got_rate = audio.read_audio(path)
  stereo, _ = audio.read_audio(path, mono=False)
  assert got_rate == rate
  assert mono.dtype == np.float32 and mono.shape == (len(x),)
  assert stereo.shape == (len(x), 2)
  np.testing.assert_allclose(mono, stereo.mean(axis=1), atol=1e-7)
  if lossless:
    np.testing.assert_allclose(stereo, x, atol=1 / 32768 + 1e-7)
  # The downmix is the 0.3-amplitude tone (RMS 0.3 / sqrt 2), still at 440 Hz.
  assert np.sqrt(np.mean(mono[rate // 4:-rate // 4]**2)) == pytest.approx(0.3 / np.sqrt(2),
                                                                           rel=0.05)
  assert abs(_peak_hz(mono, rate) - 440) < 2

  info = audio.audio_info(path)
  assert (info.sample_rate, info.channels, info.frames) == (rate, 2, len(x))
  assert info.duration_s == pytest.approx(1.5)
  assert info.format == ('OGG' if ext == 'opus' else ext.upper())


@pytest.mark.parametrize('ext', ['wav', 'mp3'])
def test_read_offset_and_duration_is_a_slice_of_the_whole(tmp_path, ext):
  x = np.random.default_rng(1).uniform(-0.5, 0.5, (2 * RATE, 2)).astype(np.float32)
  path = _write(tmp_path / f'noise.{ext}', x, RATE)
  whole, _ = audio.read_audio(path)
  part, _ = audio.read_audio(path, start_s=0.5, duration_s=0.25)
  np.testing.assert_array_equal(part, whole[RATE // 2:RATE // 2 + RATE // 4])
  tail, _ = audio.read_audio(path, start_s=1.5, duration_s=10.0)  # past the end: to the end
  np.testing.assert_array_equal(tail, whole[3 * RATE // 2:])


def test_resample_keeps_length_and_frequency(tmp_path):
  path = _write(tmp_path / 'tone.flac', _stereo_tone(RATE, 2.0, freq=1000.0), RATE)
  x, rate = audio.read_audio(path, sample_rate=16000)
  assert rate == 16000
  assert abs(len(x) - 2 * 16000) <= 1
  assert abs(_peak_hz(x, rate) - 1000) < 1
  assert np.sqrt(np.mean(x[4000:-4000]**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)

  stereo = audio.resample(_stereo_tone(RATE, 1.0), RATE, 8000)
  assert stereo.shape == (8000, 2) and stereo.dtype == np.float32
  same = _stereo_tone(RATE, 0.1)
  np.testing.assert_array_equal(audio.resample(same, RATE, RATE), same)


def test_to_mono():
  x = np.array([[1.0, 0.0], [0.5, -0.5]], np.float32)
  np.testing.assert_array_equal(audio.to_mono(x), [0.5, 0.0])
  np.testing.assert_array_equal(audio.to_mono(x[:, 0]), x[:, 0])


@pytest.mark.parametrize('mono', [True, False])
@pytest.mark.parametrize('sample_rate', [None, 16000])
def test_stream_blocks_equals_one_shot_read(tmp_path, mono, sample_rate):
  x = np.random.default_rng(2).uniform(-0.5, 0.5, (3 * RATE + 123, 2)).astype(np.float32)
  path = _write(tmp_path / 'long.flac', x, RATE)
  whole, _ = audio.read_audio(path, sample_rate=sample_rate, mono=mono)
  blocks = list(audio.stream_blocks(path, block_s=0.5, sample_rate=sample_rate, mono=mono))
  assert len(blocks) >= 6
  # Memory is bounded by the block: no block is much longer than 0.5 s at the output rate.
  out_rate = sample_rate or RATE
  assert max(len(b) for b in blocks) <= 0.5 * out_rate + 1000
  streamed = np.concatenate(blocks)
  assert streamed.shape == whole.shape
  np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_write_audio_is_atomic_and_follows_the_extension(tmp_path):
  x = _stereo_tone(48000, 0.5)
  for ext, fmt, subtype in [('wav', 'WAV', 'PCM_16'), ('flac', 'FLAC', 'PCM_16'),
                            ('ogg', 'OGG', 'VORBIS'), ('opus', 'OGG', 'OPUS'),
                            ('mp3', 'MP3', 'MPEG_LAYER_III')]:
    path = tmp_path / f'out.{ext}'
    audio.write_audio(path, x, 48000)
    info = audio.audio_info(path)
    assert (info.format, info.subtype, info.channels, info.sample_rate) == (
        fmt, subtype, 2, 48000)
  # Integer PCM clips instead of wrapping around.
  audio.write_audio(tmp_path / 'loud.wav', np.array([2.0, -2.0, 0.5], np.float32), 8000)
  loud, _ = audio.read_audio(tmp_path / 'loud.wav')
  np.testing.assert_allclose(loud, [32767 / 32768, -1.0, 0.5])
  # A failed write leaves the existing file untouched and no temporary file behind.
  with pytest.raises(Exception):
    audio.write_audio(tmp_path / 'out.wav', x, 48000, subtype='NOT_A_SUBTYPE')
  assert audio.audio_info(tmp_path / 'out.wav').frames == len(x)
  assert sorted(os.listdir(tmp_path)) == sorted(
      ['out.wav', 'out.flac', 'out.ogg', 'out.opus', 'out.mp3', 'loud.wav'])


def _bad_files(tmp_path, truncated_mp3):
  """name -> (path, words the reason must contain)."""
  (tmp_path / 'empty.mp3').write_bytes(b'')
  (tmp_path / 'text.mp3').write_text('this is not audio\n' * 20)
  (tmp_path / 'folder.wav').mkdir()
  noise = np.random.default_rng(3).uniform(-0.5, 0.5, 2 * RATE).astype(np.float32)
  bad = {}
  data = _write(tmp_path / 'whole.flac', noise, RATE).read_bytes()
  (tmp_path / 'cut.flac').write_bytes(data[:len(data) // 2])
  bad['missing'] = (tmp_path / 'missing.wav', 'no such file')
  bad['empty'] = (tmp_path / 'empty.mp3', 'empty')
  bad['text'] = (tmp_path / 'text.mp3', 'not a readable audio file')
  bad['folder'] = (tmp_path / 'folder.wav', 'directory')
  bad['cut_mp3'] = (truncated_mp3, 'truncated')
  bad['cut_flac'] = (tmp_path / 'cut.flac', 'cannot decode')
  return bad


@pytest.mark.parametrize('reader', ['read_audio', 'audio_info', 'stream_blocks'])
def test_every_bad_file_raises_audio_error_naming_it(tmp_path, truncated_mp3, reader):
  read = {
      'read_audio': audio.read_audio,
      'audio_info': audio.audio_info,
      'stream_blocks': lambda p: list(audio.stream_blocks(p, block_s=0.25)),
  }[reader]
  for name, (path, words) in _bad_files(tmp_path, truncated_mp3).items():
    if reader == 'audio_info' and name in ('cut_mp3', 'cut_flac'):
      continue  # the header is intact: only decoding finds these
    with pytest.raises(errors.AudioError) as e:
      read(path)
    assert e.value.path == str(path), name
    assert str(path) in str(e.value) and words in e.value.reason, (name, e.value.reason)
    assert e.value.exit_code == 2


@pytest.mark.parametrize('ext', ['wav', 'ogg'])
def test_cut_file_without_a_length_header_reads_as_its_prefix(tmp_path, ext):
  """The documented behaviour: nothing declares the lost part, so the rest is returned."""
  noise = np.random.default_rng(3).uniform(-0.5, 0.5, 2 * RATE).astype(np.float32)
  whole = _write(tmp_path / f'whole.{ext}', noise, RATE)
  data = whole.read_bytes()
  cut = tmp_path / f'cut.{ext}'
  cut.write_bytes(data[:len(data) // 2])
  full, _ = audio.read_audio(whole)
  prefix, _ = audio.read_audio(cut)
  assert 0 < len(prefix) < len(full)
  np.testing.assert_array_equal(prefix, full[:len(prefix)])


def test_read_past_the_end_raises(tmp_path):
  path = _write(tmp_path / 'short.wav', np.zeros(RATE, np.float32), RATE)
  with pytest.raises(errors.AudioError, match='past the end'):
    audio.read_audio(path, start_s=2.0)


def test_segment_pad_and_drop():
  x = np.arange(11, dtype=np.float32)
  segs, valid = audio.segment(x, 4, 3, last='pad')  # starts 0, 3, 6 full; 9 partial
  np.testing.assert_array_equal(segs, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [9, 10, 0, 0]])
  np.testing.assert_array_equal(valid, [4, 4, 4, 2])
  segs, valid = audio.segment(x, 4, 3, last='drop')
  np.testing.assert_array_equal(segs, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
  np.testing.assert_array_equal(valid, [4, 4, 4])
  # An exact fit has no partial segment under either policy.
  for last in ('pad', 'drop'):
    segs, valid = audio.segment(np.arange(8), 4, 4, last=last)
    np.testing.assert_array_equal(valid, [4, 4])


def test_segment_short_empty_and_multichannel():
  segs, valid = audio.segment(np.ones(3, np.float32), 5, 5)
  np.testing.assert_array_equal(segs, [[1, 1, 1, 0, 0]])
  np.testing.assert_array_equal(valid, [3])
  segs, valid = audio.segment(np.ones(3, np.float32), 5, 5, last='drop')
  assert segs.shape == (0, 5) and valid.shape == (0,)
  segs, valid = audio.segment(np.zeros(0, np.float32), 5, 5)
  assert segs.shape == (0, 5)
  stereo = np.arange(14, dtype=np.float32).reshape(7, 2)
  segs, valid = audio.segment(stereo, 4, 4)
  assert segs.shape == (2, 4, 2) and segs.dtype == np.float32
  np.testing.assert_array_equal(segs[1, :3], stereo[4:])
  np.testing.assert_array_equal(segs[1, 3], [0, 0])
  with pytest.raises(ValueError):
    audio.segment(stereo, 4, 4, last='wrap')


def test_evenly_spaced_starts():
  starts = audio.evenly_spaced_starts(1000, 100, 5)
  np.testing.assert_array_equal(starts, [90, 270, 450, 630, 810])
  assert list(audio.evenly_spaced_starts(1000, 100, 1)) == [450]
  assert list(audio.evenly_spaced_starts(50, 100, 3)) == [0, 0, 0]
  starts = audio.evenly_spaced_starts(30 * RATE, 131072, 5)
  assert starts[0] >= 0 and starts[-1] + 131072 <= 30 * RATE
  assert np.all(np.diff(starts) > 0)


def _numpy_stft(x, n_fft, hop):
  """The definition, in float64 numpy: centred, reflect-padded, periodic Hann, plain DFT."""
  xp = np.pad(x.astype(np.float64), [(0, 0)] * (x.ndim - 1) + [(n_fft // 2,) * 2], 'reflect')
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
  frames = np.stack([xp[..., f * hop:f * hop + n_fft] for f in range(1 + x.shape[-1] // hop)],
                    axis=-2)
  return np.fft.rfft(frames * window, axis=-1)


def test_stft_shape_contract_and_values():
  x = np.random.default_rng(4).uniform(-1, 1, (2, 65536)).astype(np.float32)
  spec = audio.stft(x, 512, 128)
  assert spec.shape == (2, 513, 257) and spec.dtype == jnp.complex64
  ref = _numpy_stft(x, 512, 128)
  assert np.abs(np.asarray(spec) - ref).max() < 1e-5 * np.abs(ref).max()
  # Frame f is centred on sample f * hop: an impulse at 128 * 10 shows in frame 10 only
  # (with the window's peak 1 on every bin).
  impulse = np.zeros(4096, np.float32)
  impulse[1280] = 1.0
  mag = np.abs(np.asarray(audio.stft(impulse, 512, 128)))
  np.testing.assert_allclose(mag[10], 1.0, atol=1e-6)
  assert audio.stft(np.zeros((3, 1, 1000)), 64, 16).shape == (3, 1, 63, 33)
  with pytest.raises(ValueError):
    audio.stft(np.zeros(100), 512, 128)  # too short to reflect-pad


@pytest.mark.parametrize('n_fft,hop,length', [(512, 128, 65536), (512, 128, 12345),
                                              (100, 30, 5000), (2048, 512, 4000),
                                              (512, 128, 300)])  # fewer frames than n_fft / hop
def test_istft_inverts_stft(n_fft, hop, length):
  x = np.random.default_rng(5).uniform(-1, 1, (2, length)).astype(np.float32)
  y = jax.jit(lambda x: audio.istft(audio.stft(x, n_fft, hop), n_fft, hop, length))(x)
  assert y.shape == x.shape and y.dtype == jnp.float32
  assert float(jnp.abs(y - x).max()) < 1e-5


def test_stft_istft_are_differentiable():
  x = jnp.asarray(np.random.default_rng(6).uniform(-1, 1, 2048).astype(np.float32))
  loss = lambda x: jnp.sum(audio.istft(audio.stft(x, 256, 64) * 0.5, 256, 64, 2048)**2)
  grad = jax.jit(jax.grad(loss))(x)
  # istft(0.5 * stft(x)) = 0.5 x, so the gradient of sum((0.5 x)^2) is 0.5 x.
  np.testing.assert_allclose(grad, 0.5 * x, atol=1e-5)


# librosa 0.11.0: librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128), entries [mel, bin].
LIBROSA_22050_2048_128 = [(0, 2, 0.03236570581793785), (0, 3, 0.028990088030695915),
                          (10, 26, 0.0330609455704689), (40, 99, 0.029527638107538223),
                          (90, 373, 0.009049039334058762), (127, 997, 0.0034852505195885897)]


def test_mel_filterbank_matches_librosa_and_is_area_normalised():
  fb = audio.mel_filterbank(22050, 2048, 128)
  assert fb.shape == (1025, 128) and fb.dtype == np.float32
  assert fb.min() >= 0 and np.all(fb.max(axis=0) > 0)
  for mel, b, value in LIBROSA_22050_2048_128:
    assert fb[b, mel] == pytest.approx(value, rel=1e-5)
  # norm='slaney': each triangle has unit area in Hz (checked where it spans many bins).
  fine = audio.mel_filterbank(8000, 8192, 20)
  area = fine.sum(axis=0) * 8000 / 8192
  np.testing.assert_allclose(area, 1.0, rtol=0.02)
  # fmin/fmax bound the filters.
  band = audio.mel_filterbank(16000, 512, 40, fmin=300.0, fmax=4000.0)
  hz = np.linspace(0, 8000, 257)
  assert band[(hz < 300) | (hz > 4000)].max() == 0
  with pytest.raises(ValueError):
    fb[0, 0] = 1.0  # cached and shared: read-only


def test_mel_spectrogram_and_log_mel():
  rate = 16000
  t = np.arange(rate) / rate
  tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
  mel = audio.mel_spectrogram(np.stack([tone, np.zeros_like(tone)]), rate, 1024, 256, 64)
  assert mel.shape == (2, 1 + rate // 256, 64) and mel.dtype == jnp.float32
  # The tone's energy lands in the band whose filter peaks nearest 1 kHz.
  fb = audio.mel_filterbank(rate, 1024, 64)
  peak_bin = round(1000 * 1024 / rate)
  assert int(jnp.argmax(mel[0].mean(axis=0))) == int(np.argmax(fb[peak_bin]))
  power = audio.mel_spectrogram(tone, rate, 1024, 256, 64, power=2.0)
  assert float(power.max()) > float(mel.max())**1.5
  log = audio.log_mel(np.zeros(4000, np.float32), rate, 512, 128, 40)
  np.testing.assert_array_equal(log, -5.0)  # log10 of the 1e-5 floor
  grad = jax.grad(lambda x: jnp.sum(audio.log_mel(x, rate, 512, 128, 40)))(jnp.zeros(4000))
  assert bool(jnp.all(jnp.isfinite(grad)))
