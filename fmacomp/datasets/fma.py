"""`fma`: the Free Music Archive clips (Defferrard et al., 2017) from a manual download.

  python launch/prepare.py --dataset=fma/small --manual_dir=~/fma
  python launch/prepare.py --dataset=fma/full --manual_dir=~/fma --workers=64
  tfds build --imports=fmacomp.datasets.fma fma/small_22k --manual_dir=~/fma \
      --file_format=array_record

(The class registers as `fma` on import. tfds 4.9's `tfds` executable imports TensorFlow at
start-up; without it, run its build command, `build.Args` of tensorflow_datasets.scripts.cli,
with the same arguments: see fma_test.py's `test_tfds_build_command`.)

`manual_dir` holds the metadata, `fma_metadata.zip` or its extracted `fma_metadata/tracks.csv`
(a bare `tracks.csv` also works), and the audio, `fma_<size>.zip` or its extracted
`fma_<size>/NNN/NNNNNN.mp3` folder. A larger archive serves a smaller subset (fma_large holds
every clip), and zips are read in place, one member at a time. The `full` configs read
`fma_full.zip` or `fma_full/` (same layout) and nothing else.

Configs: `small`, `medium`, `large` with the official split, and `<size>_random70` with the
reference project's random split; each also at 22.05 and 16 kHz (`small_22k`, `small_random70_16k`).
`full` and `full_random70` (and their rate variants) hold every track of the large subset, its
untrimmed audio from fma_full (29.6 M s in all, ~280 s a track on average), cut into records of
at most 30 s like any long track; their shards are planned from tracks.csv's `('track',
'duration')`.

- Subset membership is `('set', 'subset') <= size` on the ordered categorical small < medium <
  large (FMA's own `utils.load`), so `medium` holds the small and the medium clips. As strings
  the comparison is wrong ('large' < 'medium'), hence `SUBSETS`.
- Labels are the sorted distinct `('track', 'genre_top')` values of the subset; tracks without
  one are labelled `Unknown` (a label only when such tracks exist; classifiers skip it).
- `split_mode='official'`: FMA's artist-filtered `('set', 'split')`, training / validation /
  test -> train / validation / test (6,400 / 800 / 800 for small).
  `split_mode='random70'`: the reference's 70 / 30 split by track, ignoring artists, from a
  fixed seed (`split_seed`); validation is 10 % of the 70 (63 / 7 / 30 % of the tracks).
- Clips that do not decode or are shorter than `min_duration_s` (FMA small has six) and tracks
  with no audio file are skipped and listed in skipped.json; the build goes on.

`tracks.csv` is read with the csv module: two header rows (top level, sub-key), a third row
`track_id,,,...`, then one row per track, first column the track id.
"""

import contextlib
import csv
import dataclasses
import functools
import io
import os
import shutil
import tempfile
import typing
import zipfile

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from fmacomp import audio
from fmacomp.datasets import base
from fmacomp import errors

# Ordered: each subset contains the ones before it.
SUBSETS = ('small', 'medium', 'large')
SPLIT_MODES = ('official', 'random70')
# ('set', 'split') value -> TFDS split.
OFFICIAL_SPLITS = {'training': 'train', 'validation': 'validation', 'test': 'test'}
UNKNOWN = 'Unknown'
MISSING_AUDIO = 'missing audio file'
# Every FMA clip is about 30 s (the estimate that plans shards).
CLIP_S = 30.0
# What the `full` configs read, and the subset whose tracks they hold.
FULL = 'full'
# The mean full-length track (29.6 M s / 106,574 tracks): the estimate of a track whose
# tracks.csv row has no duration.
FULL_TRACK_S = 280.0
# One line: launchers print it as the reason of a missing or malformed manual_dir.
MANUAL_DOWNLOAD_INSTRUCTIONS = (
    'manual_dir must hold fma_metadata.zip (or fma_metadata/tracks.csv) and fma_<size>.zip (or '
    'its extracted folder fma_<size>/NNN/NNNNNN.mp3), size small, medium or large (full for '
    'the fma/full configs), from https://github.com/mdeff/fma')
# Field -> tracks.csv column (top level, sub-key).
_COLUMNS = {
    'subset': ('set', 'subset'),
    'split': ('set', 'split'),
    'genre': ('track', 'genre_top'),
    'artist_id': ('artist', 'id'),
}
# Read when present (a tracks.csv without it still builds): the full-length track's seconds.
_DURATION = ('track', 'duration')


