"""A fake FMA download: real MP3s, a tracks.csv with FMA's real header, folder or zip form.

  manual_dir = fake_fma.write_fake_fma(tmp_path)               # fma_metadata/, fma_small/
  manual_dir = fake_fma.write_fake_fma(tmp_path, zipped=True)  # fma_metadata.zip, fma_small.zip
  manual_dir = fake_fma.write_fake_fma(tmp_path, extra=fake_fma.more_tracks(24))  # a few dozen
  manual_dir = fake_fma.write_fake_fma(tmp_path, full=True)    # fma_full/: every large track

`TRACKS` is the ground truth the tests compare a build with: all three subsets and splits (only
the small clips have audio, as in fma_small), MP3s at 44.1 / 48 / 22.05 / 32 kHz, mono and
stereo, tones and noise of 1.5-2.5 s, one track without a top genre, and the bad ones a build
must skip: an empty file, a text file named .mp3, a truncated MP3, a 0.4 s clip and a track
with no file at all. Use `min_duration_s` around 1 s with it. The zips compress their members
with bzip2, as FMA's do.

The full layout (`fma_full/`, or `fma_full.zip`) has a file for every track of the large subset,
at its full length (`FakeTrack.full_seconds`): three of them are 40-70 s, so a build cuts them
into 30-s records.
"""

import csv
import dataclasses
import os
import shutil
import zipfile

import numpy as np
import soundfile as sf

# FMA's tracks.csv columns (mdeff/fma, `utils.load`): 52 columns under a two-row header.
COLUMNS = (
    [('album', c) for c in (
        'comments', 'date_created', 'date_released', 'engineer', 'favorites', 'id',
        'information', 'listens', 'producer', 'tags', 'title', 'tracks', 'type')] +
    [('artist', c) for c in (
        'active_year_begin', 'active_year_end', 'associated_labels', 'bio', 'comments',
        'date_created', 'favorites', 'id', 'latitude', 'location', 'longitude', 'members',
        'name', 'related_projects', 'tags', 'website', 'wikipedia_page')] +
    [('set', 'split'), ('set', 'subset')] +
    [('track', c) for c in (
        'bit_rate', 'comments', 'composer', 'date_created', 'date_recorded', 'duration',
        'favorites', 'genre_top', 'genres', 'genres_all', 'information', 'interest',
        'language_code', 'license', 'listens', 'lyricist', 'number', 'publisher', 'tags',
        'title')])

# Clips a build must skip, and what is wrong with them.
BAD_KINDS = ('empty', 'text', 'truncated', 'short', 'missing')


@dataclasses.dataclass(frozen=True)
class FakeTrack:
  """One row of the fake tracks.csv and, for small tracks, its clip.

  kind: 'ok', or one of BAD_KINDS. genre '' = no top genre (labelled Unknown).
  """
  track_id: int
  subset: str
  split: str  # FMA's value: training / validation / test
  genre: str
  artist_id: int
  kind: str = 'ok'
  rate: int = 44100
  channels: int = 1
  seconds: float = 2.0
  freq: float = 440.0  # 0 = noise
  full_seconds: float | None = None  # the full-length file's seconds (None: `seconds`)

  @property
  def name(self):
    return f'{self.track_id:06d}'

  @property
  def full(self):
    """The track as fma_full stores it."""
    return dataclasses.replace(self, seconds=self.full_seconds or self.seconds)


