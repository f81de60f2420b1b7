"""Builds a dataset (or reuses its build) and prints what it holds.

  python launch/prepare.py --dataset=synthetic_music
  python launch/prepare.py --dataset=fma/small --manual_dir=~/fma
  python launch/prepare.py --dataset=music_folder/16k --manual_dir=../shared/realmusic
  python launch/prepare.py --dataset=fma/large --manual_dir=~/fma --workers=64
  python launch/prepare.py --dataset=fma/large --manual_dir=/mnt/fma --data_dir=/mnt/data \
      --beam_pipeline_options=runner=FlinkRunner,flink_master=host:8081,environment_type=LOOPBACK

stdout carries the summary table (examples and hours per split and label, skipped files); logs
go to stderr. An existing build is reused unless --overwrite.
"""

import contextlib
import sys

from absl import flags
from absl import logging

import launcher
from fmacomp import datasets
from fmacomp.datasets import summary
from fmacomp import errors

_DATASET = flags.DEFINE_string(
    'dataset', datasets.DEFAULT_DATASET,
    'synthetic_music, fma/small|medium|large[_22k|_16k] or music_folder[/22k|/16k].')
_MANUAL_DIR = flags.DEFINE_string(
    'manual_dir', None, 'The manual download (fma) or the folder of music (music_folder).')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Where builds live (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Rebuild even if a complete build exists.')
_WORKERS = flags.DEFINE_integer(
    'workers', None, 'Processes that write shards (default: the machine\'s cores; 1: in process).',
    lower_bound=1)
_BEAM_PIPELINE_OPTIONS = flags.DEFINE_string(
    'beam_pipeline_options', None,
    'Write the shards on Apache Beam: runner=NAME,k=v,... as in `tfds build` (Dataflow, Flink, '
    'Spark; data_dir and manual_dir on storage the workers share).')


def main(argv):
  if len(argv) > 1:
    raise errors.InputError(argv[1], 'unexpected argument (prepare.py takes flags only)')
  # TFDS prints its progress on stdout; stdout carries only the table (DESIGN.md).
  with contextlib.redirect_stdout(sys.stderr):
    builder = datasets.prepare(_DATASET.value, data_dir=_DATA_DIR.value,
                               manual_dir=_MANUAL_DIR.value, overwrite=_OVERWRITE.value,
                               workers=_WORKERS.value,
                               beam_pipeline_options=_BEAM_PIPELINE_OPTIONS.value)
  logging.info('Prepared %s in %s', _DATASET.value, builder.data_dir)
  print(summary.format_summary(summary.summarize(builder)), flush=True)


if __name__ == '__main__':
  launcher.run(main)
