"""Tests of the `fma` builder on a fake FMA download (real MP3s, FMA's tracks.csv header)."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.datasets import fake_fma
from fmacomp import datasets
from fmacomp.datasets import base
from fmacomp.datasets import fma
from fmacomp import errors

MIN_S = 1.0  # the fake clips are 1.5-2.5 s; the 0.4 s one must be skipped
# form -> (zipped, storage rate): the folder at 44.1 kHz, the zips at 16 kHz.
FORMS = {'folder': (False, 44100), 'zip': (True, 16000)}
GOOD_IDS = {
    'train': {'000002', '000005', '000010', '000140', '000141', '001039'},
    'validation': {'010250', '010666'},
    'test': {'133274', '133275'},
}
BAD_IDS = {'098565', '098567', '098569', '099134', '108925'}
SMALL_LABELS = ['Electronic', 'Hip-Hop', 'Old-Time / Historic', 'Rock', 'Unknown']


def _build(root, zipped, rate, split_mode='official'):
  manual_dir = fake_fma.write_fake_fma(root, zipped=zipped)
  # A custom config: the registered ones keep FMA's min_duration_s of 5 s.
  config = fma.FmaConfig(name=f'test_{split_mode}_{rate}', subset='small', storage_rate=rate,
                         min_duration_s=MIN_S, split_mode=split_mode)
  builder = fma.Fma(config=config, data_dir=os.path.join(root, 'data'),
                    file_format='array_record')
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _records(builder):
  source = builder.as_data_source()
  return {split: [source[split][i] for i in range(len(source[split]))] for split in source}


@pytest.fixture(scope='module', params=sorted(FORMS))
def built(request, tmp_path_factory):
  zipped, rate = FORMS[request.param]
  builder = _build(tmp_path_factory.mktemp(request.param), zipped, rate)
  return request.param, builder, _records(builder)


def test_split_counts_and_track_ids(built):
  _, builder, records = built
  assert {s: builder.info.splits[s].num_examples for s in GOOD_IDS} == {
      'train': 6, 'validation': 2, 'test': 2}
  for split, ids in GOOD_IDS.items():
    assert {r['track_id'].decode() for r in records[split]} == ids


def test_labels_sorted_with_unknown(built):
  _, builder, records = built
  names = builder.info.features['label'].names
  assert names == SMALL_LABELS  # medium's Jazz / Pop are not in small
  genre = {t.name: t.genre or 'Unknown' for t in fake_fma.TRACKS}
  for split_records in records.values():
    for r in split_records:
      assert names[r['label']] == genre[r['track_id'].decode()]
  unknown = [r for r in records['train'] if r['track_id'] == b'001039']
  assert names[unknown[0]['label']] == 'Unknown'


def test_skipped_json_lists_exactly_the_bad_files(built):
  form, builder, _ = built
  with open(os.path.join(builder.data_dir, base.SKIPPED_FILE)) as f:
    skipped = {s['track_id']: s for s in json.load(f)}
  assert set(skipped) == BAD_IDS
  assert skipped['099134']['reason'] == fma.MISSING_AUDIO
  assert skipped['108925']['reason'].startswith('too short: 0.40 s')
  assert 'empty' in skipped['098565']['reason']
  for s in skipped.values():
    assert s['path'].endswith(f'/{s["track_id"][:3]}/{s["track_id"]}.mp3')
    assert ('fma_small.zip/fma_small/' in s['path']) == (form == 'zip')
    assert 'tmp' not in s['reason'].replace(s['path'], '')  # no temporary file names


def test_records_decoded_to_mono_at_the_storage_rate(built):
  form, builder, records = built
  rate = FORMS[form][1]
  assert builder.info.metadata['sample_rate'] == rate
  truth = {t.name: t for t in fake_fma.TRACKS}
  for split_records in records.values():
    for r in split_records:
      track = truth[r['track_id'].decode()]
      pcm = r['audio']  # [T] int16
      assert pcm.dtype == np.int16 and pcm.ndim == 1
      assert abs(len(pcm) - track.seconds * rate) <= 0.03 * rate
      assert r['duration_s'] == pytest.approx(len(pcm) / rate, abs=1e-4)
      assert r['offset_s'] == 0.0 and r['artist_id'] == track.artist_id
      if track.freq:  # a tone: same pitch, and the downmix is the channel mean
        x = base.from_int16(pcm)
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        peak_hz = np.argmax(spectrum) * rate / len(x)
        assert peak_hz == pytest.approx(track.freq, abs=2.0)
        amplitude = 0.3 * (0.75 if track.channels == 2 else 1.0)
        rms = np.sqrt(np.mean(x[len(x) // 10:-len(x) // 10] ** 2))
        assert rms == pytest.approx(amplitude / np.sqrt(2), rel=0.1)


def test_reloaded_build_keeps_labels(built):
  _, builder, _ = built
  again = fma.Fma(config=builder.builder_config, data_dir=builder.data_dir_root,
                  file_format='array_record')
  assert again.is_prepared()
  assert again.info.features['label'].names == SMALL_LABELS


def test_parse_tracks_reads_the_two_row_header(tmp_path):
  path = tmp_path / 'tracks.csv'
  fake_fma.write_tracks_csv(path)
  with open(path, newline='') as f:
    rows = fma.parse_tracks(f, path)
  assert len(rows) == len(fake_fma.TRACKS) == 21  # the `track_id,,,` row is not a track
  by_id = {r.track_id: r for r in rows}
  assert by_id[140] == fma.Row(140, 'small', 'training', 'Old-Time / Historic', 54, 2.0)
  assert by_id[1039].genre == '' and by_id[26].subset == 'medium'
  assert by_id[4].duration == 70.0  # the full-length track's, which plans fma/full's shards


def test_subset_membership_is_ordered_not_alphabetical(tmp_path):
  path = tmp_path / 'tracks.csv'
  fake_fma.write_tracks_csv(path)
  with open(path, newline='') as f:
    rows = fma.parse_tracks(f, path)
  members = {s: {r.track_id for r in rows if fma.in_subset(r.subset, s)} for s in fma.SUBSETS}
  for subset in fma.SUBSETS:
    assert members[subset] == {t.track_id for t in fake_fma.tracks(subset)}
  assert [len(members[s]) for s in fma.SUBSETS] == [15, 18, 21]
  assert members['small'] < members['medium'] < members['large']
  # As strings, 'large' <= 'medium' < 'small': medium would hold large but not small.
  as_strings = {r.track_id for r in rows if r.subset <= 'medium'}
  assert 4 in as_strings and 2 not in as_strings and 4 not in members['medium']
  medium = [r for r in rows if r.track_id in members['medium']]
  assert fma.label_names(medium) == sorted(SMALL_LABELS + ['Jazz', 'Pop'])
  small_labelled = [r for r in rows if r.track_id in members['small'] and r.genre]
  assert 'Unknown' not in fma.label_names(small_labelled)


def test_random70_split_properties():
  rows = [fma.Row(i, 'small', 'training', 'Rock', i % 7) for i in range(1000, 2000)]
  splits = fma.random70_split(rows, seed=0)
  ids = {name: [r.track_id for r in part] for name, part in splits.items()}
  assert {name: len(v) for name, v in ids.items()} == {
      'train': 630, 'validation': 70, 'test': 300}
  assert not set(ids['train']) & set(ids['validation'])
  assert not (set(ids['train']) | set(ids['validation'])) & set(ids['test'])
  assert sorted(sum(ids.values(), [])) == list(range(1000, 2000))
  # Deterministic for a seed, whatever the input order; another seed gives another split.
  assert fma.random70_split(rows[::-1], seed=0) == splits
  assert fma.random70_split(rows, seed=1)['test'] != splits['test']


def test_random70_build(tmp_path):
  builder = _build(tmp_path, zipped=False, rate=16000, split_mode='random70')
  ids = {s: {r['track_id'].decode() for r in recs} for s, recs in _records(builder).items()}
  assert set().union(*ids.values()) == set().union(*GOOD_IDS.values())
  assert sum(len(v) for v in ids.values()) == 10  # disjoint
  assert set(ids['test']) != GOOD_IDS['test']  # not the official split
  assert {s['track_id'] for s in base.read_skipped(builder.data_dir)} == BAD_IDS


def test_registered_configs():
  names = {c.name for c in fma.Fma.BUILDER_CONFIGS}
  assert len(names) == 24 and {'small', 'medium_22k', 'large_random70_16k', 'full',
                                'full_random70_16k'} <= names
  builder = datasets.get_builder('fma/small_random70_22k', data_dir='/nonexistent')
  config = builder.builder_config
  assert (config.subset, config.split_mode, config.storage_rate) == ('small', 'random70', 22050)
  assert config.min_duration_s == 5.0
  assert datasets.get_builder('fma', data_dir='/nonexistent').builder_config.name == 'small'
  full = datasets.get_builder('fma/full_22k', data_dir='/nonexistent').builder_config
  assert (full.subset, full.full, full.split_mode, full.max_record_s) == (
      'large', True, 'official', 30.0)
  assert not config.full


def test_full_reads_fma_full_only(tmp_path):
  # fma_large's 30-s clips are not the full-length tracks: a full config must not fall back.
  manual_dir = fake_fma.write_fake_fma(tmp_path)  # fma_small/ only
  config = fma.FmaConfig(name='full_test', subset='large', full=True, min_duration_s=MIN_S)
  builder = fma.Fma(config=config, data_dir=os.path.join(tmp_path, 'data'),
                    file_format='array_record')
  with pytest.raises(errors.InputError, match='no fma_full.zip or fma_full/'):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))


def _assert_instructions(error, path):
  assert error.exit_code == 2 and error.path == str(path)
  assert fma.MANUAL_DOWNLOAD_INSTRUCTIONS in error.reason and '\n' not in str(error)
  for expected in ('fma_metadata.zip', 'tracks.csv', 'fma_<size>.zip', 'NNNNNN.mp3'):
    assert expected in error.reason


@pytest.mark.parametrize('make', ['absent', 'empty', 'no_audio', 'no_metadata', 'bad_zip'])
def test_missing_manual_dir_files(tmp_path, make):
  manual_dir = tmp_path / 'fma'
  at_fault = manual_dir
  if make != 'absent':
    manual_dir.mkdir()
  if make == 'no_audio':
    fake_fma.write_tracks_csv(manual_dir / 'fma_metadata' / 'tracks.csv')
  if make == 'no_metadata':
    (manual_dir / 'fma_small' / '000').mkdir(parents=True)
  if make == 'bad_zip':
    at_fault = manual_dir / 'fma_metadata.zip'
    at_fault.write_text('<html>an interrupted download</html>')
  with pytest.raises(errors.InputError) as e:
    datasets.prepare('fma/small', data_dir=tmp_path / 'data', manual_dir=str(manual_dir))
  _assert_instructions(e.value, at_fault)
  if make == 'no_audio':
    assert 'fma_small' in e.value.reason
  assert not datasets.get_builder('fma/small', data_dir=tmp_path / 'data').is_prepared()


@pytest.mark.parametrize('content', [
    'track_id,subset,split,genre_top\n2,small,training,Hip-Hop\n',  # a one-row header
    ',set,set,track\n,split,subset,genre_top\ntrack_id,,,\n2,training,small,Hip-Hop\n',
    '',
    b'\x89PNG\r\n\x1a\n\x00\xff\xfe\x00',  # not text
    None,  # FMA's header, then a row whose track id is not a number
])
def test_malformed_tracks_csv(tmp_path, content):
  manual_dir = tmp_path / 'fma'
  path = manual_dir / 'fma_metadata' / 'tracks.csv'
  fake_fma.write_tracks_csv(path, fake_fma.tracks('small'))
  if content is None:
    with open(path, 'a') as f:
      f.write('x12' + ',' * len(fake_fma.COLUMNS) + '\n')
  elif isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content)
  (manual_dir / 'fma_small').mkdir()
  with pytest.raises(errors.InputError) as e:
    datasets.prepare('fma/small', data_dir=tmp_path / 'data', manual_dir=str(manual_dir))
  _assert_instructions(e.value, path)
  assert e.value.reason.startswith('malformed tracks.csv')


def test_tfds_build_command(tmp_path):
  # The `tfds` executable imports TensorFlow (tfds 4.9's convert_format); its build command
  # itself does not, so run that, with a JSON config for the short fake clips.
  from tensorflow_datasets.scripts.cli import build  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.scripts.cli import cli_utils  # pylint: disable=g-import-not-at-top
  manual_dir = fake_fma.write_fake_fma(tmp_path)
  config = json.dumps({'name': 'small_cli', 'subset': 'small', 'storage_rate': 16000,
                       'min_duration_s': MIN_S})
  argv = ['tfds', '--imports=fmacomp.datasets.fma', 'fma', f'--config={config}',
          f'--manual_dir={manual_dir}', f'--data_dir={tmp_path / "data"}',
          '--file_format=array_record']
  cli_utils.make_flags_parser(build.Args, 'tfds build')(argv).execute()
  data_dir = tmp_path / 'data' / 'fma' / 'small_cli' / str(fma.Fma.VERSION)
  assert {s['track_id'] for s in base.read_skipped(data_dir)} == BAD_IDS
  builder = tfds.builder_from_directory(str(data_dir))
  assert builder.info.splits['train'].num_examples == 6
  assert len(builder.as_data_source()['test']) == 2
