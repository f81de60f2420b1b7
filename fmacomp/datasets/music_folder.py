"""`music_folder`: any folder tree of audio files, as a TFDS dataset.

  python launch/prepare.py --dataset=music_folder --manual_dir=../shared/realmusic
  python launch/prepare.py --dataset=music_folder/16k --manual_dir=~/music

The folder (`--manual_dir`) is walked for the files libsndfile reads (`AUDIO_EXTENSIONS`; hidden
files and folders are ignored). Every file is one track, `track_id` = its path relative to the
folder (`/`-separated), `artist_id` = -1.

Labels: the name of a file's first-level sub-folder. Files at the top level are labelled
`Unknown` when other files sit in sub-folders; a folder with no sub-folders at all has the single
label `Unknown`.

Splits: a `splits.json` in the folder, `{"train": [relpath, ...], "validation": [...], "test":
[...]}`, is authoritative: audio files it does not list are left out (and listed in skipped.json),
files it lists but that do not decode are skipped like any other. Without it, a file's split is
fixed by the sha1 of its relative path (80 / 10 / 10 % train / validation / test), so it is the
same on every machine and does not move when other files are added. A split with no tracks is
omitted (a handful of files may leave validation or test empty: write a splits.json).

The config is derived from the folder: its name is `<folder name>_<8 hex of sha1(real path)>_<8
hex of the content hash>` plus the storage-rate suffix (`_22k`, `_16k`), so two folders (or two
rates) never share a build, and a folder whose content changed gets a new build instead of
silently reusing the stale one. The content hash (`content_sha256`) covers splits.json's bytes and
every audio file's relative path and size; not modification times, which change whenever the
folder is copied, and not the audio bytes, which would mean reading the whole folder at every
start. Each build keeps `files.json` (the hash and the files stored per split), which a training
run records as the data it trained on (`data_identity()`).
Dataset names: `music_folder` (44.1 kHz), `music_folder/22k`, `music_folder/16k`.
"""

import dataclasses
import hashlib
import json
import os
import posixpath
import re

import tensorflow_datasets as tfds

from fmacomp import audio
from fmacomp.datasets import base
from fmacomp.datasets import shards
from fmacomp import errors

SPLITS_FILE = 'splits.json'
# Written into each build: the content hash and the files stored per split.
FILES_FILE = 'files.json'
SPLIT_NAMES = ('train', 'validation', 'test')
UNKNOWN = 'Unknown'
# Extensions of the formats libsndfile decodes (soundfile.available_formats()), lower case.
AUDIO_EXTENSIONS = frozenset({
    '.wav', '.wave', '.flac', '.ogg', '.oga', '.opus', '.mp3', '.aif', '.aiff', '.aifc', '.au',
    '.snd', '.caf', '.w64', '.rf64',
})
# Cumulative fractions of the hashed split.
_HASH_SPLIT = (('train', 0.8), ('validation', 0.9), ('test', 1.0))
# Registry config part -> storage rate: `music_folder`, `music_folder/22k`, `music_folder/16k`.
_RATES = {'': 44100, '44k': 44100, '22k': 22050, '16k': 16000}


@dataclasses.dataclass
class MusicFolderConfig(base.AudioBuilderConfig):
  """A music folder at a storage rate. Build it with `config_for_folder`.

  Attributes:
    folder: absolute path of the folder of music.
    content_sha256: `content_hash(folder)` when the config was made (hex).
  """
  folder: str = ''
  content_sha256: str = ''


def config_for_folder(folder, storage_rate=44100, min_duration_s=5.0):
  """The config of `folder` at `storage_rate`.

  Its name is unique to the folder, its content and the rate (see the module docstring).
  """
  folder = os.path.realpath(os.path.expanduser(os.fspath(folder)))
  digest = hashlib.sha1(folder.encode('utf-8')).hexdigest()[:8]
  content = content_hash(folder)
  slug = re.sub(r'[^a-z0-9]+', '_', os.path.basename(folder).lower()).strip('_') or 'root'
  suffix = base.RATE_SUFFIXES.get(storage_rate, f'_{storage_rate}hz')
  return MusicFolderConfig(
      name=f'{slug}_{digest}_{content[:8]}{suffix}', folder=folder, content_sha256=content,
      storage_rate=storage_rate, min_duration_s=min_duration_s,
      description=f'{folder} at {storage_rate} Hz')


