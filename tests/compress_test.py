"""compress: real files through a really trained tiny codec (tests/trained_codec.py).

Round trips of every input format at several rates and channel counts, the real payload
against the entropy model's estimate, chunked against whole-signal coding, memory against
length, a fuzz test through the real decoder, and every bad-input path.
"""

import collections
import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import soxr

from fmacomp import audio
from fmacomp import errors
from fmacomp.fmac import compress
from fmacomp.fmac import file_format as fmac
from fmacomp.fmac import model_store
from fmacomp import metrics
from fmacomp.models import bottleneck

from tests import codec_test
from tests import trained_codec

music = trained_codec.synthetic_music


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, tiny_data_dir):
  return trained_codec.workdir(tmp_path_factory, tiny_data_dir)


@pytest.fixture(scope='module')
def codec(workdir):
  return model_store.load(str(workdir))


def write(path, x, rate):
  audio.write_audio(path, x, rate)
  return path


def coded_symbols(path, codec):
  """Every stored symbol of a file: [(chunk frames, [channels x [frames, C]])]."""
  header, chunks = fmac.read_fmac(path)
  return header, chunks, [
      [bottleneck.decode_symbols(s, codec.tables, (c.frames, codec.latent_channels))
       for s in c.streams] for c in chunks]


def snr_db(reference, other):
  return 10 * np.log10(np.sum(reference**2) / max(np.sum((reference - other)**2), 1e-30))


def library_decode(fmac_path, codec):
  """What `decode_file` must write, from the library's own parts, before the output's
  quantisation: `decode_chunks`' audio of each chunk, back from mid/side, through one soxr
  stream to the original rate, cut to the header's length (padded with silence if the
  resampler fell short), clipped. float32 [samples, channels]."""
  header, chunks = compress.read_header(fmac_path)
  pieces = list(compress.decode_chunks(header, chunks, codec, str(fmac_path)))
  resampler = None
  if header.sample_rate != codec.sample_rate:
    resampler = soxr.ResampleStream(codec.sample_rate, header.sample_rate, header.channels,
                                    dtype='float32', quality='HQ')
  out = []
  for k, y in enumerate(pieces):  # y: [channels coded, t]
    x = np.stack([y[0] + y[1], y[0] - y[1]], axis=1) if header.stereo_mode == 'mid_side' else y.T
    if resampler is not None:
      x = resampler.resample_chunk(x, last=k == len(pieces) - 1)
    out.append(x)
  x = np.concatenate(out)[:header.num_samples]
  x = np.pad(x, ((0, header.num_samples - len(x)), (0, 0)))
  return np.clip(x, -1.0, 1.0)


def as_pcm16(path, x, rate):
  """`x` quantised to 16 bits as soundfile writes a PCM_16 file: int16 [samples, channels]."""
  sf.write(path, x, rate, subtype='PCM_16')
  return sf.read(path, dtype='int16', always_2d=True)[0]


@pytest.mark.parametrize('ext,rate,channels', [
    ('wav', 16000, 1), ('flac', 44100, 2), ('ogg', 22050, 2), ('mp3', 48000, 1),
    ('wav', 8000, 2)])
