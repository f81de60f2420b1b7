"""What every fmacomp audio dataset shares: the record schema, chunking, and the skip log.

A dataset is a TFDS `GeneratorBasedBuilder` that stores full-band int16 mono audio once, at the
config's `storage_rate`, in records of at most `max_record_s` seconds (longer tracks become
consecutive records keyed by track id and offset). The input pipeline resamples crops to each
model's rate, so one build serves every model.

Record features (DESIGN.md, "Datasets"):
  audio       int16 [samples] at `storage_rate` (scale 32767 = full scale)
  track_id    text, stable across builds (FMA's numeric id, a relative path, ...)
  offset_s    float32, where this record starts in its track
  label       ClassLabel (names sorted; `Unknown` where a dataset has unlabelled tracks)
  artist_id   int64, -1 where unknown
  duration_s  float32, the duration of the whole track (not of this record)
  num_samples int64, len(audio): readers learn lengths without decoding the audio

Subclasses implement `_split_tracks()` (and `_label_names()` when labels are known without
reading the data); they may override `_blocks()` for tracks that are rendered rather than read.
Whatever is undecodable or shorter than `min_duration_s` is skipped, listed with its reason in
`<data_dir>/<name>/<config>/<version>/skipped.json` (written after all splits), and the build
goes on.

The builder writes its own shards (`shards.py`: no TFDS shuffler, so no TensorFlow; uncompressed,
so that a training crop reads only its own bytes, `ranges.py`), in process,
in a pool of `workers` processes, or on Apache Beam (`DownloadConfig.beam_options` or
`beam_runner`, as `tfds build --beam_pipeline_options` sets them). Memory is bounded by a track
block, not by the dataset: tracks are decoded in blocks, and a track longer than
`TRACK_BUFFER_S` waits in a temporary file (its records carry the whole track's duration, known
only at its end).
"""

import dataclasses
import json
import os
import tempfile
from typing import Any, Iterator, Mapping, Sequence

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from fmacomp import audio
from fmacomp import errors
from fmacomp.datasets import shards

SKIPPED_FILE = 'skipped.json'
INT16_SCALE = 32767.0
# Decode block (seconds), and how much of one track is held in memory before it spills to disk.
BLOCK_S = 10.0
TRACK_BUFFER_S = 600.0


@dataclasses.dataclass
class AudioBuilderConfig(tfds.core.BuilderConfig):
  """Options every audio dataset has.

  Attributes:
    storage_rate: sample rate of the stored int16 audio (Hz).
    min_duration_s: tracks shorter than this are skipped (and listed in skipped.json).
    max_record_s: longer tracks are cut into consecutive records of at most this length.
    shard_s: seconds of audio per shard file (planned from the tracks' estimated durations);
      a shard is one task of the build's executor.
  """
  storage_rate: int = 44100
  min_duration_s: float = 5.0
  max_record_s: float = 30.0
  shard_s: float = 3600.0


@dataclasses.dataclass(frozen=True)
class Track:
  """One track to store. `path` is decoded by `AudioBuilder._blocks` unless a subclass renders it.

  `source` carries builder-specific data (a zip member, a render recipe...); `duration_s` is an
  estimate (None: unknown) that only plans the shards.
  """
  track_id: str
  label: str
  artist_id: int = -1
  path: str | None = None
  source: Any = None
  duration_s: float | None = None


RATE_SUFFIXES = {44100: '', 22050: '_22k', 16000: '_16k'}


def rate_variants(name, **kwargs):
  """Returns `name` at every storage rate: `name` (44.1 kHz), `name_22k`, `name_16k`."""
  return [(name + suffix, dict(storage_rate=rate, **kwargs))
          for rate, suffix in RATE_SUFFIXES.items()]


def to_int16(x):
  """float audio in [-1, 1] -> int16, clipped."""
  return np.clip(np.round(np.asarray(x, np.float32) * INT16_SCALE), -32768, 32767).astype(np.int16)


def from_int16(x):
  """int16 -> float32 in [-1, 1]."""
  return np.asarray(x, np.float32) / INT16_SCALE


def features(label_names=None):
  """The record schema shared by every dataset (see the module docstring)."""
  return tfds.features.FeaturesDict({
      # Raw bytes, not TFDS's default int64 varints: 3x smaller on disk, ~40x faster to decode.
      'audio': tfds.features.Tensor(shape=(None,), dtype=np.int16,
                                    encoding=tfds.features.Encoding.BYTES),
      'track_id': tfds.features.Text(),
      'offset_s': tfds.features.Scalar(dtype=np.float32),
      'label': tfds.features.ClassLabel(names=label_names),
      'artist_id': tfds.features.Scalar(dtype=np.int64),
      'duration_s': tfds.features.Scalar(dtype=np.float32),
      'num_samples': tfds.features.Scalar(dtype=np.int64),
  })