def folder_content(folder):
  """What a build of `folder` depends on, as JSON-ready data.

  Returns:
    {'splits_sha256': sha256 of splits.json's bytes (None without one), 'files': [[relpath,
    size in bytes], ...] of every audio file, sorted}. A missing folder has no files.
  """
  try:
    with open(os.path.join(folder, SPLITS_FILE), 'rb') as f:
      splits_sha256 = hashlib.sha256(f.read()).hexdigest()
  except FileNotFoundError:
    splits_sha256 = None
  files = []
  for rel in find_audio(folder):
    try:
      size = os.path.getsize(os.path.join(folder, rel))
    except OSError:  # a dangling link: the build skips it, the hash still sees it
      size = -1
    files.append([rel, size])
  return {'splits_sha256': splits_sha256, 'files': files}


def content_hash(folder):
  """sha256 (hex) of `folder_content(folder)` in canonical JSON: the same for a copy anywhere."""
  return _digest(folder_content(folder))


def _digest(content):
  text = json.dumps(content, sort_keys=True, separators=(',', ':'))
  return hashlib.sha256(text.encode('utf-8')).hexdigest()


def _walk_audio(folder):
  """Yields the relative paths (`/`-separated) of the audio files under `folder`."""
  for root, dirs, files in os.walk(folder):
    dirs[:] = [d for d in dirs if not d.startswith('.')]
    for name in files:
      if not name.startswith('.') and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
        yield os.path.relpath(os.path.join(root, name), folder).replace(os.sep, '/')


def find_audio(folder):
  """Relative paths (`/`-separated, sorted) of the audio files under `folder`."""
  return sorted(_walk_audio(folder))


def labels_of(relpaths):
  """{relpath: label}: the first-level sub-folder, else `Unknown` (see the module docstring)."""
  return {p: p.split('/', 1)[0] if '/' in p else UNKNOWN for p in relpaths}


def hash_split(relpath):
  """The split of `relpath` from the sha1 of its UTF-8 bytes: stable across runs and machines."""
  fraction = int(hashlib.sha1(relpath.encode('utf-8')).hexdigest()[:8], 16) / 2**32
  return next(split for split, upper in _HASH_SPLIT if fraction < upper)


def read_splits_file(path):
  """Parses a splits.json into {relpath: split}.

  Raises:
    errors.InputError: not JSON, an unknown split, a path that is not a relative path inside the
      folder, or a file listed twice.
  """
  try:
    with open(path) as f:
      listing = json.load(f)
  except (OSError, ValueError) as e:
    raise errors.InputError(path, f'cannot read: {e}') from e
  if not isinstance(listing, dict):
    raise errors.InputError(path, 'expected {"train": [paths], "validation": [...], "test": [...]}')
  splits = {}
  for split, paths in listing.items():
    if split not in SPLIT_NAMES:
      raise errors.InputError(path, f'unknown split {split!r} (use {", ".join(SPLIT_NAMES)})')
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
      raise errors.InputError(path, f'split {split!r} must be a list of relative paths')
    for rel in paths:
      norm = posixpath.normpath(rel.replace('\\', '/'))
      if posixpath.isabs(norm) or norm == '..' or norm.startswith('../'):
        raise errors.InputError(path, f'{rel!r} is not a path inside the folder')
      if norm in splits:
        raise errors.InputError(path, f'{rel!r} is listed in {splits[norm]!r} and {split!r}')
      splits[norm] = split
  return splits


