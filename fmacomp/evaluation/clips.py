"""The test audio every evaluator scores: deterministic clips, and whole tracks.

Clips (`test_clips`) are `per_track` evenly spaced `clip_s` excerpts strictly inside each test
track (one: the middle of three segments), at the dataset's storage rate, taken from tracks
spread evenly over the sorted test split: no random crop, so every row of the rate-distortion
table (fmacomp models and baselines alike) scores the same audio, and a rerun scores it again.
Several excerpts per track make a mean less hostage to one passage; intervals resample tracks
(`statistics.bootstrap_ci`). `folder_excerpts` does the same for a music folder's recordings,
read directly (the benchmarks). Whole tracks (`test_tracks`) are for evaluators that compress a
track as a user would (classification from compressed files). Both stream: tracks and clip
positions come from the records' stored lengths (`num_samples`), and only the audio used is read,
one track at a time, so evaluation's memory does not grow with the test split.
"""

import dataclasses
import os

import numpy as np

from fmacomp import audio
from fmacomp import errors
from fmacomp.datasets import base
from fmacomp.datasets import music_folder

CLIP_POLICY = ('clips_per_track evenly spaced excerpts strictly inside each track (1: the middle '
               'of 3 segments), tracks evenly spread over the sorted test split')


@dataclasses.dataclass(frozen=True)
class Clip:
  """One reference clip: float32 [T] mono audio at the storage rate.

  `track_id` names its recording (clips of one recording are resampled together by a
  bootstrap); `excerpt` is its index among that recording's excerpts.
  """
  audio: np.ndarray
  rate: int
  track_id: str
  label: int
  excerpt: int = 0

  @property
  def duration_s(self):
    return len(self.audio) / self.rate


def test_clips(builder, count, clip_s, split='test', per_track=1):
  """`per_track` clips of `clip_s` seconds from each of `count` tracks spread over `split`.

  The clips of a track are evenly spaced strictly inside it: the track's room is split into
  per_track + 1 equal gaps (the positions of `pipeline.eval_batches` with per_track + 2
  segments, the first and last dropped), so one clip per track is the middle of three segments.
  Tracks are chosen from the records' stored lengths (`num_samples`, no audio decoded), then only
  the records under each chosen clip are read: memory holds the clips returned, whatever the
  size of the split.

  Args:
    builder: the dataset's TFDS builder.
    count: at most this many tracks (fewer when the split has fewer).
    clip_s: each clip's length in seconds.
    split: the split to read.
    per_track: clips per track.

  Returns:
    [Clip], in the split's sorted track order, then the track's clip order.
  """
  rate = int(builder.info.metadata['sample_rate'])
  seg_len = int(round(clip_s * rate))
  tracks = track_index(builder, split)
  if len(tracks) > count:
    tracks = [tracks[i] for i in np.unique(np.round(np.linspace(0, len(tracks) - 1, count)))
              .astype(int)]
  source = builder.as_data_source(split=split)
  clips = []
  for track in tracks:
    starts = np.round(np.linspace(0, max(track.samples - seg_len, 0), per_track + 2))[1:-1]
    for k, start in enumerate(starts.astype(int)):
      clips.append(Clip(_read_span(source, track.records, start, start + seg_len), rate,
                        track.track_id, track.label, k))
  return clips


@dataclasses.dataclass(frozen=True)
class TrackRecords:
  """Where a track lies in a split: its records as (index, num_samples), in offset order."""
  track_id: str
  label: int
  records: tuple[tuple[int, int], ...]

  @property
  def samples(self):
    return sum(n for _, n in self.records)


def track_index(builder, split):
  """[TrackRecords] of `split`, sorted by track id, from the records' metadata alone."""
  source = base.metadata_source(builder, split)
  found = {}
  for i, record in base.iter_metadata(source):
    entry = found.setdefault(base.track_id_str(record), (int(record['label']), []))
    entry[1].append((float(record['offset_s']), i, int(record['num_samples'])))
  return [TrackRecords(t, label, tuple((i, n) for _, i, n in sorted(parts)))
          for t, (label, parts) in sorted(found.items())]


