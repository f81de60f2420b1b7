r"""Runs a config's `sweep()`: `python launch/sweep.py --config=fmacomp/configs/X.py[:ARGS]
--workdir=DIR`. Finished runs are skipped, so re-running resumes. Writes sweep.json and
sweep.md (mean and standard deviation over seeds); prints `sweep=<path to sweep.md>` last.
"""

import importlib.util
import os

from absl import flags
from ml_collections import config_flags

import launcher
from fmacomp import errors
from fmacomp.training import sweep

config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'The sweep directory.')
launcher.define_distributed_flags()
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def _sweep_overrides():
  path = config_flags.get_config_filename(FLAGS['config']).split(':', 1)[0]
  spec = importlib.util.spec_from_file_location('fmacomp_sweep_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, 'sweep'):
    raise errors.InputError(path, 'config file defines no sweep()')
  return module.sweep()


def main(argv):
  del argv
  launcher.initialize_distributed()
  sweep.run_sweep(FLAGS.config, _sweep_overrides(), FLAGS.workdir)
  print(f'sweep={os.path.join(os.path.abspath(FLAGS.workdir), "sweep.md")}', flush=True)


if __name__ == '__main__':
  launcher.run(main)
