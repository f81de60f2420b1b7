"""The .fmac file format: a checked header, a chunk table, independently decodable chunks.

The format knows symbols' bytes, not networks: a chunk holds one entropy-coded stream per audio
channel (mono, left/right, or mid/side), each decodable on its own with the model's integer CDF
tables (`fmacomp.models.bottleneck.decode_symbols`). Version 1, all integers little-endian:

  fixed header (58 bytes)
    magic           8s   b'\\x89FMAC\\r\\n\\x1a' (the PNG trick: catches text-mode mangling)
    version         u16  FORMAT_VERSION
    header_len      u32  bytes of the whole header: fixed + name + chunk table + CRC
    name_len        u8   bytes of the model name (UTF-8)
    stereo_mode     u8   index into STEREO_MODES
    channels        u16  audio channels = streams per chunk
    sample_rate     u32  Hz of the original audio (decoding restores it)
    num_samples     u64  samples per channel of the original (decoding trims to it)
    latent_channels u16  symbols per latent frame
    hop_samples     u32  samples per latent frame at the model's rate
    operating_point u16  which of the model's bitrates wrote the file
    num_chunks      u32
    model_hash      16s  first 16 bytes of the weights' sha256 (`weights_hash`)
  model name        name_len bytes
  chunk table       num_chunks x (offset u64, frames u32, crc32 u32, channels x stream_len u32)
  header CRC32      u32 over every header byte before it
  chunks            contiguous from header_len; chunk k is its streams back to back, and its
                    CRC32 (in the table) covers them; the file ends with the last chunk.

`read_fmac` checks every size against the LIMITS below and against the file's real size before
it allocates anything, and turns every defect into `errors.InputError(path, reason)`.
"""

import dataclasses
import itertools
import numbers
import os
import struct
import zlib

from fmacomp import errors
from fmacomp import files

MAGIC = b'\x89FMAC\r\n\x1a'
FORMAT_VERSION = 1
STEREO_MODES = ('independent', 'mid_side')

# Limits: generous for real use (days of audio), small enough that nothing a header claims
# can exhaust memory.
MAX_MODEL_NAME = 64
MAX_CHANNELS = 8
MAX_SAMPLE_RATE = 768_000
MAX_SAMPLES = 1 << 36
MAX_LATENT_CHANNELS = 4096
MAX_HOP_SAMPLES = 1 << 20
MAX_CHUNKS = 1 << 20
MAX_CHUNK_FRAMES = 1 << 20
MAX_CHUNK_BYTES = 1 << 26

_FIXED = struct.Struct('<8sHIBBHIQHIHI16s')
_ENTRY = struct.Struct('<QII')  # offset, frames, crc32; then `channels` u32 stream lengths
_CRC = struct.Struct('<I')


@dataclasses.dataclass(frozen=True)
class Header:
  """What a decoder needs besides the model (see the module docstring for the fields)."""
  model: str
  model_hash: bytes
  sample_rate: int
  channels: int
  num_samples: int
  latent_channels: int
  hop_samples: int
  stereo_mode: str = 'independent'
  operating_point: int = 0


@dataclasses.dataclass(frozen=True)
class Chunk:
  """`frames` latent frames, one entropy-coded stream (bytes) per audio channel."""
  frames: int
  streams: tuple


def weights_hash(params_checksum):
  """train.py's `params_checksum` (sha256 hex) -> the 16 bytes a header carries."""
  digest = bytes.fromhex(params_checksum)
  if len(digest) != 32:
    raise ValueError(f'params_checksum must be 64 hex digits, got {params_checksum!r}')
  return digest[:16]


def _require(ok, path, reason):
  if not ok:
    raise errors.InputError(path, reason)


def _check_header(header, path):
  """Raises InputError unless every header field is within the format's limits."""
  name = header.model
  _require(isinstance(name, str) and name.isprintable()
           and 0 < len(name.encode('utf-8')) <= MAX_MODEL_NAME, path,
           f'model name {name!r} is not 1 to {MAX_MODEL_NAME} printable bytes')
  _require(isinstance(header.model_hash, bytes) and len(header.model_hash) == 16, path,
           'model hash must be 16 bytes')
  for field, low, high in (('channels', 1, MAX_CHANNELS), ('sample_rate', 1, MAX_SAMPLE_RATE),
                           ('num_samples', 1, MAX_SAMPLES),
                           ('latent_channels', 1, MAX_LATENT_CHANNELS),
                           ('hop_samples', 1, MAX_HOP_SAMPLES),
                           ('operating_point', 0, 0xFFFF)):
    value = getattr(header, field)
    _require(isinstance(value, numbers.Integral) and low <= value <= high, path,
             f'{field} {value} outside the limits [{low}, {high}]')
  _require(header.stereo_mode in STEREO_MODES, path, f'unknown stereo mode {header.stereo_mode!r}')
  _require(header.stereo_mode != 'mid_side' or header.channels == 2, path,
           f'mid/side needs 2 channels, not {header.channels}')


