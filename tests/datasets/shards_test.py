"""Builders write their own shards: the same bytes on every executor, no TensorFlow, and memory
bounded by a track block rather than by the dataset."""

import json
import os
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle

from tests.datasets import fake_fma
from tests.datasets import tiny_builder
from fmacomp.datasets import base
from fmacomp.datasets import fma
from fmacomp.datasets import music_folder
from fmacomp.datasets import shards

MIN_S = 1.0
# FMA plans shards at 30 s per clip: two clips a shard, so the fake splits have many shards.
SHARD_S = 60.0
N_MORE = 24


def _fma_build(root, manual_dir, workers=1, beam_runner=None):
  config = fma.FmaConfig(name='shards_test', subset='small', storage_rate=16000,
                         min_duration_s=MIN_S, shard_s=SHARD_S)
  builder = fma.Fma(config=config, data_dir=os.path.join(root, 'data'),
                    file_format='array_record')
  builder.workers = workers
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, beam_runner=beam_runner))
  return builder


def _files(builder):
  """{file name: bytes} of the build's shards and skip log."""
  folder = os.fspath(builder.data_dir)
  return {name: open(os.path.join(folder, name), 'rb').read() for name in sorted(
      os.listdir(folder)) if '.array_record' in name or name == base.SKIPPED_FILE}


@pytest.fixture(scope='module', name='fake')
def fake_fixture(tmp_path_factory):
  root = tmp_path_factory.mktemp('fake')
  return root, fake_fma.write_fake_fma(root, zipped=True, extra=fake_fma.more_tracks(N_MORE))


@pytest.fixture(scope='module', name='loop')
def loop_fixture(fake, tmp_path_factory):
  return _fma_build(tmp_path_factory.mktemp('loop'), fake[1])


def test_loop_build_has_many_shards_in_split_order(loop):
  splits = loop.info.splits
  assert len(splits['train'].shard_lengths) > 4
  assert splits['train'].num_examples == 6 + N_MORE * 6 // 8
  source = loop.as_data_source(split='train')
  ids = [source[i]['track_id'].decode() for i in range(len(source))]
  assert ids == sorted(ids)  # the split's order, not a hash order
  assert all(source[i]['num_samples'] == len(source[i]['audio']) for i in range(len(source)))
  assert not [n for n in os.listdir(loop.data_dir) if 'tmp' in n or n.endswith('.pkl')]


def test_unknown_split_value_is_skipped_with_its_reason(loop):
  skipped = {s['track_id']: s['reason'] for s in base.read_skipped(loop.data_dir)}
  assert skipped['299999'] == "unknown ('set', 'split') value 'holdout'"
  assert set(skipped) == {'098565', '098567', '098569', '099134', '108925', '299999'}


def test_pool_writes_the_same_bytes(loop, fake, tmp_path):
  pool = _fma_build(tmp_path, fake[1], workers=2)
  assert _files(pool) == _files(loop)
  assert pool.info.splits['train'].shard_lengths == loop.info.splits['train'].shard_lengths


def test_beam_writes_the_same_bytes(loop, fake, tmp_path):
  pytest.importorskip('apache_beam')
  from apache_beam.runners.portability import fn_api_runner  # pylint: disable=g-import-not-at-top
  from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
  options = pipeline_options.PipelineOptions(
      direct_num_workers=2, direct_running_mode='multi_processing')
  config = fma.FmaConfig(name='shards_test', subset='small', storage_rate=16000,
                         min_duration_s=MIN_S, shard_s=SHARD_S)
  builder = fma.Fma(config=config, data_dir=os.path.join(tmp_path, 'data'),
                    file_format='array_record')
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=fake[1], beam_runner=fn_api_runner.FnApiRunner(), beam_options=options))
  assert _files(builder) == _files(loop)
  for split in ('train', 'validation', 'test'):
    assert (builder.info.splits[split].shard_lengths ==
            loop.info.splits[split].shard_lengths), split


def test_no_tensorflow_past_the_shuffler_threshold(fake, tmp_path, monkeypatch):
  # TFDS's shuffler spills through tf.io.gfile past MAX_MEM_BUFFER_SIZE (1 GB); the old build
  # died there with "No module named 'tensorflow'". Builders no longer shuffle.
  monkeypatch.setattr(shuffle, 'MAX_MEM_BUFFER_SIZE', 64 << 10)
  builder = _fma_build(tmp_path, fake[1])
  assert builder.info.splits['train'].num_bytes > 64 << 10
  assert 'tensorflow' not in sys.modules


# fma/full: every track of the large subset from fma_full.zip; three are 40-70 s long.
FULL_CHUNKS = {'000004': (70.0, 'train'), '000020': (45.0, 'validation'),
               '000046': (40.0, 'test')}


def _full_build(root, manual_dir, workers):
  config = fma.FmaConfig(name='shards_test_full', subset='large', full=True, storage_rate=8000,
                         min_duration_s=MIN_S, shard_s=SHARD_S)
  builder = fma.Fma(config=config, data_dir=os.path.join(root, 'data'),
                    file_format='array_record')
  builder.workers = workers
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir))
  return builder


