"""Dataset registry: a DESIGN.md dataset NAME -> a TFDS builder, prepared on demand.

NAME is `synthetic_music` (the embedded default), `fma/small`, `fma/medium`, `fma/large`
(optionally with a storage-rate suffix, `fma/small_22k`), or `music_folder` (whose config is
derived from `manual_dir`). Builders are imported lazily, so importing this module is cheap.
"""

import importlib
import os

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
  """Builds the dataset unless a complete build exists (or `overwrite`); returns the builder."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = get_builder(name, data_dir=data_dir, manual_dir=manual_dir)
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite else
          tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  download_config = tfds.download.DownloadConfig(
      manual_dir=manual_dir, download_mode=mode)
  if overwrite or not builder.is_prepared():
    builder.download_and_prepare(download_config=download_config, file_format='array_record')
  return builder