class Row(typing.NamedTuple):
  """What the builder needs from one row of tracks.csv."""
  track_id: int
  subset: str
  split: str
  genre: str  # '' when the track has no top genre
  artist_id: int  # -1 when unknown
  duration: float = 0.0  # seconds of the full-length track; 0 when unknown


@dataclasses.dataclass
class FmaConfig(base.AudioBuilderConfig):
  """An FMA subset at a storage rate.

  Attributes:
    subset: 'small', 'medium' or 'large'.
    split_mode: 'official' (FMA's artist-filtered split) or 'random70' (the reference's).
    split_seed: seed of the random70 split.
    full: read the untrimmed tracks of fma_full instead of the 30-s clips of fma_<subset>.
  """
  subset: str = 'small'
  split_mode: str = 'official'
  split_seed: int = 0
  full: bool = False


def _configs():
  configs = []
  for subset in SUBSETS:
    for suffix, mode in (('', 'official'), ('_random70', 'random70')):
      for name, kwargs in base.rate_variants(subset + suffix, subset=subset, split_mode=mode):
        description = f'FMA {subset}, {kwargs["storage_rate"]} Hz, {mode} split.'
        configs.append(FmaConfig(name=name, description=description, **kwargs))
  for suffix, mode in (('', 'official'), ('_random70', 'random70')):
    for name, kwargs in base.rate_variants(FULL + suffix, subset='large', split_mode=mode,
                                           full=True):
      description = (f'FMA full: every large-subset track, untrimmed, {kwargs["storage_rate"]} '
                     f'Hz, {mode} split.')
      configs.append(FmaConfig(name=name, description=description, **kwargs))
  return configs


def _malformed(path, what):
  return errors.InputError(path, f'malformed tracks.csv ({what}); {MANUAL_DOWNLOAD_INSTRUCTIONS}')


def parse_tracks(lines, path):
  """Parses FMA's tracks.csv.

  Args:
    lines: the file's text, an iterable of lines opened with newline='' (fields span lines).
    path: the file, for error messages.

  Returns:
    A list of `Row`, in file order.

  Raises:
    errors.InputError: not FMA's two-row header, not text, or a row that does not parse.
  """
  reader = csv.reader(lines)
  try:
    return _parse_rows(reader, path)
  except (UnicodeDecodeError, csv.Error, zipfile.BadZipFile) as e:
    raise _malformed(path, f'line {reader.line_num}: {e}') from e


def _parse_rows(reader, path):
  top, sub = next(reader, None), next(reader, None)
  if top is None or sub is None:
    raise _malformed(path, 'fewer than two header rows')
  columns = {key: i for i, key in enumerate(zip(top, sub))}
  for key in _COLUMNS.values():
    if key not in columns:
      raise _malformed(path, f'no column {key}')
  index = {field: columns[key] for field, key in _COLUMNS.items()}
  duration_at = columns.get(_DURATION)
  rows = []
  for cells in reader:
    if not cells or cells[0] == 'track_id':  # the index-name row under the header
      continue
    try:
      artist = cells[index['artist_id']]
      rows.append(Row(track_id=int(cells[0]), subset=cells[index['subset']],
                      split=cells[index['split']], genre=cells[index['genre']],
                      artist_id=int(artist) if artist else -1,
                      duration=_seconds(cells[duration_at]) if duration_at is not None else 0.0))
    except (ValueError, IndexError):
      raise _malformed(path, f'bad row at line {reader.line_num}') from None
  return rows


def _seconds(text):
  """A duration cell as seconds; 0 when empty or not a number (it only plans shards)."""
  try:
    value = float(text)
  except ValueError:
    return 0.0
  return value if 0.0 < value < float('inf') else 0.0  # nan, inf and negatives: unknown


def in_subset(row_subset, subset):
  """`row_subset <= subset` on the ordered categorical small < medium < large."""
  return row_subset in SUBSETS and SUBSETS.index(row_subset) <= SUBSETS.index(subset)


def label_names(rows):
  """The sorted distinct top genres of `rows`, with `Unknown` when some track has none."""
  return sorted({row.genre or UNKNOWN for row in rows})


def official_split(rows):
  """FMA's ('set', 'split'): ({'train', 'validation', 'test'} -> rows, rows of other values).

  A value other than training / validation / test (a later FMA release, an edited csv) leaves
  its track out of the build, listed in skipped.json, rather than stopping the build.
  """
  splits = {name: [] for name in OFFICIAL_SPLITS.values()}
  unknown = []
  for row in rows:
    if row.split in OFFICIAL_SPLITS:
      splits[OFFICIAL_SPLITS[row.split]].append(row)
    else:
      unknown.append(row)
  return splits, unknown