def read_skipped(data_dir):
  """The skip log of a built dataset: a list of {'path', 'reason'}."""
  path = os.path.join(os.fspath(data_dir), SKIPPED_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)


def build_fields(builder):
  """The fields that name a build: dataset, config, version, data_dir and storage_rate."""
  config = builder.builder_config
  return {
      'dataset': builder.name,
      'config': config.name if config else None,
      'version': str(builder.version),
      'data_dir': os.path.abspath(os.fspath(builder.data_dir)),
      'storage_rate': config.storage_rate if config else None,
  }


def metadata_source(builder, split):
  """A split's records with `audio` left as undecoded bytes: for readers of the other fields."""
  return builder.as_data_source(split=split, decoders={'audio': tfds.decode.SkipDecoding()})


# Records per batched read of `iter_metadata`: small, since each record still carries its audio
# bytes (up to 30 s; 256 at 44.1 kHz held ~1.7 GB at the end of a build, measured by build_bench).
METADATA_BATCH = 16


def iter_metadata(source):
  """Yields (index, record) of every record of a data source, in order, a few per read."""
  for lo in range(0, len(source), METADATA_BATCH):
    keys = list(range(lo, min(lo + METADATA_BATCH, len(source))))
    yield from zip(keys, source.__getitems__(keys))


def track_id_str(record):
  """A record's `track_id` as str (TFDS returns bytes for a Text feature)."""
  track_id = record['track_id']
  return track_id.decode() if isinstance(track_id, bytes) else str(track_id)


class LocalDatasetInfo(tfds.core.DatasetInfo):
  """DatasetInfo for datasets that TFDS's public bucket never holds.

  tfds 4.9 calls `initialize_from_bucket` for every builder of a dataset not built yet, and it
  leaves an empty `/tmp/tmp*tfds` folder behind each time (thousands over a test suite).
  """

  def initialize_from_bucket(self):
    pass


class AudioBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base builder: decode -> mono -> storage rate -> int16 records, with a skip log."""

  DESCRIPTION = ''
  HOMEPAGE = None
  CITATION = None

  @classmethod
  def from_name(cls, name, data_dir, manual_dir=None):
    """The builder for a registry NAME (`base` or `base/config`); see `fmacomp.datasets`."""
    config = name.split('/', 1)[1] if '/' in name else None
    return cls(config=config, data_dir=data_dir, file_format='array_record')

  def _label_names(self) -> Sequence[str] | None:
    """Label names if known before building (else `_split_tracks` sets them)."""
    return None

  def _split_tracks(self, dl_manager) -> Mapping[str, Sequence[Track]]:
    """Returns {'train': [Track, ...], 'validation': [...], 'test': [...]}."""
    raise NotImplementedError

  def _blocks(self, track: Track) -> Iterator[np.ndarray]:
    """Yields the track as consecutive float32 mono blocks [samples] at the storage rate.

    Raises:
      errors.AudioError: the track cannot be decoded (also mid-track); the builder skips it.
    """
    yield from audio.stream_blocks(track.path, block_s=BLOCK_S,
                                   sample_rate=self.builder_config.storage_rate)

  def _info(self):
    return LocalDatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=features(self._label_names()),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
        metadata=tfds.core.MetadataDict(sample_rate=self.builder_config.storage_rate),
    )

  def data_identity(self):
    """What a run that reads this (prepared) build trains on, as JSON-ready data.

    Returns:
      {'dataset', 'config', 'version', 'data_dir', 'storage_rate', 'examples': {split: count}};
      builders that know their source files add them (music_folder: the files and their hash).
    """
    return {
        **build_fields(self),
        'examples': {name: split.num_examples for name, split in sorted(self.info.splits.items())},
    }

  def set_label_names(self, names):
    """Sets the ClassLabel names at build time (datasets whose labels come from the data)."""
    label = self.info.features['label']
    # `names` of a ClassLabel built without names raises until they are set.
    if label.num_classes is None or label.names != list(names):
      label.names = list(names)

  # How `download_and_prepare` runs the shard tasks: `workers` processes (None: os.cpu_count(),
  # or in process for a build of less than one shard); DownloadConfig's Beam options win.
  workers = None

  def _split_generators(self, dl_manager):
    raise NotImplementedError('AudioBuilder writes its own shards (_generate_splits)')

  def _generate_splits(self, dl_manager, download_config):
    """Writes every split's shards (see shards.py); returns their TFDS SplitInfos."""
    splits = {name: list(tracks) for name, tracks in self._split_tracks(dl_manager).items()}
    _check_unique_ids(splits)
    infos, skipped = shards.write_splits(
        self, splits, shard_s=self.builder_config.shard_s,
        executor=self._executor(splits, download_config),
        filename_template=lambda split: self._get_filename_template(split_name=split))
    self._skipped += skipped
    return infos

  def _executor(self, splits, download_config):
    if download_config.beam_options is not None or download_config.beam_runner is not None:
      return shards.Executor(beam=True, beam_options=download_config.beam_options,
                             beam_runner=download_config.beam_runner)
    workers = self.workers
    if workers is None:
      total_s = sum(t.duration_s or 0.0 for tracks in splits.values() for t in tracks)
      # A spawned worker starts in seconds; on a build of less than one shard it cannot pay.
      workers = os.cpu_count() if total_s > self.builder_config.shard_s else 1
    return shards.Executor(workers=max(1, int(workers)))

  def _generate_examples(self, tracks: Sequence[Track]) -> Iterator[tuple[str, dict]]:
    """Yields (key, example) for `tracks` in order, skipping those that fail."""
    for track in tracks:
      yield from self._track_examples(track)

  def _track_examples(self, track):
    config = self.builder_config
    rate = config.storage_rate
    record_len = int(round(config.max_record_s * rate))
    with _PcmBuffer(int(TRACK_BUFFER_S * rate)) as pcm:
      try:
        for block in self._blocks(track):
          pcm.append(to_int16(block))
      except errors.AudioError as e:
        self._skip(track, e.reason)
        return
      duration = pcm.size / rate
      if duration < config.min_duration_s:
        self._skip(track, f'too short: {duration:.2f} s < min_duration_s={config.min_duration_s} s')
        return
      for k, chunk in enumerate(pcm.chunks(record_len)):
        start = k * record_len
        # A trailing piece shorter than a second carries no usable crop; leave it out.
        if start > 0 and len(chunk) < rate:
          break
        yield f'{track.track_id}@{start}', {
            'audio': chunk,
            'track_id': track.track_id,
            'offset_s': np.float32(start / rate),
            'label': track.label,
            'artist_id': np.int64(track.artist_id),
            'duration_s': np.float32(duration),
            'num_samples': np.int64(len(chunk)),
        }

  def _skip(self, track, reason):
    where = track.path or track.track_id
    logging.warning('Skipping %s: %s', where, reason)
    self._skipped.append({'path': str(where), 'track_id': track.track_id, 'reason': reason})

  def _download_and_prepare(self, dl_manager, download_config=None):
    self._skipped = []
    result = super()._download_and_prepare(dl_manager, download_config)
    # Written into the (still incomplete) build folder, so it lands with the data or not at all.
    # Sorted, so it is the same whatever the executor.
    skipped = sorted(self._skipped, key=lambda s: (s['path'], s['track_id']))
    with open(os.path.join(os.fspath(self.data_dir), SKIPPED_FILE), 'w') as f:
      json.dump(skipped, f, indent=1)
    return result


def _check_unique_ids(splits):
  """Two tracks with one id would interleave their records in every reader: refuse them."""
  seen = {}
  for split, tracks in splits.items():
    for track in tracks:
      if track.track_id in seen:
        raise ValueError(f'duplicate track_id {track.track_id!r} in {seen[track.track_id]!r} '
                         f'and {split!r}')
      seen[track.track_id] = split


class _PcmBuffer:
  """One track's int16 audio: in memory up to `limit` samples, past that in a temporary file."""

  def __init__(self, limit):
    self._limit = limit
    self._blocks = []
    self._file = None
    self.size = 0

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    if self._file is not None:
      self._file.close()

  def append(self, pcm):
    self.size += len(pcm)
    if self._file is None and self.size > self._limit:
      self._file = tempfile.TemporaryFile()
      for block in self._blocks:
        self._file.write(block.tobytes())
      self._blocks = []
    if self._file is not None:
      self._file.write(pcm.tobytes())
    else:
      self._blocks.append(pcm)

  def chunks(self, length):
    """Yields consecutive int16 pieces of `length` samples (the last may be shorter)."""
    if self._file is None:
      pcm = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.int16)
      for start in range(0, len(pcm), length):
        yield pcm[start:start + length]
      return
    self._file.seek(0)
    while piece := self._file.read(2 * length):
      yield np.frombuffer(piece, np.int16)