def _read_span(source, records, start, stop):
  """float32 [stop - start] of a track from sample `start`, zeros past its end; reads only the
  records that overlap the span."""
  out = np.zeros(stop - start, np.float32)
  first = 0  # the track sample where the current record starts
  for index, n in records:
    lo, hi = max(start, first), min(stop, first + n)
    if hi > lo:
      out[lo - start:hi - start] = base.from_int16(source[index]['audio'][lo - first:hi - first])
    first += n
    if first >= stop:
      break
  return out


class TestTracks:
  """The whole test tracks, read one at a time (see `test_tracks`).

  `len()` comes from the metadata; each iteration reads the split again, so several evaluators
  (or one per model pair) can walk it without the split ever being held in memory.
  """
  __test__ = False  # not a pytest test class

  def __init__(self, builder, label_filter=('Unknown',)):
    names = builder.info.features['label'].names
    dropped = {names.index(n) for n in label_filter if n in names}
    self._builder = builder
    self._tracks = [t for t in track_index(builder, 'test') if t.label not in dropped]

  def __len__(self):
    return len(self._tracks)

  def __iter__(self):
    source = self._builder.as_data_source(split='test')
    for track in self._tracks:
      pcm = np.concatenate([source[i]['audio'] for i, _ in track.records])  # int16 [T]
      yield track.track_id, track.label, base.from_int16(pcm)


def test_tracks(builder, label_filter=('Unknown',)):
  """The test split's tracks as (track_id, label, float32 [T] at the storage rate), sorted by id.

  A track stored as several records (DESIGN.md: records of at most 30 s) is put back together
  in offset order; tracks whose label is in `label_filter` are left out. Returns a `TestTracks`:
  iterate it (any number of times) to read one track at a time; `len()` needs no audio.
  """
  return TestTracks(builder, label_filter)


def excerpt_starts(duration_s, clip_s, count):
  """Starts (s) of `count` evenly spaced `clip_s` excerpts strictly inside a recording.

  The excerpts split the free room (duration - clip_s) into count + 1 equal gaps, so one
  excerpt is the middle and four sit at 1/5 .. 4/5 of it; a recording shorter than `clip_s`
  gives one excerpt from its start. Excerpts of a short recording may overlap.
  """
  room = duration_s - clip_s
  if room <= 0:
    return [0.0]
  return [float(s) for s in np.linspace(0.0, room, count + 2)[1:-1]]


def folder_excerpts(folder, split, clip_s, per_recording=1):
  """Evenly spaced excerpts of every recording of a music folder's split (its splits.json).

  For the benchmarks, which read the folder itself (no dataset build): each recording gives
  `per_recording` excerpts (`excerpt_starts`), downmixed to mono at its stored rate, which is
  the reference every metric compares with (DESIGN.md "Metrics").

  Args:
    folder: a music folder with a splits.json.
    split: 'train', 'validation' or 'test'.
    clip_s: seconds per excerpt.
    per_recording: excerpts per recording.

  Returns:
    [Clip] in sorted recording order, then excerpt order; `track_id` is the recording's path
    in the folder (the unit a bootstrap resamples), `label` 0 (a folder's styles are no labels).

  Raises:
    errors.InputError: the split names no recording.
  """
  splits = music_folder.read_splits_file(os.path.join(folder, music_folder.SPLITS_FILE))
  out = []
  for rel in sorted(p for p, s in splits.items() if s == split):
    path = os.path.join(folder, rel)
    for k, start in enumerate(excerpt_starts(audio.audio_info(path).duration_s, clip_s,
                                             per_recording)):
      x, rate = audio.read_audio(path, start_s=start, duration_s=clip_s)
      out.append(Clip(x, rate, rel, 0, k))
  if not out:
    raise errors.InputError(folder, f'no recordings in split {split!r}')
  return out
