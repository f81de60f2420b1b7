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

Subclasses implement `_split_tracks()` (and `_label_names()` when labels are known without
reading the data); they may override `_load()` for tracks that are rendered rather than read.
Whatever is undecodable or shorter than `min_duration_s` is skipped, listed with its reason in
`<data_dir>/<name>/<config>/<version>/skipped.json` (written after all splits), and the build
goes on.
"""

import dataclasses
import json
import os
from typing import Any, Iterator, Mapping, Sequence

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from fmacomp import audio
from fmacomp import errors

SKIPPED_FILE = 'skipped.json'
INT16_SCALE = 32767.0


@dataclasses.dataclass
class AudioBuilderConfig(tfds.core.BuilderConfig):
  """Options every audio dataset has.

  Attributes:
    storage_rate: sample rate of the stored int16 audio (Hz).
    min_duration_s: tracks shorter than this are skipped (and listed in skipped.json).
    max_record_s: longer tracks are cut into consecutive records of at most this length.
  """
  storage_rate: int = 44100
  min_duration_s: float = 5.0
  max_record_s: float = 30.0


@dataclasses.dataclass(frozen=True)
class Track:
  """One track to store. `path` is decoded by `AudioBuilder._load` unless a subclass renders it.

  `source` carries builder-specific data (a zip member, a render recipe...).
  """
  track_id: str
  label: str
  artist_id: int = -1
  path: str | None = None
  source: Any = None


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
  })


def read_skipped(data_dir):
  """The skip log of a built dataset: a list of {'path', 'reason'}."""
  path = os.path.join(os.fspath(data_dir), SKIPPED_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)


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

  def _load(self, track: Track) -> np.ndarray:
    """Returns the track as float32 mono [samples] at the storage rate.

    Raises:
      errors.AudioError: the track cannot be decoded; the builder skips it.
    """
    samples, _ = audio.read_audio(track.path, sample_rate=self.builder_config.storage_rate)
    return samples

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
    config = self.builder_config
    return {
        'dataset': self.name,
        'config': config.name if config else None,
        'version': str(self.version),
        'data_dir': os.path.abspath(os.fspath(self.data_dir)),
        'storage_rate': config.storage_rate,
        'examples': {name: split.num_examples for name, split in sorted(self.info.splits.items())},
    }

  def set_label_names(self, names):
    """Sets the ClassLabel names at build time (datasets whose labels come from the data)."""
    label = self.info.features['label']
    # `names` of a ClassLabel built without names raises until they are set.
    if label.num_classes is None or label.names != list(names):
      label.names = list(names)

  def _split_generators(self, dl_manager):
    splits = self._split_tracks(dl_manager)
    return {name: self._generate_examples(tracks) for name, tracks in splits.items()}

  def _generate_examples(self, tracks: Sequence[Track]) -> Iterator[tuple[str, dict]]:
    config = self.builder_config
    rate = config.storage_rate
    record_len = int(round(config.max_record_s * rate))
    for track in tracks:
      try:
        samples = self._load(track)
      except errors.AudioError as e:
        self._skip(track, e.reason)
        continue
      duration = len(samples) / rate
      if duration < config.min_duration_s:
        self._skip(track, f'too short: {duration:.2f} s < min_duration_s={config.min_duration_s} s')
        continue
      pcm = to_int16(samples)
      for start in range(0, len(pcm), record_len):
        chunk = pcm[start:start + record_len]
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
        }

  def _skip(self, track, reason):
    where = track.path or track.track_id
    logging.warning('Skipping %s: %s', where, reason)
    self._skipped.append({'path': str(where), 'track_id': track.track_id, 'reason': reason})

  def _download_and_prepare(self, dl_manager, download_config=None):
    self._skipped = []
    result = super()._download_and_prepare(dl_manager, download_config)
    # Written into the (still incomplete) build folder, so it lands with the data or not at all.
    skipped = sorted(self._skipped, key=lambda s: s['path'])
    with open(os.path.join(os.fspath(self.data_dir), SKIPPED_FILE), 'w') as f:
      json.dump(skipped, f, indent=1)
    return result
