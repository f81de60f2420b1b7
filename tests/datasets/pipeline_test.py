"""Tests of the grain input pipeline on a tiny real TFDS build (tests/datasets/tiny_builder.py)."""

import collections
import itertools
import time

from absl import flags
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from fmacomp import audio
from fmacomp.datasets import base
from fmacomp.datasets import pipeline
from fmacomp import errors

from tests.datasets import tiny_builder

RATE = tiny_builder.RATE


@pytest.fixture(scope='module')
def builder(tmp_path_factory):
  return tiny_builder.build(tmp_path_factory.mktemp('tfds'))


def take(loader, n):
  return list(itertools.islice(iter(loader), n))


def loader(builder, **kwargs):
  kwargs = dict(dict(crop_s=0.5, sample_rate=8000, global_batch_size=4, seed=0,
                     process_index=0, process_count=1), **kwargs)
  return pipeline.train_loader(builder, **kwargs)


def assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert sorted(x) == sorted(y)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_same_seed_same_batches_and_different_seed_differs(builder):
  first = take(loader(builder, seed=3), 4)
  assert_batches_equal(first, take(loader(builder, seed=3), 4))
  other = take(loader(builder, seed=4), 4)
  assert not all(np.array_equal(x['record_index'], y['record_index']) and
                 np.array_equal(x['audio'], y['audio']) for x, y in zip(first, other))
  # Crop positions are random too: the same record is not always cut at the same place.
  crops = collections.defaultdict(set)
  for batch in take(loader(builder, seed=3), 30):
    for i, x in zip(batch['record_index'], batch['audio']):
      crops[int(i)].add(x[:8].tobytes())
  assert max(len(v) for v in crops.values()) > 1


def best_offset(whole, x):
  """argmin_s ||whole[s:s + len(x)] - x||^2, by FFT correlation."""
  n = len(whole) + len(x)
  corr = np.fft.irfft(np.fft.rfft(whole, n) * np.conj(np.fft.rfft(x, n)), n)
  energy = np.cumsum(np.concatenate([[0.0], np.square(whole, dtype=np.float64)]))
  starts = np.arange(len(whole) - len(x) + 1)
  return int(np.argmin(energy[starts + len(x)] - energy[starts] - 2 * corr[starts]))


@pytest.mark.parametrize('sample_rate', [8000, 32000])
def test_crop_is_a_window_of_the_resampled_record(builder, sample_rate):
  source = builder.as_data_source(split='train')
  batch = take(loader(builder, crop_s=0.75, sample_rate=sample_rate), 1)[0]
  crop_len = int(round(0.75 * sample_rate))
  assert batch['audio'].shape == (4, crop_len) and batch['audio'].dtype == np.float32
  assert batch['label'].dtype == np.int32
  for i, x in zip(batch['record_index'], batch['audio']):
    record = source[int(i)]
    assert batch['label'][list(batch['record_index']).index(i)] == record['label']
    whole = audio.resample(base.from_int16(record['audio']), RATE, sample_rate)
    # The crop starts on the storage grid; at 32 kHz every start is on the output grid too.
    start = best_offset(whole, x)
    assert np.abs(whole[start:start + crop_len] - x).max() < (
        1e-4 if sample_rate == 32000 else 5e-2)


def test_short_records_are_zero_padded(builder):
  source = builder.as_data_source(split='train')
  for batch in take(loader(builder, crop_s=3.0, sample_rate=RATE), 3):
    assert batch['audio'].shape == (4, 3 * RATE)
    for i, x in zip(batch['record_index'], batch['audio']):
      pcm = source[int(i)]['audio']  # at most 2 s: the whole record, then zeros
      np.testing.assert_array_equal(x[:len(pcm)], base.from_int16(pcm))
      assert not x[len(pcm):].any()


def test_two_hosts_read_disjoint_shards_that_rebuild_the_global_batch(builder):
  n = len(builder.as_data_source(split='train'))
  single = take(loader(builder, global_batch_size=4), 6)
  hosts = [take(loader(builder, global_batch_size=4, process_index=p, process_count=2), 6)
           for p in range(2)]
  for k, batch in enumerate(single):
    for p in range(2):
      assert hosts[p][k]['audio'].shape == (2, 4000)
      for key in batch:
        np.testing.assert_array_equal(hosts[p][k][key], batch[key][p::2])
  # The first epoch: global stream elements 0..n-1; host p holds those = p (mod 2).
  seen = [np.concatenate([b['record_index'] for b in h])[:len(range(p, n, 2))]
          for p, h in enumerate(hosts)]
  assert not set(seen[0]) & set(seen[1])
  assert sorted(np.concatenate(seen)) == list(range(n))