def _check_chunk(chunk, header, index, path):
  _require(1 <= chunk.frames <= MAX_CHUNK_FRAMES, path,
           f'chunk {index}: {chunk.frames} frames outside [1, {MAX_CHUNK_FRAMES}]')
  _require(len(chunk.streams) == header.channels, path,
           f'chunk {index}: {len(chunk.streams)} streams for {header.channels} channels')
  _require(sum(len(s) for s in chunk.streams) <= MAX_CHUNK_BYTES, path,
           f'chunk {index}: more than {MAX_CHUNK_BYTES} bytes')


def check_coverage(header, frames, model_rate, path, tolerance=2):
  """Raises InputError unless `frames` latent frames at `model_rate` span the header's audio.

  `num_samples` counts the original's samples at `sample_rate`, `hop_samples` the model's at its
  own rate, which the header does not carry: only the model's owner (`fmacomp.fmac.compress`) can
  compare them. The frames must cover the resampled length (give or take `tolerance` samples of
  resampler rounding) and not exceed it by a whole frame.
  """
  expected = header.num_samples * model_rate / header.sample_rate  # samples at the model rate
  covered = frames * header.hop_samples
  _require(covered >= expected - tolerance, path,
           f'chunks hold {frames} frames, too few for {header.num_samples} samples')
  _require(covered - header.hop_samples < expected + tolerance, path,
           f'chunks hold {frames} frames, more than {header.num_samples} samples need')


def _header_len(name_len, channels, num_chunks):
  return _FIXED.size + name_len + num_chunks * (_ENTRY.size + 4 * channels) + _CRC.size


def write_fmac(path, header, chunks):
  """Writes `chunks` (a sequence of `Chunk`) under `header` to `path`, atomically.

  Raises:
    errors.InputError(path, reason): a header or chunk the format cannot represent.
  """
  chunks = list(chunks)
  _check_header(header, path)
  _require(1 <= len(chunks) <= MAX_CHUNKS, path, f'{len(chunks)} chunks outside [1, {MAX_CHUNKS}]')
  for index, chunk in enumerate(chunks):
    _check_chunk(chunk, header, index, path)
  name = header.model.encode('utf-8')
  header_len = _header_len(len(name), header.channels, len(chunks))
  fields = [int(v) for v in (header.channels, header.sample_rate, header.num_samples,
                             header.latent_channels, header.hop_samples, header.operating_point)]
  parts = [_FIXED.pack(MAGIC, FORMAT_VERSION, header_len, len(name),
                       STEREO_MODES.index(header.stereo_mode), *fields, len(chunks),
                       header.model_hash), name]
  offset = header_len
  for chunk in chunks:
    payload = b''.join(chunk.streams)
    parts.append(_ENTRY.pack(offset, int(chunk.frames), zlib.crc32(payload)))
    parts.append(struct.pack(f'<{header.channels}I', *(len(s) for s in chunk.streams)))
    offset += len(payload)
  head = b''.join(parts)
  with files.atomic_path(path) as tmp:
    with open(tmp, 'wb') as f:
      f.write(head + _CRC.pack(zlib.crc32(head)))
      for chunk in chunks:
        f.writelines(chunk.streams)


def _read_fixed(f, size, path):
  """Reads and checks the fixed header -> (its bytes, its fields); sizes checked, no allocation."""
  raw = f.read(_FIXED.size)
  _require(MAGIC.startswith(raw[:len(MAGIC)]), path, 'not an .fmac file (bad magic bytes)')
  _require(len(raw) >= len(MAGIC) + 2, path, f'truncated file ({size} bytes)')
  version, = struct.unpack_from('<H', raw, len(MAGIC))
  _require(version == FORMAT_VERSION, path,
           f'format version {version} is not supported (this reader reads {FORMAT_VERSION})')
  _require(len(raw) == _FIXED.size, path, f'truncated file ({size} bytes, header incomplete)')
  fields = _FIXED.unpack(raw)
  header_len, name_len, channels, num_chunks = fields[2], fields[3], fields[5], fields[11]
  _require(0 < name_len <= MAX_MODEL_NAME, path, f'model name length {name_len} out of limits')
  _require(1 <= channels <= MAX_CHANNELS, path, f'{channels} channels outside [1, {MAX_CHANNELS}]')
  _require(1 <= num_chunks <= MAX_CHUNKS, path, f'{num_chunks} chunks outside [1, {MAX_CHUNKS}]')
  _require(header_len == _header_len(name_len, channels, num_chunks), path,
           f'header length {header_len} disagrees with its chunk count and name')
  _require(header_len <= size, path, f'truncated file ({size} bytes, header needs {header_len})')
  return raw, fields


