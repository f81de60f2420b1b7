"""The grain input pipeline: random training crops, deterministic eval segments, global arrays.

Every builder stores int16 mono audio at its storage rate (`builder.info.metadata
['sample_rate']`); this module cuts crops or segments there and resamples them (soxr, through
`fmacomp.audio.resample`) to the model's `sample_rate`, so one build serves every model.

Training (`train_loader`). One global stream for all hosts: the split's records (less any
filtered label) are shuffled per epoch from `seed`, each element's crop position comes from a
hash of (seed, stream index), and host p of P reads stream elements p, p+P, p+2P, ... So the
hosts read disjoint shards that together cover every epoch, and the P per-host batches of step k
hold exactly the records (and crops) of the single-process global batch k, whatever P is. Each
grain element is a whole batch: a crop reads only its samples from the shard file (`ranges`),
the batch is one int16 array converted in one call, and crops are resampled (one by one) only
where the model's rate is not the storage rate. The iterator's state is one position in that
stream (a batch number): save it with the checkpoint (`iterator_save_args`, or `DevicePrefetch`,
which stands in for it) and a restored iterator yields exactly the batches the original would
have yielded next.

Evaluation (`eval_batches`). A track is all records with the same `track_id`, concatenated in
offset order and resampled whole; its segments are every full segment (hop = segment length;
a trailing partial segment is dropped unless the track is shorter than one segment, which then
gives one zero-padded segment) or `num_segments` evenly spaced ones (first at the start, last at
the end; a short track repeats its one zero-padded segment). Tracks are dealt to hosts in sorted
order; batches are padded with `mask=False` so every segment counts once, and every host yields
the same number of batches (all hosts run the same number of jit steps).
"""

import json
import math
import os
import queue
import sys
import threading

import grain
import jax
import numpy as np

from fmacomp import audio
from fmacomp.datasets import base
from fmacomp.datasets import ranges
from fmacomp import errors

# Context (seconds) read on each side of a crop before resampling, so the crop matches a crop of
# the whole resampled record (soxr's edge transient stays in the margin; ~1e-6 apart).
_MARGIN_S = 0.01
_TRACKS = {}  # (data_dir, split, records) -> _scan_tracks(...)
_RECORDS = {}  # (split, records, shard files) -> ranges.AudioRanges or _WholeRecords
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment


def _process(process_index, process_count):
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  if not 0 <= index < count:
    raise errors.InputError('process_index', f'{index} is not in [0, {count})')
  return index, count


def _dropped_ids(builder, label_filter):
  """Label ids to drop: `label_filter` is one name or several (unknown names are ignored)."""
  if not label_filter:
    return frozenset()
  names = [label_filter] if isinstance(label_filter, str) else list(label_filter)
  label = builder.info.features['label']
  return frozenset(label.str2int(n) for n in names if n in label.names)


def _storage_rate(builder):
  return int(builder.info.metadata['sample_rate'])


def _window(x, start, stop):
  """x[start:stop] with zeros wherever the range leaves x. [stop - start]"""
  out = np.zeros(stop - start, x.dtype)
  lo, hi = max(start, 0), min(stop, len(x))
  if hi > lo:
    out[lo - start:hi - start] = x[lo:hi]
  return out


def _fit(x, length):
  """Trims or zero-pads [T] to [length]."""
  return x[:length] if len(x) >= length else np.pad(x, (0, length - len(x)))


class _WholeRecords:
  """Reads through the TFDS data source, a whole record per read: for shards that `ranges`
  cannot index (builds written before range reads). Same interface as `ranges.AudioRanges`."""

  def __init__(self, builder, split):
    self._source = builder.as_data_source(split=split)
    meta = base.metadata_source(builder, split)
    lengths, labels = [], []
    for _, record in base.iter_metadata(meta):
      lengths.append(int(record['num_samples']))
      labels.append(int(record['label']))
    self.num_samples, self.label = np.array(lengths, np.int64), np.array(labels, np.int64)

  def read_into(self, record, lo, hi, row):
    row[:] = _window(self._source[int(record)]['audio'], lo, hi)


