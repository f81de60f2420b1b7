"""Dataset registry: a DESIGN.md dataset NAME -> a TFDS builder, prepared on demand.

NAME is `synthetic_music` (the embedded default), `fma/small`, `fma/medium`, `fma/large`
(optionally with a storage-rate suffix, `fma/small_22k`), or `music_folder` (whose config is
derived from `manual_dir`). Builders are imported lazily, so importing this module is cheap.
"""

import contextlib
import importlib
import os
import shutil
import sys

from fmacomp import errors

DEFAULT_DATASET = 'synthetic_music'

# name -> (module, builder class name)
_BUILDERS = {
    'synthetic_music': ('fmacomp.datasets.synthetic_music', 'SyntheticMusic'),
    'fma': ('fmacomp.datasets.fma', 'Fma'),
    'music_folder': ('fmacomp.datasets.music_folder', 'MusicFolder'),
}


def default_data_dir():
  """TFDS_DATA_DIR, else TFDS's own default (~/tensorflow_datasets)."""
  return os.environ.get('TFDS_DATA_DIR') or os.path.expanduser('~/tensorflow_datasets')


def builder_class(name):
  """The builder class for a dataset name (the part before any `/config`)."""
  base = name.split('/', 1)[0]
  if base not in _BUILDERS:
    raise errors.InputError(name, f'unknown dataset (choose from {", ".join(sorted(_BUILDERS))})')
  module, cls = _BUILDERS[base]
  return getattr(importlib.import_module(module), cls)


def get_builder(name=DEFAULT_DATASET, data_dir=None, manual_dir=None):
  """Returns the TFDS builder for `name`, not yet prepared.

  Args:
    name: a dataset NAME as above.
    data_dir: where builds live; defaults to `default_data_dir()`.
    manual_dir: the folder of a manual download (FMA) or of the music (music_folder).
  """
  data_dir = os.path.expanduser(data_dir or default_data_dir())
  cls = builder_class(name)
  return cls.from_name(name, data_dir=data_dir, manual_dir=manual_dir)


def prepare(name=DEFAULT_DATASET, data_dir=None, manual_dir=None, overwrite=False):
  """Builds the dataset unless a complete build exists (or `overwrite`); returns the builder.

  TFDS's progress text goes to stderr (stdout carries results). With `overwrite`, the old build
  is moved aside and restored if the new one fails, so a failed rebuild loses nothing.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = get_builder(name, data_dir=data_dir, manual_dir=manual_dir)
  if builder.is_prepared() and not overwrite:
    return builder
  old = None
  if builder.is_prepared():
    old = os.fspath(builder.data_dir).rstrip('/') + '.old'
    shutil.rmtree(old, ignore_errors=True)
    os.rename(os.fspath(builder.data_dir), old)
    builder = get_builder(name, data_dir=data_dir, manual_dir=manual_dir)
  try:
    with contextlib.redirect_stdout(sys.stderr):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except BaseException:
    if old is not None:
      shutil.rmtree(os.fspath(builder.data_dir), ignore_errors=True)
      os.rename(old, os.fspath(builder.data_dir))
    raise
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)
  return get_builder(name, data_dir=data_dir, manual_dir=manual_dir)