def _parse_header(head, fields, path):
  """The checked header bytes -> (Header, [(offset, frames, crc, stream lengths)])."""
  (_, _, header_len, name_len, stereo, channels, sample_rate, num_samples, latent_channels,
   hop_samples, operating_point, num_chunks, model_hash) = fields
  try:
    name = head[_FIXED.size:_FIXED.size + name_len].decode('utf-8')
  except UnicodeDecodeError:
    raise errors.InputError(path, 'model name is not UTF-8') from None
  _require(stereo < len(STEREO_MODES), path, f'unknown stereo mode {stereo}')
  header = Header(name, model_hash, sample_rate, channels, num_samples, latent_channels,
                  hop_samples, STEREO_MODES[stereo], operating_point)
  _check_header(header, path)
  entries, pos = [], _FIXED.size + name_len
  for _ in range(num_chunks):
    offset, frames, crc = _ENTRY.unpack_from(head, pos)
    lengths = struct.unpack_from(f'<{channels}I', head, pos + _ENTRY.size)
    entries.append((offset, frames, crc, lengths))
    pos += _ENTRY.size + 4 * channels
  return header, entries


def _check_table(header, entries, header_len, size, path):
  """Chunks must be within limits, contiguous from the header, and end with the file."""
  end = header_len
  for index, (offset, frames, _, lengths) in enumerate(entries):
    _require(1 <= frames <= MAX_CHUNK_FRAMES, path,
             f'chunk {index}: {frames} frames outside [1, {MAX_CHUNK_FRAMES}]')
    _require(sum(lengths) <= MAX_CHUNK_BYTES, path,
             f'chunk {index}: more than {MAX_CHUNK_BYTES} bytes')
    _require(offset == end, path, f'chunk {index}: offset {offset}, expected {end}')
    end += sum(lengths)
  _require(end <= size, path, f'truncated file ({size} bytes, chunk table needs {end})')
  _require(end == size, path, f'{size - end} unexpected bytes after the last chunk')


def check_model(header, path, expected_model=None, expected_hash=None):
  """Raises InputError unless the file was written by `expected_model` with these weights."""
  if expected_model is not None and header.model != expected_model:
    raise errors.InputError(path, f'encoded with model {header.model!r}, not {expected_model!r}')
  if expected_hash is not None and header.model_hash != bytes(expected_hash):
    raise errors.InputError(path, f'encoded with other weights of model {header.model!r} '
                                  f'(hash {header.model_hash.hex()}, '
                                  f'expected {bytes(expected_hash).hex()})')


def read_fmac(path, expected_model=None, expected_hash=None, fileobj=None):
  """Reads and validates an .fmac file.

  Args:
    path: the file (named in every error).
    expected_model: if given, the model name the header must carry.
    expected_hash: if given, the 16-byte weights hash the header must carry.
    fileobj: a seekable binary file to read instead of opening `path`.

  Returns:
    (Header, [Chunk]): every CRC checked; streams are still entropy-coded.

  Raises:
    errors.InputError(path, reason): unreadable, truncated, corrupted, another format version,
      sizes beyond the limits, or another model.
  """
  try:
    if fileobj is not None:
      return _read(fileobj, path, expected_model, expected_hash)
    with open(path, 'rb') as f:
      return _read(f, path, expected_model, expected_hash)
  except OSError as e:
    raise errors.InputError(path, e.strerror or str(e)) from None


def _read(f, path, expected_model, expected_hash):
  size = f.seek(0, os.SEEK_END)
  f.seek(0)
  raw, fields = _read_fixed(f, size, path)
  header_len = fields[2]
  head = raw + f.read(header_len - _FIXED.size)
  _require(len(head) == header_len, path, 'truncated file (header)')
  stored_crc, = _CRC.unpack_from(head, header_len - _CRC.size)
  _require(zlib.crc32(head[:-_CRC.size]) == stored_crc, path, 'header CRC mismatch (corrupted)')
  header, entries = _parse_header(head, fields, path)
  _check_table(header, entries, header_len, size, path)
  check_model(header, path, expected_model, expected_hash)
  chunks = []
  for index, (_, frames, crc, lengths) in enumerate(entries):
    payload = f.read(sum(lengths))
    _require(len(payload) == sum(lengths), path, f'truncated file (chunk {index})')
    _require(zlib.crc32(payload) == crc, path, f'chunk {index} CRC mismatch (corrupted)')
    bounds = list(itertools.accumulate(lengths, initial=0))
    chunks.append(Chunk(frames, tuple(payload[a:b] for a, b in zip(bounds[:-1], bounds[1:]))))
  return header, chunks
