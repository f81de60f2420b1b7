"""Builders write their own array_record shards, on any of three executors.

TFDS's writer shuffles each split through `shuffle.Shuffler`, which spills to disk through
TensorFlow above 1 GB, so a large build cannot finish without it. Here, as in TFDS's Hugging
Face builder (`HuggingfaceDatasetBuilder._generate_splits`), the builder writes the shards:

1. The driver plans the shards: each split's tracks, in split order, cut into consecutive runs
   of about `shard_s` seconds of audio (from the tracks' estimated durations). It writes the
   plan and the pickled builder to a manifest in the build folder.
2. One task per shard (`write_shard(manifest, number)`, a module-level function) decodes its
   tracks, writes their records to a temporary file and renames it to the shard's name, then
   writes a small JSON result beside it (examples, bytes, skipped files). A retried or repeated
   task rewrites the same bytes, so retries are harmless.
3. The driver reads the results, removes empty shards (renumbering the rest, so the file names
   are TFDS's `<name>-<split>.array_record-<i>-of-<n>`), and returns TFDS `SplitInfo`s.

Executors run step 2 and nothing else: in this process, a pool of spawn-started processes
(`workers`; spawn because importing fmacomp starts JAX's threads, which fork would copy
half-held), or an Apache Beam pipeline whose elements are the shard numbers (any runner; the
workers read the manifest, so the build folder must be on a file system they share). The output
is byte-identical whatever the executor and worker count, and records keep the split's order
(grain shuffles at read time).
"""

import dataclasses
import functools
import json
import logging as std_logging
import multiprocessing
import os
import pickle
import uuid
from typing import Any, Sequence

from absl import logging
from array_record.python import array_record_module
from tensorflow_datasets.core import example_serializer
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.core import splits as splits_lib

from fmacomp import errors
from fmacomp.datasets import ranges

MANIFEST_FILE = 'shards_manifest.pkl'
_RESULT_SUFFIX = '.result.json'
_TMP_MARK = '.tmp-'


class EmptySplitError(errors.InputError):
  """Every track of a split was skipped (a TFDS split cannot be empty); `path` is the split."""


@dataclasses.dataclass(frozen=True)
class ShardSpec:
  """One shard to write: `tracks` (base.Track) in order, to `path` (the planned name)."""
  split: str
  index: int
  path: str
  tracks: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Manifest:
  """What a shard task needs: the builder (pickled as TFDS does: its constructor arguments),
  the features with their label names (set at build time by some builders), and the plan."""
  builder: Any
  features: Any
  file_format: str
  shards: tuple[ShardSpec, ...]


def plan(tracks: Sequence[Any], shard_s: float) -> list[list[Any]]:
  """Cuts `tracks` (in order) into consecutive runs of about `shard_s` seconds.

  A shard closes once its estimated duration (`track.duration_s`, 0 when unknown) reaches
  `shard_s`; a split always has at least one shard.
  """
  runs, current, total = [], [], 0.0
  for track in tracks:
    current.append(track)
    total += track.duration_s or 0.0
    if total >= shard_s:
      runs.append(current)
      current, total = [], 0.0
  if current or not runs:
    runs.append(current)
  return runs


def _load_manifest_uncached(path):
  with open(path, 'rb') as f:
    return pickle.load(f)


_load_manifest = functools.lru_cache(maxsize=2)(_load_manifest_uncached)


def _result_path(spec):
  return spec.path + _RESULT_SUFFIX


def write_shard(manifest_path: str, number: int) -> dict:
  """Writes shard `number` of the manifest and its result file; returns the result.

  The result: {'examples', 'num_bytes', 'skipped': [{'path', 'track_id', 'reason'}]}.
  """
  manifest = _load_manifest(manifest_path)
  spec = manifest.shards[number]
  builder = manifest.builder
  builder._skipped = []  # pylint: disable=protected-access
  serializer = example_serializer.ExampleSerializer(manifest.features.get_serialized_info())
  counts = {'examples': 0, 'num_bytes': 0}

  def serialized():
    for key, example in builder._generate_examples(spec.tracks):  # pylint: disable=protected-access
      proto = serializer.get_tf_example(manifest.features.encode_example(example))
      # Features are a proto map, whose order follows the process's string hashes: sort it.
      data = proto.SerializeToString(deterministic=True)
      counts['examples'] += 1
      counts['num_bytes'] += len(data)
      yield key, data

  tmp = f'{spec.path}{_TMP_MARK}{uuid.uuid4().hex}'
  file_format = file_adapters.FileFormat(manifest.file_format)
  if file_format == file_adapters.FileFormat.ARRAY_RECORD:
    # Uncompressed, one record per chunk (TFDS compresses with zstd, 7 % smaller on int16
    # audio): a training crop then reads its own samples out of the file (ranges.py).
    writer = array_record_module.ArrayRecordWriter(tmp, ranges.RECORD_OPTIONS)
    for _, data in serialized():
      writer.write(data)
    writer.close()
  else:
    file_adapters.ADAPTER_FOR_FORMAT[file_format].write_examples(tmp, serialized())
  os.replace(tmp, spec.path)
  result = dict(counts, skipped=builder._skipped)  # pylint: disable=protected-access
  _write_json(_result_path(spec), result)
  return result


