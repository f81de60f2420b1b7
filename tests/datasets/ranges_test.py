"""Range reads of stored audio (fmacomp.datasets.ranges) and the pipeline's two read paths."""

import os

from array_record.python import array_record_module
import numpy as np
import pytest

from fmacomp.datasets import pipeline
from fmacomp.datasets import ranges

from tests.datasets import tiny_builder


@pytest.fixture(scope='module')
def builder(tmp_path_factory):
  return tiny_builder.build(tmp_path_factory.mktemp('tfds'))


def window(pcm, lo, hi):
  """pcm[lo:hi] with zeros outside pcm."""
  out = np.zeros(hi - lo, pcm.dtype)
  out[max(-lo, 0):max(min(hi, len(pcm)) - lo, 0)] = pcm[max(lo, 0):max(min(hi, len(pcm)), 0)]
  return out


def split_ranges(builder, split='train'):
  info = builder.info.splits[split]
  return ranges.index_split(info.filepaths, info.shard_lengths)


def test_the_index_and_every_range_match_the_decoded_records(builder):
  index = split_ranges(builder)
  assert index is not None
  source = builder.as_data_source(split='train')
  assert len(index.num_samples) == len(source)
  for i in range(len(source)):
    record = source[i]
    pcm = record['audio']
    assert index.num_samples[i] == len(pcm) == record['num_samples']
    assert index.label[i] == record['label']
    n = len(pcm)
    for lo, hi in [(0, n), (-50, 70_000), (333, 333 + 40_000), (n - 5, n + 9), (n + 3, n + 9)]:
      row = np.zeros(hi - lo, np.int16)
      index.read_into(i, lo, hi, row)
      np.testing.assert_array_equal(row, window(pcm, lo, hi))


def test_records_across_block_headers(tmp_path):
  """Records of every size around riegeli's 64 KiB blocks and chunk padding read back exactly."""
  path = os.fspath(tmp_path / 'shard.array_record')
  rng = np.random.default_rng(0)
  sizes = [1, 2, 3, 32_750, 32_756, 32_768, 65_000, 100_000, 5, 7, 200_000]
  builder_records, payloads = [], []
  for n in sizes:
    pcm = rng.integers(-32768, 32767, n, dtype=np.int16)
    payloads.append(pcm)
    builder_records.append(_example(pcm, label=n % 7))
  writer = array_record_module.ArrayRecordWriter(path, ranges.RECORD_OPTIONS)
  for data in builder_records:
    writer.write(data)
  writer.close()
  index = ranges.index_split([path], [len(sizes)])
  for i, pcm in enumerate(payloads):
    assert index.num_samples[i] == len(pcm) and index.label[i] == len(pcm) % 7
    row = np.zeros(len(pcm) + 4, np.int16)
    index.read_into(i, -2, len(pcm) + 2, row)
    np.testing.assert_array_equal(row[2:-2], pcm)


def _example(pcm, label):
  """A record serialised as the builders serialise theirs (tests/datasets/tiny_builder.py's
  features), with `pcm` as its audio."""
  from tensorflow_datasets.core import example_serializer  # pylint: disable=g-import-not-at-top
  from fmacomp.datasets import base  # pylint: disable=g-import-not-at-top
  features = base.features(list(map(str, range(7))))
  serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
  example = features.encode_example({
      'audio': pcm, 'track_id': 't', 'offset_s': 0.0, 'label': label, 'artist_id': -1,
      'duration_s': 1.0, 'num_samples': len(pcm)})
  return serializer.get_tf_example(example).SerializeToString(deterministic=True)


def test_a_compressed_shard_is_not_indexed(builder, tmp_path):
  """Builds written before range reads (TFDS's zstd shards): the pipeline reads whole records."""
  info = builder.info.splits['train']
  paths = []
  for path in info.filepaths:
    reader = array_record_module.ArrayRecordReader(os.fspath(path))
    records = reader.read_all()
    reader.close()
    paths.append(os.fspath(tmp_path / os.path.basename(os.fspath(path))))
    writer = array_record_module.ArrayRecordWriter(paths[-1], 'group_size:1')  # zstd, as TFDS
    for data in records:
      writer.write(data)
    writer.close()
  assert ranges.index_split(paths, info.shard_lengths) is None


def _take(builder, n, **kwargs):
  kwargs = dict(dict(crop_s=0.5, sample_rate=8000, global_batch_size=4, seed=0,
                     process_index=0, process_count=1), **kwargs)
  iterator = iter(pipeline.train_loader(builder, **kwargs))
  return [next(iterator) for _ in range(n)]


def test_whole_record_reads_give_the_same_batches_as_range_reads(builder, monkeypatch):
  records = pipeline._records(builder, 'train')  # pylint: disable=protected-access
  assert isinstance(records, ranges.AudioRanges)
  fast = _take(builder, 5, sample_rate=22050)
  whole = pipeline._WholeRecords(builder, 'train')  # pylint: disable=protected-access
  monkeypatch.setattr(pipeline, '_records', lambda *_: whole)
  slow = _take(builder, 5, sample_rate=22050)
  for a, b in zip(fast, slow):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
