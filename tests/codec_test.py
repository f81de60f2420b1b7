""".fmac: round trip, validation, and a fuzz test over a real file of trained-bottleneck symbols."""

import collections
import dataclasses
import functools
import hashlib
import io
import os
import struct
import tracemalloc
import zlib

import jax
import numpy as np
import pytest

from fmacomp import errors
from fmacomp.fmac import file_format as codec
from fmacomp.models import bottleneck

from tests import trained_bottleneck

CHANNELS = trained_bottleneck.CHANNELS  # latent channels
HOP = 256  # samples per latent frame
RATE = 44100
NUM_SAMPLES = 4 * RATE + 123  # 4 s of stereo, not a whole number of frames
CHUNK_FRAMES = 128


def latents(seed, batch, frames):
  return trained_bottleneck.laplacian_latents(seed, batch, frames)


def train_tiny_bottleneck(steps=200, lam=0.05):
  """A few hundred Adam steps of distortion + lambda x rate on Laplacian latents."""
  model = bottleneck.Bottleneck(channels=CHANNELS, max_symbol=trained_bottleneck.MAX_SYMBOL)
  return model, trained_bottleneck.train(model, steps=steps, lam=lam)


def params_checksum(variables):
  digest = hashlib.sha256()
  for _, leaf in sorted(jax.tree_util.tree_leaves_with_path(variables['params']),
                        key=lambda kv: jax.tree_util.keystr(kv[0])):
    digest.update(np.asarray(leaf).astype(np.asarray(leaf).dtype.newbyteorder('<')).tobytes())
  return digest.hexdigest()