_S, _M, _L = 'small', 'medium', 'large'
TRACKS = (
    FakeTrack(2, _S, 'training', 'Hip-Hop', 1, rate=44100, channels=2, seconds=2.0, freq=440),
    FakeTrack(5, _S, 'training', 'Hip-Hop', 1, rate=48000, channels=1, seconds=1.5, freq=330),
    FakeTrack(10, _S, 'training', 'Rock', 6, rate=22050, channels=1, seconds=2.5, freq=550),
    FakeTrack(140, _S, 'training', 'Old-Time / Historic', 54, rate=32000, channels=2, freq=660),
    FakeTrack(141, _S, 'training', 'Electronic', 54, rate=44100, channels=1, freq=0),
    FakeTrack(1039, _S, 'training', '', 60, rate=48000, channels=2, freq=880),
    FakeTrack(98565, _S, 'training', 'Rock', 7, kind='empty'),
    FakeTrack(98567, _S, 'training', 'Electronic', 7, kind='text'),
    FakeTrack(10250, _S, 'validation', 'Rock', 12, rate=22050, channels=2, seconds=1.5, freq=495),
    FakeTrack(10666, _S, 'validation', 'Electronic', 13, rate=32000, channels=1, freq=0),
    FakeTrack(98569, _S, 'validation', 'Hip-Hop', 14, kind='truncated'),
    FakeTrack(133274, _S, 'test', 'Hip-Hop', 20, rate=44100, channels=1, freq=770),
    FakeTrack(133275, _S, 'test', 'Old-Time / Historic', 21, rate=48000, channels=2,
              seconds=1.5, freq=605),
    FakeTrack(99134, _S, 'test', 'Rock', 22, kind='missing'),
    FakeTrack(108925, _S, 'test', 'Electronic', 23, kind='short', seconds=0.4),
    # Metadata only (fma_small has no audio for them).
    FakeTrack(3, _M, 'training', 'Jazz', 2),
    FakeTrack(20, _M, 'validation', 'Pop', 3, rate=22050, full_seconds=45.0, freq=350),
    FakeTrack(26, _M, 'test', '', 4),
    FakeTrack(4, _L, 'training', 'Folk', 5, rate=22050, channels=2, full_seconds=70.0, freq=250),
    FakeTrack(30, _L, 'validation', 'Classical', 8),
    FakeTrack(46, _L, 'test', 'Experimental', 9, rate=32000, full_seconds=40.0, freq=0),
)


def more_tracks(n, unknown_split=True):
  """`n` more good small clips (ids from 200000, every split, rates and channels mixed), and
  with `unknown_split` one clip whose ('set', 'split') is a value FMA does not define."""
  rates = (44100, 48000, 22050, 32000)
  splits = ('training',) * 6 + ('validation', 'test')
  extra = [FakeTrack(200000 + i, _S, splits[i % len(splits)], ('Rock', 'Electronic', '')[i % 3],
                     100 + i % 5, rate=rates[i % 4], channels=1 + i % 2,
                     seconds=1.5 + 0.25 * (i % 5), freq=(0 if i % 4 == 3 else 300 + 20 * i))
           for i in range(n)]
  if unknown_split:
    extra.append(FakeTrack(299999, _S, 'holdout', 'Rock', 99, rate=44100))
  return extra


def tracks(subset='small', kinds=None):
  """The fake tracks of `subset` (FMA's nesting: medium holds small), optionally by kind."""
  sizes = ('small', 'medium', 'large')
  keep = sizes[:sizes.index(subset) + 1]
  return [t for t in TRACKS if t.subset in keep and (kinds is None or t.kind in kinds)]


def render(track):
  """The clip's samples as written: float [T] or [T, C] at `track.rate`."""
  t = np.arange(int(round(track.seconds * track.rate))) / track.rate
  if track.freq:
    x = 0.3 * np.sin(2 * np.pi * track.freq * t)
  else:
    x = 0.1 * np.random.default_rng(track.track_id).standard_normal(len(t))
  if track.channels == 2:
    x = np.stack([x, 0.5 * x], axis=1)  # [T, 2]
  return x