def test_round_trip_restores_rate_channels_and_length(codec, tmp_path, ext, rate, channels):
  """The contract, exactly: rate, channels and length restored; the bytes are the file's size
  and the same for the same samples in another container; the WAV holds the library's own
  decode, to the bit. (How good the audio is: the shipped-model test below; this crude codec's
  quality depends on the processor that trained it.)"""
  source = write(tmp_path / f'in.{ext}', music(2.5, rate, channels), rate)
  original, _ = audio.read_audio(source, mono=False)  # what the codec sees (MP3 decoded)
  result = compress.encode_file(source, tmp_path / 'x.fmac', codec)
  data = (tmp_path / 'x.fmac').read_bytes()
  assert result.bytes == len(data) == os.path.getsize(tmp_path / 'x.fmac')
  assert result.duration_s == pytest.approx(len(original) / rate)
  # The same samples in a float WAV: the same bytes (the container leaves no trace).
  sf.write(tmp_path / 'same.wav', original, rate, subtype='FLOAT')
  compress.encode_file(tmp_path / 'same.wav', tmp_path / 'same.fmac', codec)
  assert (tmp_path / 'same.fmac').read_bytes() == data
  header, _ = compress.read_header(tmp_path / 'x.fmac')
  assert (header.sample_rate, header.channels, header.num_samples) == (
      rate, channels, len(original))
  compress.decode_file(tmp_path / 'x.fmac', tmp_path / 'y.wav', codec)
  info = sf.info(tmp_path / 'y.wav')
  assert (info.samplerate, info.channels, info.frames) == (rate, channels, len(original))
  assert info.subtype == 'PCM_16'
  decoded = sf.read(tmp_path / 'y.wav', dtype='int16', always_2d=True)[0]
  expected = as_pcm16(tmp_path / 'expected.wav', library_decode(tmp_path / 'x.fmac', codec), rate)
  np.testing.assert_array_equal(decoded, expected)
  assert np.abs(decoded).max() > 0  # not silence: the bit-exact check compares real audio


# A shipped codec's quality on held-out music, judged against what a broken codec would give:
# noise of the music's loudness, or silence. Mel distances of music-9kbps on 4-s synthetic_music
# clips at 22.05 kHz, seeds 100-103 (measured here): 2.1-2.8 through the codec, 5.5-6.6 for
# noise, 11-12 for silence (plucked notes are no use here: noise scores 3.9 on them, too near
# the codec's 2.4-2.6). The bound sits about 1.4x from each side.
MEL_BOUND = 3.9


def _shipped_quality(codec, tmp_path, x, rate):
  """(mel distance through the codec, of noise of the same loudness, of silence), mono."""
  source = write(tmp_path / 'music.wav', x, rate)
  compress.encode_file(source, tmp_path / 'music.fmac', codec)
  compress.decode_file(tmp_path / 'music.fmac', tmp_path / 'music_out.wav', codec)
  y, _ = audio.read_audio(tmp_path / 'music_out.wav')
  noise = np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
  noise *= np.std(x) / np.std(noise)
  return tuple(metrics.mel_distance(x, z, rate) for z in (y, noise, np.zeros_like(x)))


@pytest.fixture(scope='module')
def shipped():
  return model_store.load('music-9kbps')


@pytest.mark.parametrize('seed', [100, 101, 102])
def test_a_shipped_codec_keeps_music_that_noise_and_silence_lose(shipped, tmp_path, seed):
  coded, noise, silence = _shipped_quality(shipped, tmp_path, music(4.0, 22050, seed=seed),
                                           22050)
  print(f'seed={seed} mel_coded={coded:.3f} mel_noise={noise:.3f} mel_silence={silence:.3f} '
        f'bound={MEL_BOUND}')
  assert coded < MEL_BOUND
  assert noise > MEL_BOUND and silence > MEL_BOUND  # the bound tells a broken codec apart


def test_stereo_channels_stay_apart(codec, tmp_path):
  left, right = music(3.0, 16000, 2).T
  source = write(tmp_path / 'lr.wav', np.stack([left, 0.1 * right], axis=1), 16000)
  compress.encode_file(source, tmp_path / 'lr.fmac', codec)
  header, _ = fmac.read_fmac(tmp_path / 'lr.fmac')
  assert header.stereo_mode == 'mid_side' and header.channels == 2
  compress.decode_file(tmp_path / 'lr.fmac', tmp_path / 'lr.wav', codec)
  out, _ = sf.read(tmp_path / 'lr.wav')
  # Measured 0.05-0.22 over three training seeds of this codec: far from 0.5.
  assert np.std(out[:, 1]) < 0.5 * np.std(out[:, 0])  # the quiet channel stays quiet
  # The stored channels are mid and side: the symbols of (L + R) / 2 and (L - R) / 2 coded as
  # mono files (at the codec's rate: no resampler in between).
  x = np.stack([left, 0.1 * right], axis=1).astype(np.float32)
  stereo = compress.read_symbols(tmp_path / 'lr.fmac', codec)  # [2, frames, C]
  for k, part in enumerate(((x[:, 0] + x[:, 1]) / 2, (x[:, 0] - x[:, 1]) / 2)):
    sf.write(tmp_path / f'part{k}.wav', part, 16000, subtype='FLOAT')
    compress.encode_file(tmp_path / f'part{k}.wav', tmp_path / f'part{k}.fmac', codec)
    mono = compress.read_symbols(tmp_path / f'part{k}.fmac', codec)[0]
    # Equal but for a rare rounding tie (a batch of 2 against 1 in the network).
    assert np.mean(stereo[k] == mono) > 0.999, k


