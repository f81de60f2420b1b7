"""Range reads of stored audio: a training crop reads its own samples, not its whole record.

`shards.py` writes every shard uncompressed with one record per chunk (`RECORD_OPTIONS`). A
record's int16 audio then lies in the shard file as it was serialised, cut only by the 24-byte
block headers that riegeli puts at every 64 KiB of the file (the riegeli/records format:
github.com/google/riegeli, doc/riegeli_records_file_format.md). `index_split` walks a split's
chunk headers once (two small reads per record) and finds, in each serialised tf.Example, where
the audio value starts, its label and its `num_samples`; `AudioRanges.read_into` then fills a
row of a batch with one `preadv` (the block headers land in a scratch buffer), with no
decompression and no decode. Nothing is held but the index: 20 bytes per record.

A shard written any other way (compressed, as builds before this reader were; a layout this
parser does not know) makes `index_split` return None, and the pipeline reads whole records.
"""

import os
import struct
import threading

from absl import logging
import numpy as np

# The array_record writer options of every shard: one record per chunk, stored as it is.
RECORD_OPTIONS = 'group_size:1,uncompressed'

_BLOCK = 1 << 16
_BLOCK_HEADER = 24
_USABLE = _BLOCK - _BLOCK_HEADER
_CHUNK_HEADER = 40
_SIMPLE_CHUNK = 0x72  # 'r': record sizes, then record values
_HEAD_BYTES = 4096    # read at a record's start: the fields sorted before 'audio' fit in it
_TAIL_BYTES = 1 << 16  # the fields after 'audio' (label, num_samples, track_id...) fit in it


class LayoutError(ValueError):
  """The shard is not laid out as `RECORD_OPTIONS` writes it."""


