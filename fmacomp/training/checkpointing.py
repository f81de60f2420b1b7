"""Orbax checkpoints of a run: the latest N (with the input iterator) and the best on validation.

Workdir layout (DESIGN.md):
  checkpoints/latest/<step>/   state + every process's grain iterator state; keeps N
  checkpoints/best/<step>/     state only; keeps the single best by validation loss

Two managers, because an orbax `best_fn` policy counts `max_to_keep` among the best only and
could delete the newest checkpoint that a resume needs. Every process saves (orbax coordinates
the writes); saves are asynchronous and `wait()` blocks until they are on disk.

`load_params(workdir)` restores the best checkpoint's parameters and non-trainable collections
(normalisation statistics, CDF tables) on the host, without the optimiser. `load_run(workdir)` is
the one run loader of evaluation and the model store: config, model (`models.from_config`) and
those variables together.
"""

import dataclasses
import hashlib
import json
import os

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from fmacomp import errors
from fmacomp import models

LATEST = 'latest'
BEST = 'best'


def checkpoint_dir(workdir, which=LATEST):
  return os.path.join(os.path.abspath(workdir), 'checkpoints', which)


def _options(name, **kwargs):
  """Options of a run's writing managers.

  Barriers get the manager's name as a prefix: orbax names its multi-process barriers after the
  step alone (`async_write_complete.<step>`), so two managers saving one step at once would
  meet at one barrier and fail ('already ongoing'). Temporary directories of a save that a
  killed run left behind are removed when the run restarts.
  """
  return ocp.CheckpointManagerOptions(
      create=True, cleanup_tmp_directories=True,
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix=f'fmacomp_{name}'), **kwargs)


class RunCheckpoints:
  """The two managers of one run."""

  def __init__(self, workdir, keep=2, async_save=True):
    self.latest = ocp.CheckpointManager(
        checkpoint_dir(workdir, LATEST),
        options=_options(LATEST, max_to_keep=keep, enable_async_checkpointing=async_save),
        item_names=('state', 'data'))
    self.best = ocp.CheckpointManager(
        checkpoint_dir(workdir, BEST),
        options=_options(BEST, max_to_keep=1, best_fn=lambda m: m['val_loss'], best_mode='min',
                         enable_async_checkpointing=async_save),
        item_names=('state',))

  def latest_step(self):
    return self.latest.latest_step()

  def save(self, step, state, iterator):
    self.latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(iterator)))

  def save_best(self, step, state, val_loss):
    self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                   metrics={'val_loss': float(val_loss)})

  def restore(self, step, abstract_state, iterator):
    """Restores state (with the shardings in `abstract_state`) and the iterator in place."""
    restored = self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=grain.checkpoint.CheckpointRestore(iterator)))
    return restored['state']

  def wait(self):
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self):
    self.latest.close()
    self.best.close()


def load_config(workdir):
  """The config.json of a finished or running workdir."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise errors.InputError(workdir, 'not a training workdir (no config.json)')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_params(workdir, which=BEST):
  """Returns (variables, step): the checkpoint's `params` plus non-trainable collections.

  Restores on the host as numpy arrays, without the optimiser state, whatever the mesh of the
  run that wrote it. Falls back to the latest checkpoint when no best one exists yet.
  """
  for kind in (which, LATEST):
    directory = checkpoint_dir(workdir, kind)
    if not os.path.isdir(directory):
      continue
    with ocp.CheckpointManager(directory, item_names=('state',)) as manager:
      step = manager.best_step() if kind == BEST else manager.latest_step()
      if step is None:
        continue
      item = os.path.join(directory, str(step), 'state')
      restored = ocp.PyTreeCheckpointer().restore(
          item, args=ocp.args.PyTreeRestore(restore_args=_host_restore_args(item)))
    # The collections besides params: TrainState.non_trainable ('extra' in checkpoints written
    # before its rename, the shipped models' among them).
    others = restored.get('non_trainable', restored.get('extra', {}))
    variables = {'params': restored['params'], **others}
    return jax.tree.map(np.asarray, variables), step
  raise errors.InputError(workdir, 'no checkpoint found under checkpoints/')


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """A run restored for inference.

  Attributes:
    workdir: the run's workdir (absolute).
    config: its config.json.
    model: the Flax module its config describes.
    variables: {'params': ..., other collections}: numpy, on the host; the collections carry
      what the run learned beside its weights (e.g. time_ae's normalisation statistics).
    step: the restored checkpoint's step.
  """
  workdir: str
  config: ml_collections.ConfigDict
  model: object
  variables: dict
  step: int


def _linked_fields(config, variables):
  """Model fields a config links to instead of holding: a classifier's encoder and classes."""
  if config.model.name != 'classifier':
    return {}
  # The head's output size is the dataset's label count when the run trained.
  fields = {'n_classes': int(np.shape(variables['params']['fc2']['kernel'])[-1]),
            'freeze_encoder': config.get('unfreeze_step', -1) < 0}
  if config.model.get('frontend') == 'latent':
    encoder = dict(load_config(config.encoder_workdir).model)
    fields.update(encoder=encoder.pop('name'), encoder_kwargs=encoder)
  return fields


def load_run(workdir, which=BEST):
  """Restores a run's config, model and variables (see `load_params` for `which`).

  Args:
    workdir: a training workdir (config.json and checkpoints/).
    which: BEST (falling back to the latest when no best exists yet) or LATEST.

  Returns:
    A `TrainedRun`.

  Raises:
    errors.InputError: no config.json or no checkpoint.
  """
  config = load_config(workdir)
  variables, step = load_params(workdir, which)
  model = models.from_config(config.model, **_linked_fields(config, variables))
  return TrainedRun(os.path.abspath(workdir), config, model, variables, int(step))


def _host_restore_args(item):
  metadata = ocp.PyTreeCheckpointer().metadata(item)
  tree = getattr(metadata, 'item_metadata', metadata)
  tree = getattr(tree, 'tree', tree)
  return jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)


def params_checksum(params):
  """sha256 over the parameters: leaves in sorted key-path order, native dtype, little-endian.

  The identity of a trained model: train.py prints it last, `.fmac` headers carry its first 16
  bytes (`codec.weights_hash`), and CDF tables record the parameters they were frozen from.
  """
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  digest = hashlib.sha256()
  for path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
    array = np.asarray(jax.device_get(leaf))
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(array.astype(array.dtype.newbyteorder('<')).tobytes())
  return digest.hexdigest()
