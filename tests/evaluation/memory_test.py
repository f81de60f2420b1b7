"""Evaluation reads the test split in bounded memory: its peak does not grow with the number of
test tracks (issue 9). The old readers kept every test track (int16 and float32) and one clip per
track before choosing `count` of them: 10x the tracks was ~10x the peak."""

import tracemalloc

import numpy as np

from fmacomp.evaluation import clips as clips_lib
from tests.datasets import tiny_builder

RATE = 16000
TRACK_S = 3.0  # two records each (max_record_s 2 s)
CLIPS = 4


def _build(data_dir, n_test):
  config = tiny_builder.ManyTonesConfig(
      name=f'test{n_test}', storage_rate=RATE, min_duration_s=1.0, max_record_s=2.0,
      n_tracks=n_test, split='test', track_s=TRACK_S)
  builder = tiny_builder.ManyTones(config=config, data_dir=data_dir, file_format='array_record')
  builder.workers = 1
  builder.download_and_prepare(file_format='array_record')
  return builder


def _evaluation_reads(builder):
  """What evaluation reads of the test split: the rate-distortion clips, then every whole track
  as compressed_genre walks them (one at a time, nothing kept). Returns (peak bytes, clips,
  tracks seen)."""
  tracemalloc.start()
  try:
    clips = clips_lib.test_clips(builder, CLIPS, clip_s=1.0)
    seen = sum(1 for _ in clips_lib.test_tracks(builder))
    return tracemalloc.get_traced_memory()[1], clips, seen
  finally:
    tracemalloc.stop()


def test_evaluation_peak_memory_is_flat_in_the_number_of_test_tracks(tmp_path):
  small, large = _build(tmp_path / 'small', 20), _build(tmp_path / 'large', 200)
  _evaluation_reads(small)  # imports and first-use allocations, made once
  small_peak, small_clips, small_seen = _evaluation_reads(small)
  large_peak, large_clips, large_seen = _evaluation_reads(large)
  assert (small_seen, large_seen) == (20, 200)
  assert len(small_clips) == len(large_clips) == CLIPS
  # 180 more tracks are 17 MB of int16 + float32 audio and 11.5 MB of 1-s float32 clips:
  # holding either would show; the metadata index of 360 more records is tens of KB.
  assert large_peak < small_peak + 1.5e6, (small_peak, large_peak)
  print(f'peak_bytes 20_tracks={small_peak} 200_tracks={large_peak}')


def test_clips_and_tracks_read_from_metadata_match_the_audio(tmp_path):
  builder = _build(tmp_path, 5)
  tracks = clips_lib.test_tracks(builder)
  assert len(tracks) == 5  # from metadata, before any audio is read
  for n, (track_id, label, x) in enumerate(tracks):
    whole = tiny_builder.render(tiny_builder.Recipe(n, TRACK_S, 0.3), RATE)
    assert (track_id, label) == (f'tone{n:04d}', 1 + n % 3)
    np.testing.assert_allclose(x, whole, atol=1e-4)  # both records, in offset order
  # Tracks 0, 2, 4 of 5; 3 clips of 1 s each split the 2 s of room into 4 gaps: 0.5, 1, 1.5 s,
  # so the clips straddle the record boundary at 2 s.
  clips = clips_lib.test_clips(builder, 3, clip_s=1.0, per_track=3)
  assert [(c.track_id, c.excerpt) for c in clips][:3] == [('tone0000', k) for k in range(3)]
  assert [c.track_id for c in clips[::3]] == ['tone0000', 'tone0002', 'tone0004']
  for c in clips:
    whole = tiny_builder.render(tiny_builder.Recipe(int(c.track_id[4:]), TRACK_S, 0.3), RATE)
    first = int(round((0.5 + 0.5 * c.excerpt) * RATE))
    np.testing.assert_allclose(c.audio, whole[first:first + RATE], atol=1e-4)
