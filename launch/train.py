r"""Trains one model: `python launch/train.py --config=fmacomp/configs/X.py[:ARGS] --workdir=DIR`.

Overrides: `--config.steps=100 --config.data.name=fma/small`. Multi-host: on a TPU VM pod run
the same command with `--distributed` on every host; elsewhere add
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I`. The last stdout line is
`params_checksum=<sha256>`.
"""

from absl import flags
from ml_collections import config_flags

import launcher
from fmacomp.training import train

config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, metrics and config.json go.')
launcher.define_distributed_flags()
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  launcher.initialize_distributed()
  checksum = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  print(f'params_checksum={checksum}', flush=True)


if __name__ == '__main__':
  launcher.run(main)