def random70_split(rows, seed=0):
  """The reference's random split by track: 70 % train + validation (10 % of it), 30 % test.

  Deterministic for a seed: the permutation is drawn over the rows sorted by track id, and each
  split is returned sorted by track id.
  """
  rows = sorted(rows, key=lambda r: r.track_id)
  order = np.random.default_rng(seed).permutation(len(rows))
  shuffled = [rows[i] for i in order]
  n_pool = int(round(0.7 * len(rows)))
  n_validation = int(round(0.1 * n_pool))
  parts = {'validation': shuffled[:n_validation], 'train': shuffled[n_validation:n_pool],
           'test': shuffled[n_pool:]}
  return {name: sorted(part, key=lambda r: r.track_id) for name, part in parts.items()}


@contextlib.contextmanager
def open_tracks_csv(manual_dir):
  """Yields (path, text lines) of tracks.csv, streamed from fma_metadata.zip if need be."""
  for path in (os.path.join(manual_dir, 'fma_metadata', 'tracks.csv'),
               os.path.join(manual_dir, 'tracks.csv')):
    if os.path.isfile(path):
      with open(path, newline='', encoding='utf-8') as f:
        yield path, f
      return
  zip_path = os.path.join(manual_dir, 'fma_metadata.zip')
  if not os.path.isfile(zip_path):
    raise errors.InputError(manual_dir, f'no tracks.csv; {MANUAL_DOWNLOAD_INSTRUCTIONS}')
  with _open_zip(zip_path) as z:
    members = [n for n in z.namelist() if n.rsplit('/', 1)[-1] == 'tracks.csv']
    if not members:
      raise errors.InputError(zip_path, f'no tracks.csv inside; {MANUAL_DOWNLOAD_INSTRUCTIONS}')
    member = min(members, key=len)  # fma_metadata/tracks.csv, not a copy deeper down
    with z.open(member) as raw:
      yield os.path.join(zip_path, member), io.TextIOWrapper(raw, 'utf-8', newline='')


def _open_zip(path):
  try:
    return zipfile.ZipFile(path)  # reads only the central directory
  except (zipfile.BadZipFile, OSError) as e:
    raise errors.InputError(path, f'not a readable zip ({e}); {MANUAL_DOWNLOAD_INSTRUCTIONS}')


class AudioSource:
  """The clips of one archive: an extracted `fma_<size>/` folder, or `fma_<size>.zip` in place."""

  def __init__(self, path):
    self.path = path
    self._zip = None
    self._members = {}  # track id -> zip member
    if os.path.isfile(path):
      self._zip = _open_zip(path)
      for name in self._zip.namelist():
        stem, ext = os.path.splitext(name.rsplit('/', 1)[-1])
        if ext == '.mp3' and stem.isdigit():
          self._members[int(stem)] = name

  @classmethod
  def find(cls, manual_dir, subset):
    """The archive of `subset`, else of a larger subset (which holds it too); `FULL`: fma_full
    only (its tracks are not the clips)."""
    sizes = [FULL] if subset == FULL else SUBSETS[SUBSETS.index(subset):]
    for size in sizes:
      for path in (os.path.join(manual_dir, f'fma_{size}'),
                   os.path.join(manual_dir, f'fma_{size}.zip')):
        if os.path.exists(path):
          return cls(path)
    raise errors.InputError(manual_dir, f'no fma_{subset}.zip or fma_{subset}/ folder; '
                            f'{MANUAL_DOWNLOAD_INSTRUCTIONS}')

  def locate(self, track_id):
    """Returns (path, zip member or None, exists) of a track's clip."""
    if self._zip is not None:
      member = self._members.get(track_id)
      name = member or os.path.splitext(os.path.basename(self.path))[0] + '/' + _relpath(track_id)
      return os.path.join(self.path, name), member, member is not None
    path = os.path.join(self.path, _relpath(track_id))
    return path, None, os.path.isfile(path)

  def close(self):
    if self._zip is not None:
      self._zip.close()


# Each process opens an archive once, on its first member (a ZipFile cannot be pickled to a
# worker, and reading the central directory of fma_large for every clip would be slow).
_open_archive = functools.lru_cache(maxsize=4)(_open_zip)


def _extract(archive, member, dest):
  """Streams a member of the zip `archive` to the open binary file `dest`."""
  with _open_archive(archive).open(member) as src:
    shutil.copyfileobj(src, dest)



def _relpath(track_id):
  """FMA's layout: NNN/NNNNNN.mp3, the first three digits of the zero-padded id."""
  name = f'{track_id:06d}'
  return f'{name[:3]}/{name}.mp3'