@pytest.fixture(scope='module')
def encoded(tmp_path_factory):
  """A real stereo file: (path, bytes, header, symbols [2, frames, C], tables)."""
  model, variables = train_tiny_bottleneck()
  tables = bottleneck.cdf_tables(model, variables)
  frames = -(-NUM_SAMPLES // HOP)
  to_symbols = jax.jit(functools.partial(model.apply, method=bottleneck.Bottleneck.to_symbols))
  symbols = np.asarray(to_symbols(variables, latents(7, 2, frames)))  # mid, side
  chunks = []
  for start in range(0, frames, CHUNK_FRAMES):
    part = symbols[:, start:start + CHUNK_FRAMES]
    chunks.append(codec.Chunk(part.shape[1],
                              tuple(bottleneck.encode_symbols(s, tables) for s in part)))
  header = codec.Header(model='codec_tiny',
                        model_hash=codec.weights_hash(params_checksum(variables)),
                        sample_rate=RATE, channels=2, num_samples=NUM_SAMPLES,
                        latent_channels=CHANNELS, hop_samples=HOP, stereo_mode='mid_side')
  path = tmp_path_factory.mktemp('fmac') / 'real.fmac'
  codec.write_fmac(path, header, chunks)
  return path, path.read_bytes(), header, symbols, tables


def decode_all(header, chunks, tables, path='x.fmac'):
  """[channels, frames, C] from the chunks, chunk by chunk."""
  return np.concatenate([
      np.stack([bottleneck.decode_symbols(s, tables, (chunk.frames, header.latent_channels), path)
                for s in chunk.streams]) for chunk in chunks], axis=1)


def resign(data):
  """Recomputes the header CRC, as a forger would, so a damaged field reaches later checks."""
  header_len, = struct.unpack_from('<I', data, 10)
  data = bytearray(data)
  data[header_len - 4:header_len] = struct.pack('<I', zlib.crc32(bytes(data[:header_len - 4])))
  return bytes(data)


def test_round_trip_restores_everything(encoded):
  path, _, header, symbols, tables = encoded
  read_header, chunks = codec.read_fmac(path, expected_model='codec_tiny',
                                        expected_hash=header.model_hash)
  assert read_header == header
  assert len(chunks) == 6 and all(len(c.streams) == 2 for c in chunks)
  np.testing.assert_array_equal(decode_all(read_header, chunks, tables), symbols)
  # Chunks decode independently: the last one alone gives its own frames.
  last = bottleneck.decode_symbols(chunks[-1].streams[1], tables, (chunks[-1].frames, CHANNELS))
  np.testing.assert_array_equal(last, symbols[1, -chunks[-1].frames:])


def test_other_model_or_weights_is_refused(encoded):
  path, _, header, _, _ = encoded
  with pytest.raises(errors.InputError, match="encoded with model 'codec_tiny', not 'other'"):
    codec.read_fmac(path, expected_model='other')
  with pytest.raises(errors.InputError, match='other weights'):
    codec.read_fmac(path, expected_hash=codec.weights_hash('ab' * 32))


def test_other_format_version_is_refused(encoded, tmp_path):
  _, data, _, _, _ = encoded
  bad = tmp_path / 'v2.fmac'
  bad.write_bytes(resign(data[:8] + struct.pack('<H', 2) + data[10:]))
  with pytest.raises(errors.InputError, match='format version 2 is not supported'):
    codec.read_fmac(bad)


def header_len_for(num_chunks, channels=2, name='codec_tiny'):
  return 58 + len(name) + num_chunks * (16 + 4 * channels) + 4


@pytest.mark.parametrize('fields,reason', [
    ({16: ('<H', codec.MAX_CHANNELS + 1)}, 'channels outside'),
    ({38: ('<I', codec.MAX_CHUNKS + 1)}, 'chunks outside'),
    ({38: ('<I', codec.MAX_CHUNKS), 10: ('<I', header_len_for(codec.MAX_CHUNKS))},
     'truncated file'),  # consistent and within limits, but more than the file holds
    ({10: ('<I', 0xFFFFFFFF)}, 'header length'),
    ({22: ('<Q', 1 << 62)}, 'num_samples'),  # the CRC is fixed up: the field check must catch it
    ({18: ('<I', 0)}, 'sample_rate'),
    ({30: ('<H', 3)}, None),  # latent channels: valid header; the payload decoder would object
])
def test_sizes_are_checked_before_allocating(encoded, tmp_path, fields, reason):
  _, data, _, _, _ = encoded
  forged = bytearray(data)
  for offset, (fmt, value) in fields.items():
    struct.pack_into(fmt, forged, offset, value)
  path = tmp_path / 'forged.fmac'
  path.write_bytes(resign(bytes(forged)))
  tracemalloc.start()
  try:
    if reason is None:
      assert codec.read_fmac(path)[0].latent_channels == 3
    else:
      with pytest.raises(errors.InputError, match=reason):
        codec.read_fmac(path)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert peak < 1 << 20


@pytest.mark.parametrize('name,content', [('missing.fmac', None), ('empty.fmac', b''),
                                          ('text.fmac', b'hello, not audio\n')])
def test_unreadable_files(tmp_path, name, content):
  if content is not None:
    (tmp_path / name).write_bytes(content)
  with pytest.raises(errors.InputError) as info:
    codec.read_fmac(tmp_path / name)
  assert info.value.path == str(tmp_path / name)
  with pytest.raises(errors.InputError):
    codec.read_fmac(tmp_path)  # a directory


def test_write_is_atomic_and_refuses_what_it_cannot_represent(encoded, tmp_path):
  header = encoded[2]
  out = tmp_path / 'out.fmac'
  out.write_bytes(b'previous')
  one_stream = codec.Chunk(4, (b'\x00' * 4,))
  with pytest.raises(errors.InputError, match='1 streams for 2 channels'):
    codec.write_fmac(out, header, [one_stream])
  with pytest.raises(errors.InputError, match='channels'):
    codec.write_fmac(out, dataclasses.replace(header, channels=9), [one_stream])
  assert out.read_bytes() == b'previous' and os.listdir(tmp_path) == ['out.fmac']


def test_coverage_is_checked_at_the_model_rate(encoded):
  header = encoded[2]  # 4 s + 123 samples at 44.1 kHz, hop 256
  frames = -(-NUM_SAMPLES // HOP)
  codec.check_coverage(header, frames, RATE, 'x.fmac')
  with pytest.raises(errors.InputError, match='too few'):
    codec.check_coverage(header, frames - 1, RATE, 'x.fmac')
  with pytest.raises(errors.InputError, match='more than'):
    codec.check_coverage(header, frames + 1, RATE, 'x.fmac')
  # The same file from a 16 kHz model: the frames cover the resampled length, not num_samples.
  at_16k = -(-round(NUM_SAMPLES * 16000 / RATE) // HOP)
  codec.check_coverage(header, at_16k, 16000, 'x.fmac')
  with pytest.raises(errors.InputError, match='too few'):
    codec.check_coverage(header, at_16k - 1, 16000, 'x.fmac')


def regions(data):
  header_len, = struct.unpack_from('<I', data, 10)
  name_end = 58 + data[14]
  return {'fixed': (0, 58), 'name': (58, name_end), 'table': (name_end, header_len - 4),
          'header_crc': (header_len - 4, header_len), 'payload': (header_len, len(data))}


def fuzz_cases(data, rng):
  """(region, kind, mutated bytes): truncations, bit flips, random bytes, in every region."""
  spans = regions(data)
  where = lambda pos: next(r for r, (a, b) in spans.items() if a <= pos < b)
  header_len = spans['payload'][0]
  for cut in list(range(header_len)) + list(range(header_len, len(data), 3)):
    yield where(cut), 'truncate', data[:cut]
  for bit in list(range(8 * header_len)) + list(rng.integers(8 * header_len, 8 * len(data), 800)):
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    yield where(bit // 8), 'bitflip', bytes(flipped)
  for _ in range(1200):
    region = list(spans)[rng.integers(len(spans))]
    a, b = spans[region]
    pos, length = rng.integers(a, b), rng.integers(1, 17)
    yield region, 'random', data[:pos] + rng.bytes(length) + data[pos + length:]
  for length in range(1, 40):
    yield 'payload', 'append', data + rng.bytes(length)


def stage(reason):
  for key, name in (('magic', 'magic'), ('format version', 'version'), ('header CRC', 'header_crc'),
                    ('CRC mismatch', 'chunk_crc')):
    if key in reason:
      return name
  return 'structure'  # truncation, sizes, limits, offsets, trailing bytes


def test_fuzz_every_region(encoded, tmp_path):
  _, data, header, _, tables = encoded
  rng = np.random.default_rng(0)
  target = tmp_path / 'fuzz.fmac'
  stages, per_region = collections.Counter(), collections.Counter()
  for case, (region, kind, mutated) in enumerate(fuzz_cases(data, rng)):
    if mutated == data:
      continue
    # Most cases read from memory (same reader, no disk); every 20th goes through a real file.
    fileobj = None if case % 20 == 0 else io.BytesIO(mutated)
    if fileobj is None:
      target.write_bytes(mutated)
    with pytest.raises(errors.InputError) as info:
      codec.read_fmac(target, fileobj=fileobj)
    assert info.value.path == str(target)
    stages[stage(info.value.reason)] += 1
    per_region[region, kind] += 1
  # The unmodified file still reads, and its payloads (the only ones to pass the CRCs) decode.
  target.write_bytes(data)
  read_header, chunks = codec.read_fmac(target)
  assert decode_all(read_header, chunks, tables).shape[0] == 2
  total = sum(stages.values())
  print(f'fuzz_cases={total} stages={dict(stages)} regions={dict(per_region)}')
  assert total > 3000
  assert stages['header_crc'] > 0 and stages['chunk_crc'] > 0
  assert stages['header_crc'] + stages['chunk_crc'] + stages['structure'] > stages['magic']


def test_forged_payloads_reach_the_symbol_decoder(encoded, tmp_path):
  """Payload bit flips, rewritten with fresh CRCs: the reader accepts the file, so the symbol
  decoder must refuse the stream or return symbols of the right shape within the alphabet."""
  path, _, header, _, tables = encoded
  _, chunks = codec.read_fmac(path)
  rng = np.random.default_rng(1)
  forged = tmp_path / 'forged.fmac'
  outcomes = collections.Counter()
  for _ in range(300):
    index, channel = rng.integers(len(chunks)), rng.integers(2)
    streams = [bytearray(s) for s in chunks[index].streams]
    bit = rng.integers(8 * len(streams[channel]))
    streams[channel][bit // 8] ^= 1 << (bit % 8)
    damaged = list(chunks)
    damaged[index] = codec.Chunk(chunks[index].frames, tuple(bytes(s) for s in streams))
    codec.write_fmac(forged, header, damaged)
    read_header, read_chunks = codec.read_fmac(forged)
    try:
      symbols = decode_all(read_header, read_chunks, tables, str(forged))
    except errors.InputError as e:
      assert 'corrupt payload' in e.reason and e.path == str(forged)
      outcomes['refused'] += 1
      continue
    assert symbols.shape[1:] == (-(-NUM_SAMPLES // HOP), CHANNELS)
    assert np.abs(symbols).max() <= 15
    outcomes['decoded_bounded'] += 1
  print(f'forged_payload_cases={dict(outcomes)}')
  assert outcomes['refused'] > 0
