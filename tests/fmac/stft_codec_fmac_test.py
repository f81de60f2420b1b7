"""The frame-rate codec through real .fmac files: a tiny `stft_codec` trained for a few steps by
the real trainer (tests/trained_codec.py) codes music, silence and a 5-ms file at each of
its operating points, chunked like whole, through `compress.encode_file` / `decode_file`."""

import numpy as np
import pytest
import soundfile as sf

from fmacomp.fmac import compress
from fmacomp.fmac import file_format as fmac
from fmacomp.fmac import model_store
from fmacomp.models import hyperprior_coder

from tests import trained_codec

RATE = 16000
music = trained_codec.synthetic_music


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, tiny_data_dir):
  return trained_codec.stft_workdir(tmp_path_factory, tiny_data_dir)


@pytest.fixture(scope='module')
def points(workdir):
  return model_store.operating_points(str(workdir))


@pytest.fixture(scope='module')
def codecs(points):
  """One loaded Codec per point (each compiles its network once)."""
  return [model_store.Codec(p) for p in points]


def round_trip(codec, tmp_path, x, rate, name, chunk_s=compress.CHUNK_S):
  """(Result, decoded float32 [samples, channels]) of x through .fmac and back."""
  sf.write(tmp_path / f'{name}.wav', x, rate, subtype='FLOAT')
  result = compress.encode_file(tmp_path / f'{name}.wav', tmp_path / f'{name}.fmac', codec,
                                chunk_s=chunk_s)
  # The decoder finds the point by the header (a workdir, not a Codec, is passed).
  model = str(codec.point.workdir) if name == 'music1' else codec
  compress.decode_file(tmp_path / f'{name}.fmac', tmp_path / f'{name}.out.wav', model,
                       subtype='FLOAT')
  return result, sf.read(tmp_path / f'{name}.out.wav', dtype='float32', always_2d=True)[0]


def test_one_workdir_has_every_operating_point(workdir, points):
  assert [p.index for p in points] == [0, 1]  # lowest bitrate first: point 0's lambda is higher
  assert all(p.workdir == str(workdir) and p.model == 'stft_codec' for p in points)
  assert 0 < points[0].kbps < points[1].kbps
  assert model_store.nearest(points, 1.0).index == 0
  assert model_store.nearest(points, 100.0).index == 1
  codec = model_store.load(str(workdir), kbps=100.0)
  assert codec.latent_channels == 6 and codec.min_samples == 1
  assert set(codec.tables) == set(hyperprior_coder.KEYS)
  # Stored beside the checkpoint, with the checksum of the weights they were frozen from.
  again = model_store.load(str(workdir), kbps=1.0)
  for k in codec.tables:
    np.testing.assert_array_equal(codec.tables[k], again.tables[k])


def test_music_silence_and_5_ms_round_trip_at_every_point(codecs, tmp_path):
  x = music(4.0, RATE)
  kbps = {}
  for codec in codecs:
    point = codec.point
    signals = [('music', x), ('silence', np.zeros_like(x))]
    if point.index == 0:  # 5 ms at 16 kHz (two 64-sample frames), and 3 samples
      signals += [('short', x[:80]), ('tiny', x[:3])]
    for name, signal in signals:
      result, decoded = round_trip(codec, tmp_path, signal, RATE, f'{name}{point.index}')
      assert decoded.shape == (len(signal), 1), name
      header, _ = compress.read_header(tmp_path / f'{name}{point.index}.fmac')
      assert header.operating_point == point.index and header.num_samples == len(signal)
      kbps[name, point.index] = result.kbps
  print({k: round(v, 2) for k, v in kbps.items()})
  for p in (0, 1):
    assert kbps['silence', p] < 0.5 * kbps['music', p]
  assert kbps['music', 0] < kbps['music', 1]


def test_payload_matches_the_integer_tables_and_silence_is_all_zero(codecs, tmp_path):
  codec = codecs[1]
  round_trip(codec, tmp_path, np.zeros(RATE, np.float32), RATE, 'silence')
  symbols = compress.read_symbols(tmp_path / 'silence.fmac', codec)
  assert symbols.shape == (1, RATE // codec.hop, 6) and not symbols.any()
  round_trip(codec, tmp_path, music(3.0, RATE, seed=5), RATE, 'music')
  _, chunks = fmac.read_fmac(tmp_path / 'music.fmac')
  symbols = compress.read_symbols(tmp_path / 'music.fmac', codec)[0]
  real = 8 * len(chunks[0].streams[0])
  ideal = hyperprior_coder.table_bits(symbols, codec.tables)
  assert abs(real - ideal) <= 64 + 1e-3 * real
  assert codec.estimated_bits(symbols) == pytest.approx(ideal)


def test_chunked_coding_equals_whole_signal_coding_and_stereo(codecs, tmp_path):
  codec = codecs[0]
  x = music(6.0, RATE, seed=7)
  _, whole = round_trip(codec, tmp_path, x, RATE, 'whole', chunk_s=1000.0)
  _, chunked = round_trip(codec, tmp_path, x, RATE, 'chunked', chunk_s=0.5)
  assert len(fmac.read_fmac(tmp_path / 'chunked.fmac')[1]) >= 8
  a = compress.read_symbols(tmp_path / 'whole.fmac', codec)
  b = compress.read_symbols(tmp_path / 'chunked.fmac', codec)
  assert np.mean(a == b) > 0.999
  error = np.sqrt(np.mean((whole - chunked)**2) / np.mean(whole**2))
  assert error < 1e-3, error
  # Identical stereo channels: mid/side with an all-zero side costs little more than mono.
  mono, _ = round_trip(codec, tmp_path, x, RATE, 'mono')
  stereo, decoded = round_trip(codec, tmp_path, np.stack([x, x], 1), RATE, 'stereo')
  assert decoded.shape == (len(x), 2)
  assert stereo.bytes < 1.5 * mono.bytes


def test_a_side_channel_far_below_the_mid_is_left_uncoded(codecs, tmp_path):
  codec = codecs[1]
  x = music(4.0, RATE, seed=11)
  quiet = 0.98 * x  # side = 0.01 x: 40 dB below the mid in every frame, never coded
  loud = 0.3 * x  # side 5 dB below the mid: coded wherever there is sound
  # side_frames decides per frame from that frame's own energies.
  keep = compress.side_frames(codec, compress._to_coded(np.stack([x, quiet], 1), 'mid_side'))
  assert keep[0].all() and not keep[1].any()
  keep = compress.side_frames(codec, compress._to_coded(np.stack([x, loud], 1), 'mid_side'))
  assert keep[0].all() and keep[1].mean() > 0.95
  sizes = {}
  for name, right in (('quiet', quiet), ('loud', loud)):
    for chunk_s in (1000.0, 0.5):
      key = f'{name}_{chunk_s}'
      sizes[key], decoded = round_trip(codec, tmp_path, np.stack([x, right], 1), RATE, key,
                                       chunk_s=chunk_s)
      assert decoded.shape == (len(x), 2)
  side = compress.read_symbols(tmp_path / 'quiet_1000.0.fmac', codec)[1]
  assert not side.any()  # y and z of every side frame are 0
  np.testing.assert_array_equal(side, compress.read_symbols(tmp_path / 'quiet_0.5.fmac', codec)[1])
  assert compress.read_symbols(tmp_path / 'loud_1000.0.fmac', codec)[1].any()
  mono, _ = round_trip(codec, tmp_path, x, RATE, 'mono_quiet')
  assert sizes['quiet_1000.0'].bytes < 1.5 * mono.bytes < sizes['loud_1000.0'].bytes