def test_finite_epochs_give_every_host_the_same_number_of_batches(builder):
  n = len(builder.as_data_source(split='train'))
  counts = [len(list(loader(builder, global_batch_size=4, num_epochs=2, process_index=p,
                            process_count=2))) for p in range(2)]
  assert counts == [2 * n // 4] * 2


def test_a_worker_process_gives_the_same_batches_and_state(builder):
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # grain's workers read absl flags (launchers parse them)
  expected = take(loader(builder, seed=5), 4)
  iterator = iter(loader(builder, seed=5, worker_count=1))
  got = [next(iterator) for _ in range(2)]
  state = iterator.get_state()
  got += [next(iterator) for _ in range(2)]
  assert_batches_equal(got, expected)
  iterator.set_state(state)  # rewinds (the state format depends on worker_count)
  assert_batches_equal([next(iterator) for _ in range(2)], expected[2:])
  iterator.close()


def test_label_filter_drops_unknown(builder):
  unknown = builder.info.features['label'].str2int('Unknown')
  labels = np.concatenate([b['label'] for b in take(loader(builder), 20)])
  assert unknown in labels
  filtered = take(loader(builder, label_filter='Unknown'), 20)
  assert unknown not in np.concatenate([b['label'] for b in filtered])


def test_with_a_label_filter_hosts_still_split_the_global_batch(builder):
  unknown = builder.info.features['label'].str2int('Unknown')
  single = take(loader(builder, label_filter='Unknown'), 5)
  for p in range(2):
    host = take(loader(builder, label_filter='Unknown', process_index=p, process_count=2), 5)
    for k, batch in enumerate(single):
      assert unknown not in batch['label']
      np.testing.assert_array_equal(host[k]['record_index'], batch['record_index'][p::2])
      np.testing.assert_array_equal(host[k]['audio'], batch['audio'][p::2])


def test_batch_must_divide_among_hosts(builder):
  with pytest.raises(errors.InputError, match='divisible'):
    loader(builder, global_batch_size=5, process_index=0, process_count=2)


@pytest.mark.parametrize('async_save', [False, True])
def test_orbax_restore_resumes_exactly(builder, tmp_path, async_save):
  iterator = iter(loader(builder, seed=7))
  for _ in range(3):
    next(iterator)
  options = ocp.CheckpointManagerOptions(enable_async_checkpointing=async_save, create=True)
  with ocp.CheckpointManager(tmp_path / 'ckpt', options=options) as manager:
    manager.save(3, args=ocp.args.Composite(
        state=ocp.args.StandardSave({'step': np.array(3, np.int32)}),
        data=pipeline.iterator_save_args(iterator)))
    expected = [next(iterator) for _ in range(4)]  # advanced while an async save may run
    manager.wait_until_finished()
  with ocp.CheckpointManager(tmp_path / 'ckpt', options=options) as manager:
    fresh = iter(loader(builder, seed=7))
    restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore({'step': np.array(0, np.int32)}),
        data=pipeline.iterator_restore_args(fresh)))
  assert int(restored['state']['step']) == 3
  assert_batches_equal([next(fresh) for _ in range(4)], expected)


def test_device_prefetch_saves_the_state_of_the_batches_taken(builder):
  mesh = jax.make_mesh((jax.device_count(),), ('data',))
  sharding = jax.NamedSharding(mesh, jax.P('data'))
  expected = take(loader(builder), 6)
  prefetch = pipeline.DevicePrefetch(iter(loader(builder)), sharding, size=2)
  got = [next(prefetch) for _ in range(2)]
  deadline = time.monotonic() + 60
  full = prefetch._queue.full  # pylint: disable=protected-access
  while not full() and time.monotonic() < deadline:
    time.sleep(0.01)
  assert full()
  state = prefetch.get_state()  # the thread has read 2 batches ahead; the state is after batch 2
  prefetch.close()
  for a, b in zip(got, expected):
    assert isinstance(a['audio'], jax.Array)
    np.testing.assert_array_equal(np.asarray(a['audio']), b['audio'])
  fresh = pipeline.DevicePrefetch(iter(loader(builder)), sharding)
  fresh.set_state(state)
  for b in expected[2:]:
    np.testing.assert_array_equal(np.asarray(next(fresh)['record_index']), b['record_index'])
  fresh.close()


