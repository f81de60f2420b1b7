"""The test audio every evaluator scores: deterministic clips, and whole tracks.

Clips (`test_clips`) are the middle of three evenly spaced `clip_s` segments of each test track
(`pipeline.eval_batches(num_segments=3)`, segment 1), at the dataset's storage rate, taken from
tracks spread evenly over the sorted test split: no random crop, so every row of the
rate-distortion table (fmacomp models and baselines alike) scores the same audio, and a rerun
scores it again. Whole tracks (`test_tracks`) are for evaluators that compress a track as a user
would (classification from compressed files).
"""

import dataclasses

import numpy as np

from fmacomp.datasets import base
from fmacomp.datasets import pipeline

CLIP_POLICY = ('middle of 3 evenly spaced segments per track, tracks evenly spread over the '
               'sorted test split')


@dataclasses.dataclass(frozen=True)
class Clip:
  """One reference clip: float32 [T] mono audio at the storage rate."""
  audio: np.ndarray
  rate: int
  track_id: str
  label: int

  @property
  def duration_s(self):
    return len(self.audio) / self.rate


def test_clips(builder, count, clip_s, split='test'):
  """`count` clips of `clip_s` seconds from tracks spread evenly over `split` (module doc).

  Args:
    builder: the dataset's TFDS builder.
    count: at most this many clips (one per track; fewer when the split has fewer tracks).
    clip_s: each clip's length in seconds.
    split: the split to read.

  Returns:
    [Clip], in the split's sorted track order.
  """
  rate = int(builder.info.metadata['sample_rate'])
  found = []
  for batch in pipeline.eval_batches(builder, split=split, segment_s=clip_s, sample_rate=rate,
                                     batch_size=16, num_segments=3, process_index=0,
                                     process_count=1):
    for row in np.flatnonzero(batch['mask'] & (batch['segment_index'] == 1)):
      found.append(Clip(batch['audio'][row].copy(), rate, str(batch['track_id'][row]),
                        int(batch['label'][row])))
  if len(found) > count:
    found = [found[i] for i in np.unique(np.round(np.linspace(0, len(found) - 1, count)))
             .astype(int)]
  return found


def test_tracks(builder, label_filter=('Unknown',)):
  """[(track_id, label, float32 [T] at the storage rate)] of the test split, sorted by id.

  A track stored as several records (DESIGN.md: records of at most 30 s) is put back together
  in offset order; tracks whose label is in `label_filter` are left out.
  """
  source = builder.as_data_source(split='test')
  names = builder.info.features['label'].names
  dropped = {names.index(n) for n in label_filter if n in names}
  parts = {}
  for i in range(len(source)):
    record = source[i]
    track_id = record['track_id']
    track_id = track_id.decode() if isinstance(track_id, bytes) else str(track_id)
    entry = parts.setdefault(track_id, (int(record['label']), []))
    entry[1].append((float(record['offset_s']), record['audio']))
  tracks = []
  for track_id, (label, pieces) in sorted(parts.items()):
    if label not in dropped:
      pcm = np.concatenate([a for _, a in sorted(pieces, key=lambda p: p[0])])  # offset order
      tracks.append((track_id, label, base.from_int16(pcm)))
  return tracks
