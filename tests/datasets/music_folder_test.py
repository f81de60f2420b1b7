"""music_folder: labels from sub-folders, splits (splits.json or hashed path), chunking, config."""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from fmacomp import datasets
from fmacomp.datasets import base
from fmacomp.datasets import music_folder
from fmacomp import errors

RATE = 8000  # tiny storage rate: the builds below take well under a second
REALMUSIC = [pathlib.Path('/work/shared/realmusic'),
             pathlib.Path(__file__).resolve().parents[2].parent / 'shared' / 'realmusic']


def write_tone(path, seconds, rate=RATE, seed=0):
  """A real WAV file: a random-pitch tone plus a little noise, `seconds` long."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  t = np.arange(int(round(seconds * rate))) / rate
  x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + 0.01 * rng.standard_normal(t.size)
  sf.write(path, x.astype(np.float32), rate)
  return path


def build(folder, data_dir, min_duration_s=1.0):
  """Prepares `folder` at RATE and returns the builder."""
  config = music_folder.config_for_folder(folder, storage_rate=RATE, min_duration_s=min_duration_s)
  builder = music_folder.MusicFolder(config=config, data_dir=data_dir, file_format='array_record')
  builder.download_and_prepare(file_format='array_record')
  return builder


def records(builder):
  """{split: [record, ...]} with text fields decoded and labels as names."""
  names = builder.info.features['label'].names
  out = {}
  for split, source in builder.as_data_source().items():
    out[split] = [dict(r, track_id=r['track_id'].decode(), label=names[int(r['label'])])
                  for r in source.__getitems__(range(len(source)))]
  return out


def write_splits(folder, listing):
  (pathlib.Path(folder) / music_folder.SPLITS_FILE).write_text(json.dumps(listing))


def test_labels_from_first_level_subfolders(tmp_path):
  music = tmp_path / 'music'
  write_tone(music / 'rock' / 'a.wav', 2, seed=1)
  write_tone(music / 'rock' / 'live' / 'b.wav', 2, seed=2)  # deeper: still 'rock'
  write_tone(music / 'jazz' / 'c.flac', 2, seed=3)
  write_tone(music / 'top.wav', 2, seed=4)
  write_splits(music, {'train': ['rock/a.wav', 'rock/live/b.wav', 'jazz/c.flac', 'top.wav']})
  builder = build(music, tmp_path / 'data')
  assert builder.info.features['label'].names == ['Unknown', 'jazz', 'rock']
  got = {r['track_id']: r['label'] for r in records(builder)['train']}
  assert got == {'rock/a.wav': 'rock', 'rock/live/b.wav': 'rock', 'jazz/c.flac': 'jazz',
                 'top.wav': 'Unknown'}


def test_no_subfolders_means_one_unknown_label():
  assert set(music_folder.labels_of(['a.wav', 'b.ogg']).values()) == {'Unknown'}
  assert music_folder.labels_of(['x/a.wav', 'b.ogg']) == {'x/a.wav': 'x', 'b.ogg': 'Unknown'}


def test_split_from_splits_json_and_skips(tmp_path):
  music = tmp_path / 'music'
  for i, rel in enumerate(['a/1.wav', 'a/2.wav', 'b/3.wav', 'b/4.wav', 'extra.wav']):
    write_tone(music / rel, 2, seed=i)
  (music / 'b' / 'broken.wav').write_bytes(b'RIFF not really a wav file')
  (music / 'notes.txt').write_text('not audio, not listed, not skipped')
  write_splits(music, {'train': ['a/1.wav', './b/3.wav'], 'validation': ['a/2.wav'],
                       'test': ['b/4.wav', 'b/broken.wav', 'b/missing.wav']})
  builder = build(music, tmp_path / 'data')
  got = {split: sorted(r['track_id'] for r in recs) for split, recs in records(builder).items()}
  assert got == {'train': ['a/1.wav', 'b/3.wav'], 'validation': ['a/2.wav'], 'test': ['b/4.wav']}
  skipped = {s['track_id']: s['reason'] for s in base.read_skipped(builder.data_dir)}
  assert set(skipped) == {'extra.wav', 'b/broken.wav', 'b/missing.wav'}
  assert 'not listed in splits.json' in skipped['extra.wav']
  assert 'no such file' in skipped['b/missing.wav']


def test_hash_split_is_stable_and_about_80_10_10(tmp_path):
  paths = [f'artist{i % 37}/track{i}.mp3' for i in range(3000)]
  splits = [music_folder.hash_split(p) for p in paths]
  fractions = {s: splits.count(s) / len(paths) for s in ('train', 'validation', 'test')}
  assert abs(fractions['train'] - 0.8) < 0.03
  assert abs(fractions['validation'] - 0.1) < 0.02
  assert abs(fractions['test'] - 0.1) < 0.02
  # Pinned: a changed hash would silently move files between train and test of old builds.
  pinned = {i: music_folder.hash_split(f'x/{i}.wav') for i in range(20, 36)}
  assert pinned == {**{i: 'train' for i in range(20, 36)},
                    22: 'validation', 23: 'test', 29: 'test', 34: 'validation', 35: 'validation'}
  # Not Python's salted hash(): another interpreter with another hash seed agrees.
  code = ('from fmacomp.datasets import music_folder as m; '
          'print(",".join(m.hash_split(f"artist{i % 37}/track{i}.mp3") for i in range(200)))')
  other = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         timeout=120, env=dict(os.environ, PYTHONHASHSEED='12345'))
  assert other.stdout.strip().split(',') == splits[:200]


def test_hashed_build_matches_hash_split(tmp_path):
  music = tmp_path / 'music'
  rels = [f'g{i % 2}/t{i}.wav' for i in range(12)]
  for i, rel in enumerate(rels):
    write_tone(music / rel, 1.5, seed=i)
  expected = {rel: music_folder.hash_split(rel) for rel in rels}
  builder = build(music, tmp_path / 'data')
  got = {r['track_id']: split for split, recs in records(builder).items() for r in recs}
  assert got == expected
  assert set(builder.info.splits) == set(expected.values())  # empty splits are left out


def test_long_track_is_chunked_into_30s_records(tmp_path):
  music = tmp_path / 'music'
  write_tone(music / 'long.wav', 65, seed=5)
  write_tone(music / 'edge.wav', 60.5, seed=6)  # the trailing 0.5 s is shorter than 1 s: dropped
  write_splits(music, {'train': ['long.wav', 'edge.wav']})
  builder = build(music, tmp_path / 'data')
  by_track = {}
  for r in records(builder)['train']:
    by_track.setdefault(r['track_id'], []).append(r)
  long = sorted(by_track['long.wav'], key=lambda r: r['offset_s'])
  assert [float(r['offset_s']) for r in long] == [0.0, 30.0, 60.0]
  assert [len(r['audio']) for r in long] == [30 * RATE, 30 * RATE, 5 * RATE]
  assert all(r['audio'].dtype == np.int16 for r in long)
  assert all(float(r['duration_s']) == pytest.approx(65.0) for r in long)
  assert all(int(r['artist_id']) == -1 for r in long)
  # The records put back together are the file (int16 round trip at the same rate).
  stored = np.concatenate([r['audio'] for r in long]) / base.INT16_SCALE
  source, _ = sf.read(music / 'long.wav', dtype='float32')
  np.testing.assert_allclose(stored, source, atol=2 / base.INT16_SCALE)
  edge = sorted(by_track['edge.wav'], key=lambda r: r['offset_s'])
  assert [float(r['offset_s']) for r in edge] == [0.0, 30.0]


def test_config_name_is_unique_per_folder_and_rate(tmp_path):
  a, b = tmp_path / 'a' / 'music', tmp_path / 'b' / 'music'
  name_a = music_folder.config_for_folder(a).name
  assert name_a != music_folder.config_for_folder(b).name  # same basename, other folder
  assert name_a.startswith('music_')
  assert music_folder.config_for_folder(f'{a}/../music/').name == name_a  # same folder
  assert music_folder.config_for_folder(a, storage_rate=16000).name == name_a + '_16k'
  assert music_folder.config_for_folder(a).folder == str(a)
  path_hash = hashlib.sha1(str(a).encode()).hexdigest()[:8]
  content = music_folder.content_hash(a)  # a missing folder: no files, no splits.json
  assert name_a == f'music_{path_hash}_{content[:8]}'


# --- Content hash: a changed folder is a new build, a copied one is the same content ----------

def _small_folder(music, seconds=1.5):
  for i, rel in enumerate(['a/1.wav', 'a/2.wav', 'b/3.wav']):
    write_tone(music / rel, seconds, seed=i)
  write_splits(music, {'train': ['a/1.wav', 'b/3.wav'], 'validation': ['a/2.wav']})
  return music


def _track_counts(builder):
  return {split: len({r['track_id'] for r in recs}) for split, recs in records(builder).items()}


def test_content_hash_ignores_mtimes_and_location_but_not_names_sizes_or_splits(tmp_path):
  music = _small_folder(tmp_path / 'music')
  digest = music_folder.content_hash(music)
  copy = tmp_path / 'elsewhere' / 'music'
  shutil.copytree(music, copy)  # copytree keeps mtimes: move them on, as a plain `cp -r` would
  for path in copy.rglob('*'):
    os.utime(path, (1e9, 1e9))
  assert music_folder.content_hash(copy) == digest
  name, copied = (music_folder.config_for_folder(f).name for f in (music, copy))
  assert name != copied and name.split('_')[-1] == copied.split('_')[-1] == digest[:8]

  (copy / 'a' / '2.wav').rename(copy / 'a' / '2b.wav')  # a renamed file
  renamed = music_folder.content_hash(copy)
  with open(copy / 'b' / '3.wav', 'ab') as f:  # a file that grew
    f.write(b'\0\0')
  grown = music_folder.content_hash(copy)
  write_splits(music, {'train': ['a/1.wav'], 'validation': ['a/2.wav', 'b/3.wav']})
  assert len({digest, renamed, grown, music_folder.content_hash(music)}) == 4


def test_a_changed_folder_is_prepared_again_and_the_old_build_is_left_alone(tmp_path):
  # Through `datasets.prepare`, as train.py and prepare.py use it (min_duration_s is 5 s there).
  music, data = _small_folder(tmp_path / 'music', seconds=5.5), tmp_path / 'data'
  first = datasets.prepare('music_folder/16k', data_dir=str(data), manual_dir=str(music))
  assert _track_counts(first) == {'train': 2, 'validation': 1}
  assert datasets.prepare('music_folder/16k', data_dir=str(data),
                          manual_dir=str(music)).data_dir == first.data_dir  # reused

  write_tone(music / 'b' / '4.wav', 5.5, seed=4)  # a new recording, listed for training
  write_splits(music, {'train': ['a/1.wav', 'b/3.wav', 'b/4.wav'], 'validation': ['a/2.wav']})
  grown = datasets.prepare('music_folder/16k', data_dir=str(data), manual_dir=str(music))
  assert grown.data_dir != first.data_dir
  assert _track_counts(grown) == {'train': 3, 'validation': 1}

  write_splits(music, {'train': ['a/1.wav', 'b/3.wav'], 'validation': ['a/2.wav', 'b/4.wav']})
  moved = datasets.prepare('music_folder/16k', data_dir=str(data), manual_dir=str(music))
  assert len({first.data_dir, grown.data_dir, moved.data_dir}) == 3
  assert _track_counts(moved) == {'train': 2, 'validation': 2}
  assert _track_counts(first) == {'train': 2, 'validation': 1}  # the old build is untouched


def test_a_folder_that_changes_during_its_build_is_an_input_error(tmp_path):
  music = _small_folder(tmp_path / 'music')
  config = music_folder.config_for_folder(music, storage_rate=RATE, min_duration_s=1.0)
  write_tone(music / 'late.wav', 1.5)
  builder = music_folder.MusicFolder(config=config, data_dir=tmp_path / 'data',
                                     file_format='array_record')
  with pytest.raises(errors.InputError, match='changed while it was being built') as e:
    builder.download_and_prepare(file_format='array_record')
  assert e.value.path == str(music)
  assert not builder.is_prepared()


def test_data_identity_lists_the_stored_files_and_the_hashes(tmp_path):
  music = _small_folder(tmp_path / 'music')
  (music / 'b' / 'broken.wav').write_bytes(b'RIFF not really a wav file')
  write_splits(music, {'train': ['a/1.wav', 'b/3.wav', 'b/broken.wav'],
                       'validation': ['a/2.wav']})
  builder = build(music, tmp_path / 'data')
  identity = builder.data_identity()
  splits_bytes = (music / 'splits.json').read_bytes()
  assert identity == {
      'dataset': 'music_folder',
      'config': builder.builder_config.name,
      'version': '1.1.0',
      'data_dir': os.path.abspath(builder.data_dir),
      'storage_rate': RATE,
      'examples': {'train': 2, 'validation': 1},
      'folder': str(music),
      'content_sha256': music_folder.content_hash(music),
      'splits_sha256': hashlib.sha256(splits_bytes).hexdigest(),
      'files': {'train': ['a/1.wav', 'b/3.wav'], 'validation': ['a/2.wav']},  # broken: skipped
  }
  json.dumps(identity)  # a launch record carries it as it is


def test_from_name_builds_the_folder_config(tmp_path):
  write_tone(tmp_path / 'music' / 'x.wav', 1)
  builder = music_folder.MusicFolder.from_name('music_folder/16k', tmp_path / 'data',
                                               str(tmp_path / 'music'))
  config = builder.builder_config
  assert isinstance(config, music_folder.MusicFolderConfig)
  assert (config.folder, config.storage_rate) == (str(tmp_path / 'music'), 16000)
  assert config.name == music_folder.config_for_folder(tmp_path / 'music', 16000).name


@pytest.mark.parametrize('setup, manual_dir, expected_path', [
    (None, None, '--manual_dir'),
    (None, 'missing', 'missing'),
    ('text_only', 'music', 'music'),
])
def test_from_name_errors_name_the_folder(tmp_path, setup, manual_dir, expected_path):
  if setup == 'text_only':
    (tmp_path / 'music').mkdir()
    (tmp_path / 'music' / 'readme.txt').write_text('no audio here')
  folder = str(tmp_path / manual_dir) if manual_dir else None
  with pytest.raises(errors.InputError) as e:
    music_folder.MusicFolder.from_name('music_folder', tmp_path / 'data', folder)
  assert e.value.path.endswith(expected_path)
  assert e.value.exit_code == 2


def test_split_with_only_undecodable_files_is_an_input_error(tmp_path):
  music = tmp_path / 'music'
  write_tone(music / 'ok.wav', 2)
  (music / 'bad.wav').write_bytes(b'garbage')
  write_splits(music, {'train': ['ok.wav'], 'test': ['bad.wav']})
  with pytest.raises(errors.InputError) as e:
    build(music, tmp_path / 'data')
  assert e.value.path == str(music)


@pytest.mark.parametrize('listing, reason', [
    ({'train': ['a.wav'], 'dev': ['b.wav']}, "unknown split 'dev'"),
    ({'train': ['a.wav'], 'test': ['./a.wav']}, 'listed in'),
    ({'train': ['../outside.wav']}, 'not a path inside'),
    ({'train': 'a.wav'}, 'must be a list'),
    (['a.wav'], 'expected {'),
])
def test_malformed_splits_json(tmp_path, listing, reason):
  path = tmp_path / 'splits.json'
  path.write_text(json.dumps(listing))
  with pytest.raises(errors.InputError, match=reason) as e:
    music_folder.read_splits_file(path)
  assert e.value.path == str(path)


def test_realmusic_splits_json_parses():
  folder = next((p for p in REALMUSIC if (p / 'splits.json').exists()), None)
  if folder is None:
    pytest.skip('shared realmusic folder absent (/work/shared/realmusic or ../shared/realmusic)')
  assigned = music_folder.read_splits_file(folder / 'splits.json')
  found = music_folder.find_audio(folder)
  assert set(assigned) <= set(found)  # nothing listed that is absent
  counts = {s: list(assigned.values()).count(s) for s in music_folder.SPLIT_NAMES}
  assert all(counts.values())  # train, validation and test all named
  labels = music_folder.labels_of(assigned)
  assert 'Unknown' not in labels.values()  # every file sits in a sub-folder
  assert labels['gcompris-qt-data/africa.ogg'] == 'gcompris-qt-data'