def _write_clip(track, path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if track.kind == 'empty':
    open(path, 'wb').close()
  elif track.kind == 'text':
    with open(path, 'w') as f:
      f.write('404 Not Found: this is not audio\n')
  else:
    sf.write(path, render(track), track.rate, format='MP3')
    if track.kind == 'truncated':
      with open(path, 'rb') as f:
        head = f.read(600)  # the first frame or so: libsndfile cannot open it
      with open(path, 'wb') as f:
        f.write(head)


def _row(track):
  """A full tracks.csv row with plausible values in every column."""
  values = {key: '' for key in COLUMNS}
  genres = '[]' if not track.genre else '[21]'
  values.update({
      ('album', 'id'): str(track.track_id // 3), ('album', 'title'): f'Album {track.track_id}',
      ('album', 'type'): 'Album', ('album', 'tracks'): '7', ('album', 'tags'): '[]',
      ('album', 'date_created'): '2008-11-26 01:44:45', ('album', 'listens'): '6073',
      ('artist', 'id'): str(track.artist_id), ('artist', 'name'): f'Artist {track.artist_id}',
      # Quoted commas and newlines, as in FMA's free-text fields.
      ('artist', 'bio'): '<p>Plays "music", mostly.\nSince 2006.</p>',
      ('artist', 'tags'): "['fake']", ('artist', 'latitude'): '40.058324',
      ('set', 'split'): track.split, ('set', 'subset'): track.subset,
      ('track', 'bit_rate'): '256000',
      ('track', 'duration'): str(int(track.full_seconds or track.seconds)),  # the full track's
      ('track', 'genre_top'): track.genre, ('track', 'genres'): genres,
      ('track', 'genres_all'): genres, ('track', 'interest'): '4656',
      ('track', 'language_code'): 'en', ('track', 'listens'): '1293', ('track', 'number'): '3',
      ('track', 'license'): 'Attribution-NonCommercial-ShareAlike 3.0 International',
      ('track', 'tags'): '[]', ('track', 'title'): f'Track {track.track_id}',
      ('track', 'date_created'): '2008-11-26 01:48:12',
  })
  return [str(track.track_id)] + [values[key] for key in COLUMNS]


def write_tracks_csv(path, rows=TRACKS):
  """Writes FMA's layout: top-level row, sub-key row, `track_id,,,...`, then the tracks."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow([''] + [top for top, _ in COLUMNS])
    writer.writerow([''] + [sub for _, sub in COLUMNS])
    writer.writerow(['track_id'] + [''] * len(COLUMNS))
    for track in rows:
      writer.writerow(_row(track))


def _zip_folder(folder, zip_path):
  """Zips `folder` as FMA does: members under the folder's own name."""
  parent = os.path.dirname(folder)
  with zipfile.ZipFile(zip_path, 'w', zipfile.ZIP_BZIP2) as z:
    for dirpath, _, files in sorted(os.walk(folder)):
      for name in sorted(files):
        path = os.path.join(dirpath, name)
        z.write(path, os.path.relpath(path, parent))


def write_fake_fma(root, zipped=False, extra=(), full=False):
  """Writes the fake download under `root`; returns the manual_dir.

  Args:
    root: an existing folder; the manual_dir is `root/fma`.
    zipped: write fma_metadata.zip and fma_small.zip (fma_full.zip) instead of the folders.
    extra: more small `FakeTrack`s (e.g. `more_tracks(n)`), in tracks.csv and with clips.
    full: write fma_full (every track of the large subset, at its full length) instead of
      fma_small.
  """
  manual_dir = os.path.join(os.fspath(root), 'fma')
  metadata = os.path.join(manual_dir, 'fma_metadata')
  audio = os.path.join(manual_dir, 'fma_full' if full else 'fma_small')
  write_tracks_csv(os.path.join(metadata, 'tracks.csv'), TRACKS + tuple(extra))
  with open(os.path.join(metadata, 'README.txt'), 'w') as f:
    f.write('Fake FMA metadata for tests.\n')
  for track in tracks('large' if full else 'small') + list(extra):
    if track.kind != 'missing':
      _write_clip(track.full if full else track,
                  os.path.join(audio, track.name[:3], track.name + '.mp3'))
  with open(os.path.join(audio, 'README.txt'), 'w') as f:
    f.write('Fake fma_full for tests.\n' if full else 'Fake fma_small for tests.\n')
  if zipped:
    for folder in (metadata, audio):
      _zip_folder(folder, folder + '.zip')
      shutil.rmtree(folder)
  return manual_dir