def test_real_payload_matches_the_estimate_on_held_out_music(codec, tmp_path):
  x = music(12.0, 16000, seed=123)  # neither in the build nor in the other tests
  source = write(tmp_path / 'held_out.wav', x, 16000)
  result = compress.encode_file(source, tmp_path / 'h.fmac', codec, chunk_s=4.0)
  _, chunks, symbols = coded_symbols(tmp_path / 'h.fmac', codec)
  coded = np.concatenate([s for per_chunk in symbols for s in per_chunk])  # [frames, C]
  payload = 8 * sum(len(s) for c in chunks for s in c.streams)
  estimate = codec.estimated_bits(coded)
  gap = payload / estimate - 1
  levels = 2 * codec.model.max_symbol + 1
  # The training loss's own estimate for the whole signal (no seams, no header).
  whole = codec.model.apply(codec.variables, x[None], train=False)['bits'][0]
  print(f'payload_bits={payload} estimated_bits={estimate:.0f} gap={100 * gap:.2f}% '
        f'bits_per_symbol={payload / coded.size:.3f} log2_levels={np.log2(levels):.3f} '
        f'file_kbps={result.kbps:.3f} whole_signal_estimate_kbps={whole / 12.0 / 1000:.3f}')
  assert abs(gap) < 0.05
  assert payload / coded.size < np.log2(levels)
  assert abs(8 * result.bytes / float(whole) - 1) < 0.1  # seams and header cost a few %


def test_chunked_coding_equals_whole_signal_coding(codec, tmp_path):
  x = music(8.0, 16000, seed=7)
  source = write(tmp_path / 'in.wav', x, 16000)
  compress.encode_file(source, tmp_path / 'whole.fmac', codec, chunk_s=1000.0)
  compress.encode_file(source, tmp_path / 'chunked.fmac', codec, chunk_s=0.5)
  _, whole_chunks, whole = coded_symbols(tmp_path / 'whole.fmac', codec)
  _, chunks, parts = coded_symbols(tmp_path / 'chunked.fmac', codec)
  assert len(whole_chunks) == 1 and len(chunks) >= 15
  # Own frames of each chunk, in order, give the whole signal's symbols.
  c = codec.decoder_frames
  own = [p[0][(c if k else 0):len(p[0]) - (c if k < len(parts) - 1 else 0)]
         for k, p in enumerate(parts)]
  agree = np.mean(np.concatenate(own) == whole[0][0])
  np.testing.assert_array_equal(compress.read_symbols(tmp_path / 'chunked.fmac', codec)[0],
                                np.concatenate(own))
  for name in ('whole', 'chunked'):
    compress.decode_file(tmp_path / f'{name}.fmac', tmp_path / f'{name}.wav', codec,
                         subtype='FLOAT')
  a, _ = sf.read(tmp_path / 'whole.wav')
  b, _ = sf.read(tmp_path / 'chunked.wav')
  # Energy in one-hop windows around each seam, against the same windows of the whole decode.
  seams, at = [], 0
  for k, o in enumerate(own[:-1]):
    at += len(o) * codec.hop
    seams.append(slice(at - codec.hop, at + codec.hop))
  ratio = max(np.sqrt(np.mean(b[s]**2) / max(np.mean(a[s]**2), 1e-12)) for s in seams)
  print(f'chunks={len(chunks)} symbols_equal={100 * agree:.3f}% snr_chunked_vs_whole_db='
        f'{snr_db(a, b):.1f} max_seam_rms_ratio={ratio:.4f}')
  assert agree > 0.999
  assert snr_db(a, b) > 50
  assert ratio < 1.05