class MusicFolder(base.AudioBuilder, skip_registration=True):
  """Any folder of music; configs come from `config_for_folder`, not a fixed list."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'First release.',
                   '1.1.0': 'Records carry num_samples; shards written by the builder.'}
  BUILDER_CONFIG_CLASS = MusicFolderConfig
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Pass the folder of music as --manual_dir (labels from its first-level sub-folders, '
      'splits from an optional splits.json).')
  DESCRIPTION = ('Audio files of a local folder, stored as int16 mono records of at most 30 s. '
                 'Labels are first-level sub-folder names.')

  @classmethod
  def from_name(cls, name, data_dir, manual_dir=None):
    """The builder for `music_folder[/22k|/16k]` over the folder `manual_dir`.

    Raises:
      errors.InputError: no manual_dir, a missing folder, no audio in it, or an unknown rate.
    """
    rate_name = name.split('/', 1)[1] if '/' in name else ''
    if rate_name not in _RATES:
      raise errors.InputError(name, 'unknown music_folder config (use music_folder, '
                              'music_folder/22k or music_folder/16k)')
    if not manual_dir:
      raise errors.InputError('--manual_dir', 'music_folder needs the folder of music')
    config = config_for_folder(manual_dir, storage_rate=_RATES[rate_name])
    _check_folder(config.folder)
    return cls(config=config, data_dir=data_dir, file_format='array_record')

  def _split_tracks(self, dl_manager):
    folder = self.builder_config.folder
    _check_folder(folder)
    found = find_audio(folder)
    splits_path = os.path.join(folder, SPLITS_FILE)
    if os.path.exists(splits_path):
      assigned = read_splits_file(splits_path)
      for rel in sorted(set(found) - set(assigned)):
        self._skip(base.Track(track_id=rel, label=UNKNOWN, path=os.path.join(folder, rel)),
                   f'not listed in {SPLITS_FILE}')
    else:
      assigned = {rel: hash_split(rel) for rel in found}
    labels = labels_of(assigned)
    # With no sub-folders at all every label is `Unknown`; otherwise top-level files are too.
    self.set_label_names(sorted(set(labels.values())))
    splits = {}
    for rel in sorted(assigned):
      path = os.path.join(folder, rel)
      splits.setdefault(assigned[rel], []).append(base.Track(
          track_id=rel, label=labels[rel], path=path, duration_s=_header_duration(path)))
    self._listed = {split: splits[split] for split in SPLIT_NAMES if split in splits}
    return self._listed

  def _download_and_prepare(self, dl_manager, download_config=None):
    config = self.builder_config
    try:
      result = super()._download_and_prepare(dl_manager, download_config)
    except shards.EmptySplitError as e:
      # A split whose every track was skipped cannot be written; say which folder it is.
      raise errors.InputError(config.folder, f'no usable audio in split {e.path!r}; '
                              'the skipped files are logged above') from e
    # The build is named after the content hash taken before it read the files; a folder edited
    # meanwhile would leave a build whose name lies about what it holds.
    content = folder_content(config.folder)
    if _digest(content) != config.content_sha256:
      raise errors.InputError(config.folder, 'changed while it was being built; prepare again')
    skipped = {s['track_id'] for s in self._skipped}
    manifest = {
        'folder': config.folder,
        'content_sha256': config.content_sha256,
        'splits_sha256': content['splits_sha256'],
        'splits': {split: [t.track_id for t in tracks if t.track_id not in skipped]
                   for split, tracks in self._listed.items()},
    }
    # Like skipped.json: written into the still incomplete build folder, so it lands with the data.
    with open(os.path.join(os.fspath(self.data_dir), FILES_FILE), 'w') as f:
      json.dump(manifest, f, indent=1)
    return result

  def data_identity(self):
    """`base.AudioBuilder.data_identity` plus the folder, its content hash and the files stored.

    `files` is {split: [relpath, ...]} of the tracks in the build (skipped ones left out), from
    the build's files.json; None for a build that has none.
    """
    identity = super().data_identity()
    path = os.path.join(os.fspath(self.data_dir), FILES_FILE)
    manifest = {}
    if os.path.exists(path):
      with open(path) as f:
        manifest = json.load(f)
    config = self.builder_config
    identity.update(folder=config.folder, content_sha256=config.content_sha256,
                    splits_sha256=manifest.get('splits_sha256'), files=manifest.get('splits'))
    return identity


def _header_duration(path):
  """The duration a file's header declares (plans shards only); None when it does not open."""
  try:
    return audio.audio_info(path).duration_s
  except errors.AudioError:
    return None


def _check_folder(folder):
  """Raises InputError unless `folder` is a folder with at least one audio file."""
  if not os.path.isdir(folder):
    raise errors.InputError(folder, 'no such folder (music_folder reads --manual_dir)')
  if next(_walk_audio(folder), None) is None:
    raise errors.InputError(folder, 'no audio files (looked for ' +
                            ', '.join(sorted(AUDIO_EXTENSIONS)) + ')')