def _write_json(path, data):
  tmp = f'{path}{_TMP_MARK}{uuid.uuid4().hex}'
  with open(tmp, 'w') as f:
    json.dump(data, f)
  os.replace(tmp, path)


def _init_worker():
  # absl's handler is not installed in a spawned process: keep its warnings (skips) visible.
  std_logging.basicConfig(level=std_logging.WARNING)


def run_local(manifest_path, num_shards):
  for number in range(num_shards):
    write_shard(manifest_path, number)


def run_pool(manifest_path, num_shards, workers):
  context = multiprocessing.get_context('spawn')
  with context.Pool(workers, initializer=_init_worker) as pool:
    task = functools.partial(write_shard, manifest_path)
    for done, _ in enumerate(pool.imap_unordered(task, range(num_shards)), 1):
      logging.info('Wrote %d of %d shards', done, num_shards)


def run_beam(manifest_path, num_shards, options=None, runner=None):
  """One Beam task per shard; shard results come back through their result files."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  with beam.Pipeline(runner=runner, options=options) as pipeline:
    _ = (pipeline
         | 'Shards' >> beam.Create(list(range(num_shards)))
         | 'Spread' >> beam.Reshuffle()
         | 'Write' >> beam.Map(_beam_task, manifest_path))


def _beam_task(number, manifest_path):
  write_shard(manifest_path, number)


@dataclasses.dataclass(frozen=True)
class Executor:
  """How shard tasks run: `workers` processes (1: in this process), or Beam when `beam`."""
  workers: int = 1
  beam: bool = False
  beam_options: Any = None
  beam_runner: Any = None

  def run(self, manifest_path, num_shards):
    if self.beam:
      run_beam(manifest_path, num_shards, self.beam_options, self.beam_runner)
    elif min(self.workers, num_shards) > 1:
      run_pool(manifest_path, num_shards, min(self.workers, num_shards))
    else:
      run_local(manifest_path, num_shards)


def write_splits(builder, splits, *, shard_s, executor, filename_template):
  """Plans, writes and collects every split's shards.

  Args:
    builder: the `base.AudioBuilder` being built (pickled into the manifest).
    splits: {split: [base.Track, ...]} in the order to store.
    shard_s: target seconds of audio per shard.
    executor: an `Executor`.
    filename_template: split name -> TFDS `ShardedFileTemplate`.

  Returns:
    (TFDS SplitInfos, skipped entries of the shard tasks).

  Raises:
    EmptySplitError: a split whose every track was skipped.
  """
  specs = []
  for split, tracks in splits.items():
    runs = plan(tracks, shard_s)
    template = filename_template(split)
    specs += [ShardSpec(split, i, os.fspath(template.sharded_filepath(
        shard_index=i, num_shards=len(runs))), tuple(run)) for i, run in enumerate(runs)]
  manifest_path = os.path.join(os.fspath(builder.data_dir), MANIFEST_FILE)
  manifest = Manifest(builder, builder.info.features, builder.info.file_format.value, tuple(specs))
  with open(manifest_path, 'wb') as f:
    pickle.dump(manifest, f)
  logging.info('Writing %d shards of %d tracks with %s', len(specs),
               sum(len(s.tracks) for s in specs), executor)
  try:
    executor.run(manifest_path, len(specs))
    return _collect(specs, filename_template)
  finally:
    _load_manifest.cache_clear()
    os.remove(manifest_path)
    _remove_leftovers(os.fspath(builder.data_dir))


def _collect(specs, filename_template):
  """Reads the shard results, drops empty shards, renumbers the rest; (SplitInfos, skipped)."""
  by_split, skipped = {}, []
  for spec in specs:
    with open(_result_path(spec)) as f:
      result = json.load(f)
    skipped += result['skipped']
    by_split.setdefault(spec.split, []).append((spec, result))
  infos = []
  for split, shards in by_split.items():
    kept = [(spec, r) for spec, r in shards if r['examples']]
    if not kept:
      raise EmptySplitError(split, 'no examples: every track of the split was skipped')
    template = filename_template(split)
    for i, (spec, _) in enumerate(kept):
      final = os.fspath(template.sharded_filepath(shard_index=i, num_shards=len(kept)))
      if final != spec.path:
        os.replace(spec.path, final)
    for spec, r in shards:
      if not r['examples']:
        os.remove(spec.path)
    infos.append(splits_lib.SplitInfo(
        name=split, shard_lengths=[r['examples'] for _, r in kept],
        num_bytes=sum(r['num_bytes'] for _, r in kept), filename_template=template))
  return infos, skipped


def _remove_leftovers(folder):
  """Result files, and temporary files of tasks that died (a retry wrote the shard again)."""
  for name in os.listdir(folder):
    if name.endswith(_RESULT_SUFFIX) or _TMP_MARK in name:
      os.remove(os.path.join(folder, name))