def _physical(logical):
  """File position of a byte of the chunk stream (block headers skipped)."""
  return logical + _BLOCK_HEADER * (logical // _USABLE + 1)


def _chunk_start(chunk_begin):
  """Stream position of a chunk's first byte (a chunk may formally begin at a block header)."""
  first = chunk_begin + _BLOCK_HEADER if chunk_begin % _BLOCK == 0 else chunk_begin
  return first - _BLOCK_HEADER * (first // _BLOCK + 1)


def _chunk_end(chunk_begin, data_size, num_records):
  """The next chunk's begin (the spec's `chunk_end`, with its padding rules)."""
  size = _CHUNK_HEADER + data_size
  overhead = (size + (chunk_begin + _USABLE - 1) % _BLOCK) // _USABLE
  with_overhead = chunk_begin + size + overhead * _BLOCK_HEADER
  pos = chunk_begin + num_records
  remaining = _BLOCK - 1 - (pos + _BLOCK - 1) % _BLOCK
  return max(with_overhead, pos + max(remaining - (_USABLE - 1), 0))


def _read(fd, logical, size):
  """`size` bytes of the chunk stream from `logical` (fewer at the end of the file)."""
  out = bytearray()
  while size > 0:
    pos = _physical(logical)
    piece = os.pread(fd, min(size, _BLOCK - pos % _BLOCK), pos)
    if not piece:
      break
    out += piece
    logical, size = logical + len(piece), size - len(piece)
  return bytes(out)


def _varint(data, i):
  value = shift = 0
  while True:
    if i >= len(data):
      raise LayoutError('truncated varint')
    byte = data[i]
    value, shift, i = value | (byte & 0x7f) << shift, shift + 7, i + 1
    if byte < 0x80:
      return value, i


def _field(data, i, tag):
  """(start, end) of the length-delimited field `tag` that begins at `data[i]`."""
  if i >= len(data) or data[i] != tag:
    raise LayoutError(f'expected tag {tag:#x} at {i}')
  size, start = _varint(data, i + 1)
  return start, start + size


def _int64(entry):
  """The single int64 value of a serialised Features map entry (key, Feature{int64_list})."""
  _, key_end = _field(entry, 0, 0x0a)
  start, _ = _field(entry, key_end, 0x12)   # Feature
  start, end = _field(entry, start, 0x1a)   # int64_list
  start, end = _field(entry, start, 0x0a)   # packed values
  value, _ = _varint(entry, start)
  return value - (1 << 64) if value >= 1 << 63 else value


def _entries(data, i, end, into):
  """Map entries of a serialised `Features` in data[i:end] -> {key: entry bytes}; returns the
  position of the 'audio' entry's value (or None) and where the parse stopped."""
  while i < end:
    start, stop = _field(data, i, 0x0a)
    key_start, key_end = _field(data, start, 0x0a)
    if data[key_start:key_end] == b'audio':
      value = _field(data, key_end, 0x12)[0]   # Feature
      value = _field(data, value, 0x0a)[0]     # bytes_list
      return _field(data, value, 0x0a), stop   # its one value
    if stop > len(data):
      raise LayoutError('a field before audio is longer than the head read')
    into[bytes(data[key_start:key_end])] = data[start:stop]
    i = stop
  return None, i


def _record(fd, start):
  """(audio stream position, audio bytes, label, num_samples) of the record at chunk `start`."""
  head = _read(fd, start + _CHUNK_HEADER, _HEAD_BYTES)
  if not head or head[0] != 0:
    raise LayoutError('compressed chunk')
  sizes_size, i = _varint(head, 1)
  record_size, _ = _varint(head, i)
  record = i + sizes_size                     # the serialised tf.Example starts here
  features, example_end = _field(head, record, 0x0a)
  if example_end != record + record_size:
    raise LayoutError('a record is not one Example')
  fields = {}
  audio, i = _entries(head, features, example_end, fields)
  if audio is None:
    raise LayoutError('no audio field in the head')
  audio_start, audio_end = audio
  tail_size = example_end - i
  if tail_size > _TAIL_BYTES:
    raise LayoutError('fields after audio are too long')
  base = start + _CHUNK_HEADER
  tail = _read(fd, base + i, tail_size)
  _entries(tail, 0, len(tail), fields)
  num_samples = _int64(fields[b'num_samples'])
  if 2 * num_samples != audio_end - audio_start:
    raise LayoutError('num_samples does not match the audio bytes')
  return base + audio_start, num_samples, _int64(fields[b'label'])


def _index_shard(path, num_records):
  """[(audio stream position, num_samples, label)] of a shard's records, in order."""
  fd = os.open(path, os.O_RDONLY)
  try:
    found, chunk = [], 0
    while len(found) < num_records:
      header = _read(fd, _chunk_start(chunk), _CHUNK_HEADER)
      if len(header) < _CHUNK_HEADER:
        raise LayoutError('the file ends before its records')
      data_size = struct.unpack_from('<Q', header, 8)[0]
      chunk_type, records = header[24], int.from_bytes(header[25:32], 'little')
      if chunk_type == _SIMPLE_CHUNK:
        if records != 1:
          raise LayoutError(f'{records} records in one chunk')
        found.append(_record(fd, _chunk_start(chunk)))
      chunk = _chunk_end(chunk, data_size, records)
    return found
  finally:
    os.close(fd)


def index_split(paths, shard_lengths):
  """`AudioRanges` of a split's shards (in split order), or None if one is laid out otherwise."""
  positions, lengths, labels, shards = [], [], [], []
  for number, (path, count) in enumerate(zip(paths, shard_lengths)):
    try:
      records = _index_shard(os.fspath(path), count)
    except (LayoutError, OSError) as e:
      logging.warning('%s: no range reads (%s); training crops read whole records. Rebuild the '
                      'dataset (--overwrite) to read only what each crop needs.', path, e)
      return None
    for position, num_samples, label in records:
      positions.append(position)
      lengths.append(num_samples)
      labels.append(label)
    shards += [number] * count
  return AudioRanges([os.fspath(p) for p in paths], np.array(shards, np.int32),
                     np.array(positions, np.int64), np.array(lengths, np.int64),
                     np.array(labels, np.int64))


class AudioRanges:
  """Reads any range of any record's audio of a split (thread-safe; pickles without its files).

  Attributes:
    num_samples: int64 [records], each record's length in samples.
    label: int64 [records], each record's label.
  """

  def __init__(self, paths, shard, position, num_samples, label):
    self._paths, self._shard, self._position = paths, shard, position
    self.num_samples, self.label = num_samples, label
    self._fds, self._lock = None, threading.Lock()

  def __getstate__(self):
    return dict(self.__dict__, _fds=None, _lock=None)

  def __setstate__(self, state):
    self.__dict__.update(state, _lock=threading.Lock())

  def _fd(self, shard):
    if self._fds is None:
      with self._lock:
        if self._fds is None:
          self._fds = [os.open(p, os.O_RDONLY) for p in self._paths]
    return self._fds[shard]

  def read_into(self, record, lo, hi, row):
    """row[j] = audio[lo + j] of `record` for j in [0, hi - lo) inside the record; the rest of
    `row` (int16 [hi - lo], zeros) is left as it is."""
    start, stop = max(lo, 0), min(hi, int(self.num_samples[record]))
    if stop <= start:
      return
    buffers, logical = [], int(self._position[record]) + 2 * start
    target = memoryview(row[start - lo:stop - lo]).cast('B')
    pos, done = _physical(logical), 0
    first = pos
    while done < len(target):
      piece = min(len(target) - done, _BLOCK - pos % _BLOCK)
      buffers.append(target[done:done + piece])
      done, pos = done + piece, pos + piece
      if done < len(target):
        buffers.append(bytearray(_BLOCK_HEADER))  # the block header between two pieces
        pos += _BLOCK_HEADER
    got = os.preadv(self._fd(int(self._shard[record])), buffers, first)
    if got != pos - first:
      raise OSError(f'{self._paths[self._shard[record]]}: short read ({got} of {pos - first})')