def stored_track(number, split='test'):
  """What the builder stored for a track: int16 of the render, records in offset order."""
  split_tracks = {n: d for n, _, d in tiny_builder.TRACKS[split]}
  recipe = tiny_builder.Recipe(number, split_tracks[number], tiny_builder.AMPLITUDE[split])
  return base.from_int16(base.to_int16(tiny_builder.render(recipe)))


def eval_list(builder, **kwargs):
  kwargs = dict(dict(split='test', segment_s=1.5, sample_rate=8000, batch_size=4,
                     process_index=0, process_count=1), **kwargs)
  return list(pipeline.eval_batches(builder, **kwargs))


def segments_of(batches):
  return [(t, int(k)) for b in batches
          for t, k, m in zip(b['track_id'], b['segment_index'], b['mask']) if m]


def test_eval_all_segments_each_counted_once(builder):
  batches = eval_list(builder)
  assert_batches_equal(batches, eval_list(builder))  # deterministic
  expected = []
  for n, _, duration in tiny_builder.TRACKS['test']:
    expected += [(f'track{n:03d}', k) for k in range(int(duration // 1.5))]
  found = segments_of(batches)
  assert sorted(found) == sorted(expected)
  assert len(batches) == -(-len(expected) // 4)
  last = batches[-1]
  assert (~last['mask']).sum() == 4 * len(batches) - len(expected)
  assert not last['audio'][~last['mask']].any() and (last['label'][~last['mask']] == -1).all()
  for b in batches:
    assert b['audio'].shape == (4, 12000) and b['mask'].dtype == bool


def test_eval_segments_cross_record_boundaries(builder):
  batches = eval_list(builder, num_segments=3)
  seg_len = 12000
  found = 0
  for b in batches:
    for x, t, k, m in zip(b['audio'], b['track_id'], b['segment_index'], b['mask']):
      if not m:
        continue
      whole = audio.resample(stored_track(int(t[5:])), RATE, 8000)
      start = int(round(k * (len(whole) - seg_len) / 2))  # 3 evenly spaced: 0, middle, end
      np.testing.assert_allclose(x, whole[start:start + seg_len], atol=1e-6)
      found += 1
  assert found == 3 * len(tiny_builder.TRACKS['test'])


def test_eval_hosts_are_disjoint_and_run_the_same_number_of_batches(builder):
  single = segments_of(eval_list(builder))
  hosts = [eval_list(builder, process_index=p, process_count=2) for p in range(2)]
  assert len(hosts[0]) == len(hosts[1])
  found = [segments_of(h) for h in hosts]
  assert not set(found[0]) & set(found[1])
  assert sorted(found[0] + found[1]) == sorted(single)


def test_eval_label_filter(builder):
  tracks = {t for t, _ in segments_of(eval_list(builder, split='train', label_filter='Unknown'))}
  unknown = {f'track{n:03d}' for n, label, _ in tiny_builder.TRACKS['train'] if label == 'Unknown'}
  assert tracks and not tracks & unknown


def test_normalization_stats_come_from_the_train_split(builder):
  mean, std = pipeline.normalization_stats(builder, sample_rate=8000, max_seconds=1e6)
  train = np.concatenate([audio.resample(stored_track(n, 'train'), RATE, 8000)
                          for n, _, _ in tiny_builder.TRACKS['train']])
  test = np.concatenate([audio.resample(stored_track(n, 'test'), RATE, 8000)
                         for n, _, _ in tiny_builder.TRACKS['test']])
  assert std == pytest.approx(train.std(), rel=0.05)
  assert abs(mean) < 0.1 * std
  assert test.std() > 4 * std  # the test split is louder: had it leaked in, std would grow
  # A small budget reads a deterministic subsample.
  assert pipeline.normalization_stats(builder, sample_rate=8000, max_seconds=2.0) == \
      pipeline.normalization_stats(builder, sample_rate=8000, max_seconds=2.0)


def test_to_global_makes_sharded_arrays(builder):
  mesh = jax.make_mesh((jax.device_count(),), ('data',))
  host = eval_list(builder)[0]
  arrays = pipeline.to_global(host, mesh, jax.P('data'))
  assert isinstance(arrays['audio'], jax.Array)
  assert arrays['audio'].shape == (4 * jax.process_count(), 12000)
  np.testing.assert_array_equal(np.asarray(arrays['mask']), host['mask'])
  np.testing.assert_array_equal(arrays['track_id'], host['track_id'])  # text stays on the host