class Fma(base.AudioBuilder):
  """FMA small / medium / large from a manual download (see the module docstring)."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '1.1.0': 'Records carry num_samples; shards written by the builder; an '
                            "unknown ('set', 'split') value is skipped, not fatal; full "
                            'configs (untrimmed tracks of fma_full).'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = _configs()
  DEFAULT_CONFIG_NAME = 'small'
  DESCRIPTION = ('FMA: 30 s clips (full: untrimmed tracks) of Creative Commons music from the '
                 "Free Music Archive, with top-genre labels, stored as int16 mono at the config's "
                 'rate.')
  HOMEPAGE = 'https://github.com/mdeff/fma'
  CITATION = """@inproceedings{defferrard2017fma,
  title = {{FMA}: A Dataset for Music Analysis},
  author = {Defferrard, Micha\\"el and Benzi, Kirell and Vandergheynst, Pierre and Bresson, Xavier},
  booktitle = {18th International Society for Music Information Retrieval Conference (ISMIR)},
  year = {2017},
}"""

  _source = None

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    # TFDS's default resolves the package through `importlib_resources`, a backport that is not
    # installed on Python >= 3.9; the module's own file is what it looks for.
    return epath.Path(__file__)

  def _split_tracks(self, dl_manager):
    config = self.builder_config
    if config.subset not in SUBSETS or config.split_mode not in SPLIT_MODES:
      raise errors.InputError(config.name, f'subset must be one of {SUBSETS} and split_mode '
                              f'one of {SPLIT_MODES}')
    manual_dir = _manual_dir(dl_manager)
    with open_tracks_csv(manual_dir) as (csv_path, lines):
      rows = [r for r in parse_tracks(lines, csv_path) if in_subset(r.subset, config.subset)]
    if not rows:
      raise _malformed(csv_path, f'no track of subset {config.subset!r}')
    self.set_label_names(label_names(rows))
    unknown = []
    if config.split_mode == 'official':
      splits, unknown = official_split(rows)
    else:
      splits = random70_split(rows, config.split_seed)
    self._source = AudioSource.find(manual_dir, FULL if config.full else config.subset)
    for row in unknown:
      self._skip(self._track(row)[0], f"unknown ('set', 'split') value {row.split!r}")
    return {name: self._tracks(split_rows) for name, split_rows in splits.items() if split_rows}

  def _tracks(self, rows):
    """Rows -> base.Track, skipping (and logging) those without an audio file."""
    tracks = []
    for row in sorted(rows, key=lambda r: r.track_id):
      track, exists = self._track(row)
      if exists:
        tracks.append(track)
      else:
        self._skip(track, MISSING_AUDIO)
    return tracks

  def _track(self, row):
    """(base.Track of a row, whether its clip exists); a zip member's source is (zip, member)."""
    path, member, exists = self._source.locate(row.track_id)
    source = (self._source.path, member) if member else None
    estimate = (row.duration or FULL_TRACK_S) if self.builder_config.full else CLIP_S
    return base.Track(track_id=f'{row.track_id:06d}', label=row.genre or UNKNOWN,
                      artist_id=row.artist_id, path=path, source=source,
                      duration_s=estimate), exists

  def _blocks(self, track):
    if track.source is None:
      yield from super()._blocks(track)
      return
    # libsndfile reads files, not zip members: stream the member to a temporary file.
    archive, member = track.source
    with tempfile.NamedTemporaryFile(suffix='.mp3') as tmp:
      try:
        _extract(archive, member, tmp)
      except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise errors.AudioError(track.path, f'cannot read the zip member ({e})') from e
      tmp.flush()
      try:
        yield from audio.stream_blocks(tmp.name, block_s=base.BLOCK_S,
                                       sample_rate=self.builder_config.storage_rate)
      except errors.AudioError as e:
        raise errors.AudioError(track.path, e.reason.replace(tmp.name, track.path)) from e

  def _download_and_prepare(self, dl_manager, download_config=None):
    try:
      return super()._download_and_prepare(dl_manager, download_config)
    finally:
      if self._source is not None:
        self._source.close()
        self._source = None
      _open_archive.cache_clear()


def _manual_dir(dl_manager):
  """The manual_dir as a str, or an InputError naming the files expected."""
  try:
    return os.fspath(dl_manager.manual_dir)
  except AssertionError:  # TFDS's "does not exist or is empty"
    # pylint: disable-next=protected-access
    where = getattr(dl_manager, '_manual_dir', None) or 'manual_dir'
    raise errors.InputError(where, f'missing or empty; {MANUAL_DOWNLOAD_INSTRUCTIONS}') from None
