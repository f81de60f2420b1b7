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


def beam_options(text):
  """`runner=NAME,k=v,...` (as `tfds build --beam_pipeline_options`) -> Beam PipelineOptions."""
  try:
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise errors.InputError('--beam_pipeline_options', 'needs Apache Beam: pip install '
                            '"fmacomp[beam]"') from None
  return pipeline_options.PipelineOptions(
      flags=[f'--{option}' for option in text.split(',') if option])


def prepare(name=DEFAULT_DATASET, data_dir=None, manual_dir=None, overwrite=False, workers=None,
            beam_pipeline_options=None, beam_runner=None):
  """Builds the dataset unless a complete build exists (or `overwrite`); returns the builder.

  TFDS's progress text goes to stderr (stdout carries results). With `overwrite`, the old build
  is moved aside and restored if the new one fails, so a failed rebuild loses nothing.

  Args:
    name, data_dir, manual_dir: as `get_builder`.
    overwrite: rebuild even if a complete build exists.
    workers: processes that write shards (None or 0: os.cpu_count(), in process for a build of
      less than one shard; 1: in process).
    beam_pipeline_options: `runner=NAME,k=v,...`: write the shards on Apache Beam instead.
    beam_runner: a Beam runner object (tests: FnApiRunner), with or without options.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  options = beam_options(beam_pipeline_options) if beam_pipeline_options else None
  builder = get_builder(name, data_dir=data_dir, manual_dir=manual_dir)
  if builder.is_prepared() and not overwrite:
    return builder
  old = None
  if builder.is_prepared():
    old = os.fspath(builder.data_dir).rstrip('/') + '.old'
    shutil.rmtree(old, ignore_errors=True)
    os.rename(os.fspath(builder.data_dir), old)
    builder = get_builder(name, data_dir=data_dir, manual_dir=manual_dir)
  builder.workers = workers or None
  try:
    with contextlib.redirect_stdout(sys.stderr):
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir, beam_options=options, beam_runner=beam_runner))
  except BaseException:
    if old is not None:
      shutil.rmtree(os.fspath(builder.data_dir), ignore_errors=True)
      os.rename(old, os.fspath(builder.data_dir))
    raise
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)
  return get_builder(name, data_dir=data_dir, manual_dir=manual_dir)