def _records(builder, split):
  """The split's `ranges.AudioRanges` (or `_WholeRecords`), indexed once per process."""
  info = builder.info.splits[split]
  try:  # a rebuild in place (prepare's overwrite) must not meet the old build's offsets
    files = tuple((os.fspath(p), os.stat(p).st_mtime_ns) for p in info.filepaths)
  except OSError:
    files = tuple(os.fspath(p) for p in info.filepaths)
  key = (split, info.num_examples, files)
  if key not in _RECORDS:
    _RECORDS[key] = (ranges.index_split(info.filepaths, info.shard_lengths) or
                     _WholeRecords(builder, split))
  return _RECORDS[key]


def _uniform(key, elements):
  """Uniform floats in [0, 1), one per stream element, from a counter-based hash (SplitMix64):
  the draw of element e depends on (key, e) only, computed for a whole batch at once."""
  z = np.asarray(elements, np.uint64) * np.uint64(_GOLDEN) + np.uint64(key)
  z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  z ^= z >> np.uint64(31)
  return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


class _Batches:
  """Local batch k of the global stream, assembled in one go (a grain map over batch numbers).

  Global stream element e is record `kept[order(e // n)[e % n]]` (n records kept, a permutation
  per epoch from the shuffle seed), cut at a start drawn from (crop seed, e); global batch k is
  elements [k G, (k + 1) G) and host p of P takes p, p + P, ... of them.
  """

  def __init__(self, records, kept, *, seeds, length, from_rate, to_rate, out_len, host, hosts,
               local_batch):
    self._records, self._kept = records, kept
    self._shuffle_seed, self._crop_key = int(seeds[0]), int(seeds[1])
    self._length, self._from_rate, self._to_rate, self._out_len = (
        length, from_rate, to_rate, out_len)
    self._host, self._hosts, self._local = host, hosts, local_batch
    self._margin = self._out_margin = 0
    if from_rate != to_rate:
      # A whole number of resampler periods, so the output grid stays aligned.
      g = math.gcd(from_rate, to_rate)
      periods = math.ceil(_MARGIN_S * from_rate / (from_rate // g))
      self._margin, self._out_margin = periods * from_rate // g, periods * to_rate // g
    self._orders = {}

  def _order(self, epoch):
    """The epoch's permutation of the kept records (the last few are cached; reader threads
    may compute one twice, never differently)."""
    order = self._orders.get(epoch)
    if order is None:
      order = np.random.default_rng([self._shuffle_seed, epoch]).permutation(len(self._kept))
      # A new dict replaces the old one whole, so a thread reading the old one never fails.
      self._orders = dict(list(self._orders.items())[-2:] + [(epoch, order)])
    return order

  def __call__(self, k):
    n = len(self._kept)
    elements = (k * self._local * self._hosts + self._host +
                self._hosts * np.arange(self._local, dtype=np.int64))  # [B]
    epochs, positions = np.divmod(elements, n)
    index = np.empty_like(elements)
    for epoch in np.unique(epochs):  # at most two epochs unless n < G
      at = epochs == epoch
      index[at] = self._kept[self._order(int(epoch))[positions[at]]]
    room = np.maximum(self._records.num_samples[index] - self._length, 0) + 1
    starts = (_uniform(self._crop_key, elements) * room).astype(np.int64)  # [B]
    pcm = np.zeros((len(index), self._length + 2 * self._margin), np.int16)
    for row, i, start in zip(pcm, index.tolist(), starts.tolist()):
      self._records.read_into(i, start - self._margin, start + self._length + self._margin, row)
    x = np.divide(pcm, np.float32(base.INT16_SCALE), dtype=np.float32)  # [B, length + 2 margin]
    if self._margin:
      # Row by row: soxr on [T, B] channels gives the same samples at half the speed.
      x = np.stack([audio.resample(row, self._from_rate, self._to_rate)[self._out_margin:]
                    for row in x])
    if x.shape[1] != self._out_len:
      x = np.pad(x[:, :self._out_len], ((0, 0), (0, max(self._out_len - x.shape[1], 0))))
    return {'audio': np.ascontiguousarray(x),  # [B, out_len]
            'label': self._records.label[index].astype(np.int32),
            'record_index': index.astype(np.int32)}


def train_loader(builder, *, split='train', crop_s, sample_rate, global_batch_size, seed,
                 process_index=None, process_count=None, worker_count=0, num_epochs=None,
                 label_filter=None, num_threads=2):
  """This host's training batches: random crops, shuffled, as a grain `IterDataset`.

  `iter(loader)` gives a `grain.DatasetIterator` whose `get_state()/set_state()` resume it
  exactly (see `iterator_save_args`). Each element is a whole batch, a dict:
    audio         float32 [B_local, round(crop_s * sample_rate)], in [-1, 1]
    label         int32 [B_local]
    record_index  int32 [B_local], the record's index in the split (for tests and debugging)

  A crop reads only its own samples (plus a resampling margin) from the shard file (see
  `ranges`) into one int16 array per batch, converted to float in one call.

  Args:
    builder: a prepared `base.AudioBuilder`.
    split: the split to read.
    crop_s: crop length in seconds; records shorter than a crop are zero-padded.
    sample_rate: the model's rate; crops are cut at the storage rate, then resampled (only
      where the rates differ).
    global_batch_size: examples per step over all hosts; B_local = global / process_count.
    seed: the shuffle order and the crop positions; the same seed gives the same batches.
    process_index, process_count: this host's shard (default: jax's).
    worker_count: grain worker processes (0: in this process), each assembling whole batches.
      The iterator state's format depends on it: resume with the same worker_count. Workers
      need absl flags parsed (launchers do; tests call `flags.FLAGS.mark_as_parsed()`).
    num_epochs: None repeats forever; else the stream ends after that many epochs, cut to a
      whole number of global batches (so every host yields the same number of batches).
    label_filter: a label name or names whose records are left out of the stream (e.g.
      'Unknown' for classifiers; names the dataset lacks are ignored).
    num_threads: reader threads per process, each assembling a batch.
  """
  index, count = _process(process_index, process_count)
  if global_batch_size % count:
    raise errors.InputError('global_batch_size', (
        f'{global_batch_size} is not divisible by the process count {count}'))
  from_rate = _storage_rate(builder)
  records = _records(builder, split)
  if not len(records.label):
    raise errors.InputError(split, 'the split is empty')
  kept = np.flatnonzero(~np.isin(records.label, list(_dropped_ids(builder, label_filter))))
  if not len(kept):
    raise errors.InputError(split, f'every record has a filtered label ({label_filter})')
  if num_epochs is None:
    num_batches = sys.maxsize // global_batch_size
  else:
    num_batches = num_epochs * len(kept) // global_batch_size
  batches = _Batches(
      records, kept, seeds=np.random.SeedSequence(seed).generate_state(2),
      length=int(round(crop_s * from_rate)), from_rate=from_rate, to_rate=sample_rate,
      out_len=int(round(crop_s * sample_rate)), host=index, hosts=count,
      local_batch=global_batch_size // count)
  ds = grain.MapDataset.range(num_batches).map(batches)
  ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                            prefetch_buffer_size=2 * max(num_threads, 1)))
  if worker_count:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return ds


class DevicePrefetch:
  """The next global batches, put on the devices by a thread while the step runs.

  big_vision's `start_global_data_prefetch` (flax's `prefetch_to_device`): a thread takes this
  host's batches from `iterator`, makes them global arrays (`to_global`) and queues `size` of
  them. It stands in for the iterator in checkpoints: `get_state()` is the state after the last
  batch *taken from here* (not the one the thread read ahead), so a restored run resumes there.
  Restore the iterator before the first `next`.
  """

  def __init__(self, iterator, sharding, size=2):
    self._iterator, self._sharding = iterator, sharding
    self._queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = None
    self._state = None

  def __iter__(self):
    return self

  def _fill(self):
    try:
      for host in self._iterator:
        item = (to_global(host, self._sharding), self._iterator.get_state())
        while not self._stop.is_set():
          try:
            self._queue.put(item, timeout=0.1)
            break
          except queue.Full:
            pass
        if self._stop.is_set():
          return
      item = (StopIteration(), None)
    except BaseException as e:  # pylint: disable=broad-except
      item = (e, None)
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return
      except queue.Full:
        pass

  def __next__(self):
    if self._thread is None:
      self._state = self._iterator.get_state()
      self._thread = threading.Thread(target=self._fill, name='DevicePrefetch', daemon=True)
      self._thread.start()
    batch, state = self._queue.get()
    if isinstance(batch, BaseException):
      self._queue.put((batch, None))  # every later `next` raises it too
      raise batch
    self._state = state
    return batch

  def get_state(self):
    """JSON bytes, as grain's checkpoint handler writes and reads an iterator's state."""
    state = self._iterator.get_state() if self._state is None else self._state
    return state if isinstance(state, bytes) else json.dumps(state, indent=4).encode()

  def set_state(self, state):
    if self._thread is not None:
      raise RuntimeError('set_state after the prefetch started')
    if isinstance(self._iterator, grain.DatasetIterator):
      state = json.loads(state)
    self._iterator.set_state(state)

  def start_prefetch(self):
    pass

  def close(self):
    """Stops the thread (it may be blocked on a full queue or a slow read)."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=60)


def iterator_save_args(iterator):
  """Orbax args that save a train iterator's state inside a `CheckpointManager` composite.

  `manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
  data=iterator_save_args(iterator)))`; every process saves its own iterator file.
  """
  return grain.checkpoint.CheckpointSave(iterator)


def iterator_restore_args(iterator):
  """Orbax args that restore a freshly made iterator in place (see `iterator_save_args`)."""
  return grain.checkpoint.CheckpointRestore(iterator)


def _scan_tracks(source):
  """[(track_id, label, [record indices in offset order], storage samples)], sorted by id.

  Lengths come from each record's `num_samples`: `source` may skip decoding the audio.
  """
  found = {}
  for i, record in base.iter_metadata(source):
    entry = found.setdefault(base.track_id_str(record), [int(record['label']), [], 0])
    entry[1].append((float(record['offset_s']), i))
    entry[2] += int(record['num_samples'])
  return [(t, label, [i for _, i in sorted(parts)], samples)
          for t, (label, parts, samples) in sorted(found.items())]


def _tracks(builder, split):
  """The tracks of a split, scanned once per process (evaluation runs many times a training)."""
  source = base.metadata_source(builder, split)
  key = (os.fspath(builder.data_dir), split, len(source))
  if key not in _TRACKS:
    _TRACKS[key] = _scan_tracks(source)
  return _TRACKS[key]


def _segment_starts(length, seg_len, num_segments):
  """Start samples of a track's segments (see the module docstring for the policy)."""
  if num_segments is None:
    return list(range(0, max(length - seg_len, 0) + 1, seg_len))
  last = max(length - seg_len, 0)
  return [int(round(s)) for s in np.linspace(0, last, num_segments)]


def _resampled_len(samples, from_rate, to_rate):
  return int(round(samples * to_rate / from_rate))


def eval_batches(builder, *, split, segment_s, sample_rate, batch_size, num_segments=None,
                 label_filter=None, process_index=None, process_count=None):
  """This host's evaluation batches: deterministic segments, padded with a mask.

  Yields dicts (B = batch_size, per host):
    audio          float32 [B, round(segment_s * sample_rate)]
    label          int32 [B] (-1 where masked)
    track_id       str [B] ('' where masked)
    segment_index  int32 [B], the segment's index within its track (-1 where masked)
    mask           bool [B], False for padding; count only these

  Args:
    builder: a prepared `base.AudioBuilder`.
    split: the split to read (never 'test' during model selection).
    segment_s: segment length in seconds.
    sample_rate: the model's rate.
    batch_size: per-host batch size.
    num_segments: None for every full segment of each track; N for N evenly spaced
      segments per track (the song vote).
    label_filter: label name(s) whose tracks are left out (e.g. 'Unknown').
    process_index, process_count: this host's share of the tracks (default: jax's).
  """
  index, count = _process(process_index, process_count)
  from_rate = _storage_rate(builder)
  seg_len = int(round(segment_s * sample_rate))
  dropped = _dropped_ids(builder, label_filter)
  tracks = [t for t in _tracks(builder, split) if t[1] not in dropped]
  per_host = [[] for _ in range(count)]  # [(track, [starts])] per host
  for i, track in enumerate(tracks):
    length = _resampled_len(track[3], from_rate, sample_rate)
    per_host[i % count].append((track, _segment_starts(length, seg_len, num_segments)))
  num_batches = max(math.ceil(sum(len(s) for _, s in h) / batch_size) for h in per_host)
  source = builder.as_data_source(split=split)

  def segments():
    for (track_id, label, records, samples), starts in per_host[index]:
      pcm = np.concatenate([source[i]['audio'] for i in records])  # int16 [samples]
      x = _fit(audio.resample(base.from_int16(pcm), from_rate, sample_rate),
               _resampled_len(samples, from_rate, sample_rate))
      for k, start in enumerate(starts):
        yield _fit(x[start:start + seg_len], seg_len), label, track_id, k

  stream = segments()
  for _ in range(num_batches):
    batch = {'audio': np.zeros((batch_size, seg_len), np.float32),
             'label': np.full(batch_size, -1, np.int32),
             'track_id': np.full(batch_size, '', object),
             'segment_index': np.full(batch_size, -1, np.int32),
             'mask': np.zeros(batch_size, bool)}
    for row, (x, label, track_id, k) in zip(range(batch_size), stream):
      batch['audio'][row], batch['label'][row] = x, label
      batch['track_id'][row], batch['segment_index'][row] = track_id, k
      batch['mask'][row] = True
    batch['track_id'] = batch['track_id'].astype(str)
    yield batch


def normalization_stats(builder, *, split='train', sample_rate, max_seconds=600.0):
  """(mean, std) of the audio at `sample_rate`, from `split` (the training split).

  Reads whole records in a fixed pseudo-random order (seed 0, the same on every host) until
  `max_seconds` of audio are read, so the estimate is deterministic and bounded in cost.
  """
  from_rate = _storage_rate(builder)
  source = builder.as_data_source(split=split)
  if not len(source):
    raise errors.InputError(split, 'the split is empty')
  total, sum_x, sum_x2 = 0, 0.0, 0.0
  for i in np.random.default_rng(0).permutation(len(source)):
    x = audio.resample(base.from_int16(source[int(i)]['audio']), from_rate, sample_rate)
    x = x.astype(np.float64)
    total, sum_x, sum_x2 = total + len(x), sum_x + x.sum(), sum_x2 + np.square(x).sum()
    if total >= max_seconds * sample_rate:
      break
  mean = float(sum_x / total)
  return mean, math.sqrt(max(float(sum_x2 / total) - mean * mean, 0.0))


def to_global(batch, sharding, partition_spec=None):
  """Per-host numpy batch -> global jax.Arrays (`jax.make_array_from_process_local_data`).

  Args:
    batch: dict of per-host arrays, all with the same leading (batch) axis.
    sharding: a `jax.sharding.Sharding`, or a `Mesh` when `partition_spec` is given.
    partition_spec: with a mesh, e.g. `jax.P('data')`.

  Returns:
    The dict with numeric arrays global (leading axis = sum over hosts); text arrays
    (`track_id`) stay per-host numpy, since jax has no string arrays.
  """
  if partition_spec is not None:
    sharding = jax.NamedSharding(sharding, partition_spec)
  return {k: v if np.asarray(v).dtype.kind in 'USO' else
          jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}
