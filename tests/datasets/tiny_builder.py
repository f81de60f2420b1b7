"""A tiny `AudioBuilder` for pipeline tests: a few seconds of tones per track, built in seconds.

Each track is a deterministic chord of sines (its frequencies set by the track number) so that
tests can render the expected audio themselves. Records are at most 2 s, so most tracks span
several records, and train and test have different amplitudes (for the statistics test).
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from fmacomp.datasets import base

RATE = 16000
LABELS = ('Unknown', 'bass', 'drone', 'whistle')
# split -> [(track number, label, duration_s)]; amplitudes differ by split.
TRACKS = {
    'train': [(i, LABELS[i % 4], 2.5 + 0.5 * (i % 5)) for i in range(12)],
    'test': [(100 + i, LABELS[1 + i % 3], 3.0 + 1.0 * (i % 3)) for i in range(5)],
}
AMPLITUDE = {'train': 0.1, 'test': 0.6}


@dataclasses.dataclass(frozen=True)
class Recipe:
  number: int
  duration_s: float
  amplitude: float


def render(recipe, rate=RATE):
  """The track as float32 [round(duration_s * rate)]: three sines whose pitch names the track."""
  t = np.arange(int(round(recipe.duration_s * rate))) / rate
  f0 = 110.0 * 2 ** (recipe.number % 24 / 12)
  x = sum(np.sin(2 * np.pi * f0 * h * t + recipe.number) / h for h in (1, 2, 3))
  ramp = 1.0 + t / recipe.duration_s  # loudness grows through the track, so positions differ
  return (recipe.amplitude * x * ramp / 3.5).astype(np.float32)


class TinyTones(base.AudioBuilder, skip_registration=True):
  """A dozen short tone tracks in `train`, five in `test`, stored at 16 kHz."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Test data.'}
  BUILDER_CONFIGS = [base.AudioBuilderConfig(
      name='default', storage_rate=RATE, min_duration_s=1.0, max_record_s=2.0)]
  DESCRIPTION = 'Synthetic tones for tests.'

  def _label_names(self):
    return list(LABELS)

  def _split_tracks(self, dl_manager):
    del dl_manager
    return {split: [base.Track(track_id=f'track{n:03d}', label=label,
                               source=Recipe(n, duration, AMPLITUDE[split]))
                    for n, label, duration in tracks]
            for split, tracks in TRACKS.items()}

  def _blocks(self, track):
    yield render(track.source, self.builder_config.storage_rate)


def build(data_dir):
  """Builds (or reuses) TinyTones under `data_dir` and returns the prepared builder."""
  builder = TinyTones(data_dir=str(data_dir), file_format='array_record')
  builder.download_and_prepare(file_format='array_record')
  return builder


@dataclasses.dataclass
class ManyTonesConfig(base.AudioBuilderConfig):
  """`n_tracks` tone tracks of `track_s` seconds in `split`, one track in the other split."""
  n_tracks: int = 4
  split: str = 'train'
  track_s: float = 8.0


class ManyTones(base.AudioBuilder, skip_registration=True):
  """A split of many equal tone tracks (a 16-bit second is 32 KB at 16 kHz), for tests that
  measure memory at two sizes of a split; tiny metadata."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Test data.'}
  BUILDER_CONFIG_CLASS = ManyTonesConfig

  def _label_names(self):
    return list(LABELS)

  def _split_tracks(self, dl_manager):
    del dl_manager
    config = self.builder_config
    make = lambda n: base.Track(track_id=f'tone{n:04d}', label=LABELS[1 + n % 3],
                                duration_s=config.track_s,
                                source=Recipe(n, config.track_s, 0.3))
    other = 'test' if config.split == 'train' else 'train'
    return {config.split: [make(n) for n in range(config.n_tracks)], other: [make(9999)]}

  def _blocks(self, track):
    yield render(track.source, self.builder_config.storage_rate)
