"""The grain input pipeline: random training crops, deterministic eval segments, global arrays.

Every builder stores int16 mono audio at its storage rate (`builder.info.metadata
['sample_rate']`); this module cuts crops or segments there and resamples them (soxr, through
`fmacomp.audio.resample`) to the model's `sample_rate`, so one build serves every model.

Training (`train_loader`). One global stream for all hosts: the split is shuffled per epoch
from `seed`, each element's crop position comes from an RNG keyed by (seed, stream index), and
host p of P reads stream elements p, p+P, p+2P, ... So the hosts read disjoint shards that
together cover every epoch, and the P per-host batches of step k hold exactly the records (and
crops) of the single-process global batch k, whatever P is. The iterator's state is one
position in that stream: save it with the checkpoint (`iterator_save_args`) and a restored
iterator yields exactly the batches the original would have yielded next.

Evaluation (`eval_batches`). A track is all records with the same `track_id`, concatenated in
offset order and resampled whole; its segments are every full segment (hop = segment length;
a trailing partial segment is dropped unless the track is shorter than one segment, which then
gives one zero-padded segment) or `num_segments` evenly spaced ones (first at the start, last at
the end; a short track repeats its one zero-padded segment). Tracks are dealt to hosts in sorted
order; batches are padded with `mask=False` so every segment counts once, and every host yields
the same number of batches (all hosts run the same number of jit steps).
"""

import functools
import math
import os

import grain
import jax
import numpy as np

from fmacomp import audio
from fmacomp.datasets import base
from fmacomp import errors

# Context (seconds) read on each side of a crop before resampling, so the crop matches a crop of
# the whole resampled record (soxr's edge transient stays in the margin; ~1e-6 apart).
_MARGIN_S = 0.01
_SCAN_BATCH = 64
_TRACKS = {}  # (data_dir, split, records) -> _scan_tracks(...)


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


def crop(pcm, start, length, from_rate, to_rate, out_len):
  """`length` storage samples of int16 `pcm` from `start`, at `to_rate`: float32 [out_len].

  Reads a margin on each side (a whole number of resampler periods, so the output grid stays
  aligned), resamples, and keeps the middle; outside the record is zeros.
  """
  if from_rate == to_rate:
    return _fit(base.from_int16(_window(pcm, start, start + length)), out_len)
  period = from_rate // math.gcd(from_rate, to_rate)  # storage samples per whole output sample
  periods = math.ceil(_MARGIN_S * from_rate / period)
  margin, out_margin = periods * period, periods * to_rate // math.gcd(from_rate, to_rate)
  x = base.from_int16(_window(pcm, start - margin, start + length + margin))
  y = audio.resample(x, from_rate, to_rate)
  return _fit(y[out_margin:], out_len)


def _random_crop(element, rng, *, length, from_rate, to_rate, out_len):
  index, record = element
  pcm = record['audio']  # int16 [samples] at from_rate
  start = int(rng.integers(0, max(len(pcm) - length, 0) + 1))
  return {'audio': crop(pcm, start, length, from_rate, to_rate, out_len),  # [out_len]
          'label': np.int32(record['label']),
          'record_index': np.int32(index)}


def train_loader(builder, *, split='train', crop_s, sample_rate, global_batch_size, seed,
                 process_index=None, process_count=None, worker_count=0, num_epochs=None,
                 label_filter=None, num_threads=2):
  """This host's training batches: random crops, shuffled, as a grain `IterDataset`.

  `iter(loader)` gives a `grain.DatasetIterator` whose `get_state()/set_state()` resume it
  exactly (see `iterator_save_args`). Each batch is a dict:
    audio         float32 [B_local, round(crop_s * sample_rate)], in [-1, 1]
    label         int32 [B_local]
    record_index  int32 [B_local], the record's index in the split (for tests and debugging)

  Args:
    builder: a prepared `base.AudioBuilder`.
    split: the split to read.
    crop_s: crop length in seconds; records shorter than a crop are zero-padded.
    sample_rate: the model's rate; crops are cut at the storage rate, then resampled.
    global_batch_size: examples per step over all hosts; B_local = global / process_count.
    seed: the shuffle order and the crop positions; the same seed gives the same batches.
    process_index, process_count: this host's shard (default: jax's).
    worker_count: grain worker processes (0: in this process). The iterator state's format
      depends on it: resume with the same worker_count. Workers need absl flags parsed
      (launchers do; tests call `flags.FLAGS.mark_as_parsed()`).
    num_epochs: None repeats forever; else the stream ends after that many epochs, cut to a
      whole number of global batches (so every host yields the same number of batches).
    label_filter: a label name or names whose records are skipped (e.g. 'Unknown' for
      classifiers; names the dataset lacks are ignored). Records are read to be filtered, so
      where something is dropped the hosts' batches are no longer slices of the
      single-process batch, and with num_epochs their batch counts may differ.
    num_threads: reader threads per process.
  """
  index, count = _process(process_index, process_count)
  if global_batch_size % count:
    raise errors.InputError('global_batch_size', (
        f'{global_batch_size} is not divisible by the process count {count}'))
  local_batch = global_batch_size // count
  from_rate = _storage_rate(builder)
  dropped = _dropped_ids(builder, label_filter)
  shuffle_seed, crop_seed = np.random.SeedSequence(seed).generate_state(2)

  ds = grain.MapDataset.source(builder.as_data_source(split=split))
  num_records = len(ds)
  if not num_records:
    raise errors.InputError(split, 'the split is empty')
  # Indices past the first epoch reach the source as epoch * num_records + record.
  ds = ds.map_with_index(lambda i, record: (i % num_records, record))
  ds = ds.shuffle(seed=int(shuffle_seed)).repeat(num_epochs)
  if num_epochs is not None:
    ds = ds[:len(ds) // global_batch_size * global_batch_size]
  if dropped:
    ds = ds.filter(lambda element: int(element[1]['label']) not in dropped)
  ds = ds.random_map(functools.partial(
      _random_crop, length=int(round(crop_s * from_rate)), from_rate=from_rate,
      to_rate=sample_rate, out_len=int(round(crop_s * sample_rate))), seed=int(crop_seed))
  ds = ds[index::count]
  options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * local_batch)
  ds = ds.to_iter_dataset(options).batch(local_batch, drop_remainder=True)
  if worker_count:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return ds


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
  for lo in range(0, len(source), _SCAN_BATCH):
    keys = list(range(lo, min(lo + _SCAN_BATCH, len(source))))
    for i, record in zip(keys, source.__getitems__(keys)):
      track_id = record['track_id']
      track_id = track_id.decode() if isinstance(track_id, bytes) else str(track_id)
      entry = found.setdefault(track_id, [int(record['label']), [], 0])
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