@pytest.fixture(scope='module', name='full')
def full_fixture(tmp_path_factory):
  manual_dir = fake_fma.write_fake_fma(tmp_path_factory.mktemp('full'), zipped=True, full=True,
                                       extra=fake_fma.more_tracks(6))
  return manual_dir, _full_build(tmp_path_factory.mktemp('full_loop'), manual_dir, workers=1)


def test_full_holds_every_large_track_in_30_s_records(full):
  _, builder = full
  source = builder.as_data_source()
  records = {}
  for split in source:
    for i in range(len(source[split])):
      r = source[split][i]
      records.setdefault((split, r['track_id'].decode()), []).append(r)
  good = {t.name for t in fake_fma.tracks('large', kinds=('ok',))}
  good |= {t.name for t in fake_fma.more_tracks(6, unknown_split=False)}
  assert {track_id for _, track_id in records} == good  # medium and large tracks included
  rate = builder.builder_config.storage_rate
  for track_id, (seconds, split) in FULL_CHUNKS.items():
    chunks = records[(split, track_id)]
    assert [float(r['offset_s']) for r in chunks] == [30.0 * k for k in range(len(chunks))]
    lengths = [int(r['num_samples']) for r in chunks]
    assert lengths[:-1] == [30 * rate] * (len(chunks) - 1) and 0 < lengths[-1] <= 30 * rate
    assert sum(lengths) == pytest.approx(seconds * rate, abs=0.03 * rate)
    assert all(r['duration_s'] == pytest.approx(sum(lengths) / rate) for r in chunks)
  skipped = {s['track_id'] for s in base.read_skipped(builder.data_dir)}
  assert skipped == {'098565', '098567', '098569', '099134', '108925', '299999'}


def test_full_pool_writes_the_same_bytes(full, tmp_path):
  manual_dir, loop = full
  pool = _full_build(tmp_path, manual_dir, workers=2)
  assert _files(pool) == _files(loop)
  assert len(loop.info.splits['train'].shard_lengths) > 1


def _write_long_tone(folder, seconds, rate):
  folder.mkdir(parents=True, exist_ok=True)
  t = np.arange(int(seconds * rate)) / rate
  x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + t / seconds) / 2
  sf.write(folder / 'long.wav', x.astype(np.float32), rate, subtype='PCM_16')


def _folder_build(folder, data_dir, rate):
  config = music_folder.config_for_folder(folder, storage_rate=rate, min_duration_s=1.0)
  builder = music_folder.MusicFolder(config=config, data_dir=data_dir, file_format='array_record')
  builder.workers = 1
  tracemalloc.start()
  try:
    builder.download_and_prepare(file_format='array_record')
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  source = builder.as_data_source(split='train')
  return [source[i] for i in range(len(source))], peak


def test_a_long_track_streams_through_a_file_with_the_same_records(tmp_path, monkeypatch):
  rate, seconds = 8000, 300
  _write_long_tone(tmp_path / 'music', seconds, rate)
  (tmp_path / 'music' / 'splits.json').write_text(json.dumps({'train': ['long.wav']}))
  in_memory, peak_memory = _folder_build(tmp_path / 'music', tmp_path / 'a', rate)
  monkeypatch.setattr(base, 'TRACK_BUFFER_S', 20.0)
  spilled, peak_spilled = _folder_build(tmp_path / 'music', tmp_path / 'b', rate)
  assert len(spilled) == len(in_memory) == 10
  for a, b in zip(in_memory, spilled):
    np.testing.assert_array_equal(a['audio'], b['audio'])
    assert (a['offset_s'], a['duration_s']) == (b['offset_s'], b['duration_s'])
  track_bytes = seconds * rate * 2  # int16
  assert peak_spilled < track_bytes / 2 < peak_memory, (peak_spilled, peak_memory)


def _peak_of_build(data_dir, n_tracks):
  config = tiny_builder.ManyTonesConfig(name=f'train{n_tracks}', storage_rate=16000,
                                        min_duration_s=1.0, n_tracks=n_tracks)
  builder = tiny_builder.ManyTones(config=config, data_dir=data_dir, file_format='array_record')
  builder.workers = 1
  tracemalloc.start()
  try:
    builder.download_and_prepare(file_format='array_record')
    return tracemalloc.get_traced_memory()[1], builder.info.splits['train'].num_bytes
  finally:
    tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_number_of_tracks(tmp_path):
  _peak_of_build(tmp_path / 'warm', 8)  # imports and caches, allocated once
  small_peak, _ = _peak_of_build(tmp_path / 'small', 8)
  large_peak, large_bytes = _peak_of_build(tmp_path / 'large', 32)
  # TFDS's shuffler held the whole split: 24 more tracks are 6 MB more in memory.
  assert large_bytes > 8e6
  assert large_peak < small_peak + 0.5e6, (small_peak, large_peak)
  print(f'peak_bytes small={small_peak} large={large_peak}')


def test_plan_cuts_consecutive_runs_by_duration():
  tracks = [base.Track(str(i), 'x', duration_s=d) for i, d in enumerate([10, 20, 40, 5, 5])]
  runs = shards.plan(tracks, shard_s=30)
  assert [[t.track_id for t in run] for run in runs] == [['0', '1'], ['2'], ['3', '4']]
  assert shards.plan([], shard_s=30) == [[]]