# Peak RSS is VmHWM, the high-water mark of this process's own address space: getrusage's
# ru_maxrss survives execve, so a child of the (large) pytest process would report pytest's size.
MEMORY_SCRIPT = textwrap.dedent('''
    import json, sys
    from fmacomp.fmac import compress, model_store
    workdir, source, out = sys.argv[1:4]
    codec = model_store.load(workdir)
    encoded = compress.encode_file(source, out + '.fmac', codec, chunk_s=2.0)
    compress.decode_file(out + '.fmac', out + '.wav', codec)
    with open('/proc/self/status') as f:
      peak_kb = next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))
    print(json.dumps({'peak_kb': peak_kb, 'bytes': encoded.bytes}))
''')


def loop_to_flac(path, clip, rate, seconds):
  """A long stereo FLAC written block by block (the test itself never holds it whole)."""
  with sf.SoundFile(path, 'w', samplerate=rate, channels=clip.shape[1], format='FLAC') as f:
    for _ in range(int(seconds // (len(clip) / rate))):
      f.write(clip)


def test_memory_does_not_grow_with_length(workdir, tmp_path):
  clip = music(10.0, 22050, 2)
  peaks = {}
  for minutes in (1, 8):
    source = tmp_path / f'{minutes}min.flac'
    loop_to_flac(source, clip, 22050, 60 * minutes)
    run = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT, str(workdir), str(source),
                          str(tmp_path / f'{minutes}min')], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    peaks[minutes] = json.loads(run.stdout.strip().splitlines()[-1])['peak_kb'] / 1024
    assert sf.info(tmp_path / f'{minutes}min.wav').frames == sf.info(source).frames
  growth = peaks[8] - peaks[1]
  # Holding 7 more minutes of 22.05 kHz stereo float32 would take 71 MiB. The peak of runs of the
  # same length varies by up to 7 MiB (allocator, compile), so the bound is well above that and
  # well below the cost of holding the signal.
  print(f'peak_rss_1min_mib={peaks[1]:.1f} peak_rss_8min_mib={peaks[8]:.1f} '
        f'growth_mib={growth:.1f}')
  assert growth < 30


@pytest.fixture(scope='module')
def encoded(codec, tmp_path_factory):
  """A real stereo file of several chunks: (path, bytes)."""
  tmp = tmp_path_factory.mktemp('encoded')
  source = write(tmp / 'in.flac', music(3.0, 22050, 2, seed=5), 22050)
  compress.encode_file(source, tmp / 'real.fmac', codec, chunk_s=0.5)
  return tmp / 'real.fmac', (tmp / 'real.fmac').read_bytes()


def refused(path, out, codec, match=None):
  """decode_file must raise InputError naming `path` and leave no output; returns the reason."""
  with pytest.raises(errors.InputError) as info:
    compress.decode_file(path, out, codec)
  assert info.value.path == str(path)
  assert not os.path.exists(out) and not any('.tmp' in n for n in os.listdir(out.parent))
  if match:
    assert match in info.value.reason, info.value.reason
  return info.value.reason


def test_fuzz_through_the_real_decoder(codec, encoded, tmp_path):
  """codec_test's mutations of every region, then forged ones with valid CRCs, through
  decode_file: audio only for the unmodified file; forgeries reach the model, layout and
  payload checks and end in InputError or in audio of exactly the header's length."""
  path, data = encoded
  target, out = tmp_path / 'fuzz.fmac', tmp_path / 'out.wav'
  stages = collections.Counter()
  rng = np.random.default_rng(0)
  for case, (_, _, mutated) in enumerate(codec_test.fuzz_cases(data, rng)):
    # Every other case: codec_test runs them all on the reader; here they reach the decoder.
    if case % 2 or mutated == data:
      continue
    target.write_bytes(mutated)
    stages[codec_test.stage(refused(target, out, codec))] += 1
  header, chunks = fmac.read_fmac(path)
  forged = collections.Counter()
  for case in range(160):
    if case % 2:  # a payload bit flip, CRCs recomputed by the writer
      k, ch = rng.integers(len(chunks)), rng.integers(header.channels)
      streams = [bytearray(s) for s in chunks[k].streams]
      bit = rng.integers(8 * len(streams[ch]))
      streams[ch][bit // 8] ^= 1 << (bit % 8)
      damaged = list(chunks)
      damaged[k] = fmac.Chunk(chunks[k].frames, tuple(map(bytes, streams)))
      fmac.write_fmac(target, header, damaged)
    else:  # a header or chunk-table bit flip, header CRC recomputed
      header_len, = struct.unpack_from('<I', data, 10)
      bit = rng.integers(8 * (header_len - 4))
      flipped = bytearray(data)
      flipped[bit // 8] ^= 1 << (bit % 8)
      target.write_bytes(codec_test.resign(bytes(flipped)))
    try:
      result = compress.decode_file(target, out, codec)
    except errors.InputError as e:
      assert e.path == str(target) and not out.exists()
      forged[_forged_stage(e.reason)] += 1
      continue
    # A forgery can be a valid file (ANS cannot tell); then it decodes to the header's shape.
    decoded_header, _ = fmac.read_fmac(target)
    assert sf.info(out).frames == decoded_header.num_samples
    assert result.duration_s == pytest.approx(decoded_header.num_samples /
                                              decoded_header.sample_rate)
    forged['decoded'] += 1
    out.unlink()
  result = compress.decode_file(path, out, codec)  # the unmodified file
  assert sf.info(out).frames == header.num_samples and result.bytes == len(data)
  total = sum(stages.values())
  print(f'fuzz_cases={total} stages={dict(stages)} forged={dict(forged)}')
  assert total > 2000 and stages['header_crc'] > 0 and stages['chunk_crc'] > 0
  assert forged['payload'] > 0 and forged['model'] + forged['layout'] > 0


def _forged_stage(reason):
  for key, name in (('corrupt payload', 'payload'), ('encoded with', 'model'),
                    ('chunk', 'layout'), ('frames', 'layout'), ('hop', 'layout')):
    if key in reason:
      return name
  return 'header'


def test_decode_refuses_foreign_and_damaged_files(codec, encoded, tmp_path):
  path, data = encoded
  out = tmp_path / 'out.wav'
  cases = {
      'truncated': (data[:len(data) - 7], 'truncated'),
      'corrupted': (data[:-20] + bytes([data[-20] ^ 0x10]) + data[-19:], 'CRC mismatch'),
      'version': (codec_test.resign(data[:8] + struct.pack('<H', 9) + data[10:]),
                  'format version 9'),
      'other_weights': (codec_test.resign(data[:42] + bytes(16) + data[58:]), 'other weights'),
      'not_fmac': (b'RIFF' + data[4:], 'not an .fmac file'),
  }
  name_len = data[14]
  other = b'x' * name_len  # same length: the header layout stays valid
  cases['other_model'] = (codec_test.resign(data[:58] + other + data[58 + name_len:]),
                          f"encoded with model '{other.decode()}', not 'conv_codec'")
  for name, (content, reason) in cases.items():
    (tmp_path / f'{name}.fmac').write_bytes(content)
    refused(tmp_path / f'{name}.fmac', out, codec, reason)
  refused(tmp_path / 'missing.fmac', out, codec, 'No such file')
  # No model given: the header's model is looked up among the shipped ones.
  with pytest.raises(errors.InputError, match='not a shipped model'):
    compress.decode_file(path, out)
  out.write_bytes(b'previous')  # an existing output survives a failed decode
  with pytest.raises(errors.InputError):
    compress.decode_file(tmp_path / 'truncated.fmac', out, codec)
  assert out.read_bytes() == b'previous'
  with pytest.raises(errors.InputError, match='unknown output format'):
    compress.decode_file(path, tmp_path / 'out.xyz', codec)


def test_encode_refuses_bad_audio_and_leaves_nothing(codec, tmp_path):
  sf.write(tmp_path / 'short.wav', np.zeros(20, np.float32), 16000)  # < one 32-sample frame
  sf.write(tmp_path / 'nine.wav', np.zeros((1600, 9), np.float32), 16000)
  (tmp_path / 'empty.wav').write_bytes(b'')
  (tmp_path / 'text.mp3').write_text('not audio\n')
  cases = {'missing.wav': 'no such file', 'empty.wav': 'empty file', 'text.mp3': 'not a readable',
           'short.wav': 'less than one latent frame', 'nine.wav': '9 channels'}
  for name, reason in cases.items():
    with pytest.raises(errors.InputError) as info:
      compress.encode_file(tmp_path / name, tmp_path / 'out.fmac', codec)
    assert info.value.path == str(tmp_path / name) and reason in info.value.reason
    assert not (tmp_path / 'out.fmac').exists()
  assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
  with pytest.raises(errors.InputError, match='is a directory'):
    compress.encode_file(tmp_path / 'nine.wav', tmp_path, codec)


def test_model_lookup(workdir, codec, tmp_path):
  with pytest.raises(errors.InputError, match='unknown model'):
    model_store.load(str(tmp_path / 'nowhere'))
  not_codec = tmp_path / 'time_ae'
  not_codec.mkdir()
  from fmacomp.configs import time_ae  # pylint: disable=g-import-not-at-top
  (not_codec / 'config.json').write_text(time_ae.get_config('tiny').to_json())
  with pytest.raises(errors.InputError, match='not a codec'):
    model_store.load(str(not_codec))
  point = codec.point
  assert point.index == 0 and point.model == 'conv_codec' and point.kbps > 0
  assert model_store.nearest([point], 1000.0) is point
  # The hash in files is the trainer's params_checksum of the best checkpoint.
  from fmacomp.training import checkpointing  # pylint: disable=g-import-not-at-top
  params = checkpointing.load_params(str(workdir))[0]['params']
  assert codec.model_hash == fmac.weights_hash(checkpointing.params_checksum(params))


def test_shipped_models_are_found_by_the_name_in_the_header(workdir, tmp_path, monkeypatch):
  shipped = tmp_path / 'shipped'
  monkeypatch.setattr(model_store, 'SHIPPED_DIR', str(shipped))
  assert model_store.shipped_models() == []  # no folder: none
  shipped.mkdir()
  (shipped / 'not_a_model').mkdir()
  os.symlink(workdir, shipped / 'tiny_music')
  assert model_store.shipped_models() == ['tiny_music']
  codec = model_store.load('tiny_music', kbps=3.0)
  assert codec.point.model == 'tiny_music'
  source = write(tmp_path / 'in.wav', music(1.0, 16000), 16000)
  compress.encode_file(source, tmp_path / 'x.fmac', codec)
  assert fmac.read_fmac(tmp_path / 'x.fmac')[0].model == 'tiny_music'
  compress.decode_file(tmp_path / 'x.fmac', tmp_path / 'y.wav')  # no model: from the header
  assert sf.info(tmp_path / 'y.wav').frames == 16000


def test_tables_are_stored_with_the_checkpoint_and_reused(workdir, codec):
  stored = list(workdir.glob('checkpoints/best/*/cdf_tables.npz'))
  assert len(stored) == 1
  with np.load(stored[0]) as f:
    np.testing.assert_array_equal(f['cdf'], codec.tables['cdf'])
  # Tables frozen again from the same params are the same integers (deterministic export).
  again = bottleneck.cdf_tables(codec.model.make_bottleneck(),
                                {'params': codec.variables['params']['bottleneck']})
  np.testing.assert_array_equal(again['cdf'], codec.tables['cdf'])
