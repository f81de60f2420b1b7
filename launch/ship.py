r"""Ships a trained codec inside the package: `python launch/ship.py --workdir=RUN --name=NAME`.

Writes `fmacomp/shipped/NAME/` (or `--out/NAME/`), laid out like a training workdir so that
`fmacomp.fmac.model_store` loads it by name: config.json, the validation records of metrics.jsonl
(they give the operating point's bitrate) and the best checkpoint with the parameters only (no
optimiser state, no iterator). With `--half` (the default) convolution kernels are stored as
float16, which halves the folder; computation stays float32 (flax promotes the kernels), the
prior (and a rate-conditioned model's per-point gains) stays float32, and the CDF tables are frozen from exactly these weights. The folder is
written under a temporary name and renamed, so a failed run leaves no half-shipped model.
"""

import json
import os
import shutil

from absl import flags
import jax
import numpy as np
import orbax.checkpoint as ocp

import launcher
from fmacomp import errors
from fmacomp.fmac import model_store
from fmacomp.training import checkpointing

flags.DEFINE_string('workdir', None, 'Training workdir whose best checkpoint is shipped.')
flags.DEFINE_string('name', None, 'Name of the shipped model (what .fmac headers carry).')
flags.DEFINE_string('out', model_store.SHIPPED_DIR, 'Folder of shipped models.')
flags.DEFINE_bool('half', True, 'Store convolution kernels as float16.')
FLAGS = flags.FLAGS


_FLOAT32 = ('bottleneck', 'hyperprior', 'log_gain')  # the priors and the operating points' gains


def _halve(params):
  """float16 for network kernels outside the prior ([k, in, out] convs, [in, out] dense
  layers); the priors, the per-point gains and everything 1-D as they are."""
  def cast(path, leaf):
    keys = jax.tree_util.keystr(path)
    if leaf.ndim >= 2 and not any(name in keys for name in _FLOAT32):
      return leaf.astype(np.float16)
    return leaf
  return jax.tree_util.tree_map_with_path(cast, params)


def _validation_records(workdir):
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [line for line in f if json.loads(line).get('split') == 'validation']


def ship(workdir, name, out, half=True):
  """Writes `out/name/` from the best checkpoint of `workdir`; returns its size in bytes."""
  variables, step = checkpointing.load_params(workdir)
  params = variables.pop('params')
  state = {'params': _halve(params) if half else params}
  if variables:
    state['extra'] = variables
  dest = os.path.join(out, name)
  tmp = dest + '.tmp'
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  shutil.copy(os.path.join(workdir, 'config.json'), os.path.join(tmp, 'config.json'))
  with open(os.path.join(tmp, 'metrics.jsonl'), 'w') as f:
    f.writelines(_validation_records(workdir))
  with ocp.CheckpointManager(checkpointing.checkpoint_dir(tmp, checkpointing.BEST),
                             item_names=('state',)) as manager:
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    manager.wait_until_finished()
  model_store.export_tables(tmp)
  shutil.rmtree(dest, ignore_errors=True)
  os.rename(tmp, dest)
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(dest) for f in fs)


def main(argv):
  if len(argv) > 1 or not FLAGS.workdir or not FLAGS.name:
    raise errors.InputError(argv[0], 'usage: ship.py --workdir=RUN --name=NAME [--out=DIR]')
  size = ship(FLAGS.workdir, FLAGS.name, FLAGS.out, FLAGS.half)
  print(f'shipped={os.path.join(FLAGS.out, FLAGS.name)} bytes={size}')


if __name__ == '__main__':
  launcher.run(main)
