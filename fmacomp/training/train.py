"""train_and_evaluate(config, workdir): the training loop every fmacomp model shares.

Data parallel over a 1-D mesh ("data" axis over every device of every host): parameters are
replicated, batches are sharded on their leading axis. The state is created already sharded
(`jax.eval_shape` + `jax.jit(..., out_shardings=...)`), the step is the module-level
`train_step`, jitted once with shardings and donation, and the step key is
`fold_in(rng, step)`, so a resumed run reproduces an uninterrupted one exactly.

What a model is trained to do (its loss, its validation) lives in `fmacomp.training.tasks`; the
checkpoints in `fmacomp.training.checkpointing`; the input pipeline in `fmacomp.datasets.pipeline`;
the record of every launch (`launches.jsonl`) in `fmacomp.training.provenance`.
"""

import json
import os
import time

from absl import logging
import flax
from flax.training import train_state
import jax
from jax.experimental import multihost_utils
import numpy as np
import optax
import tensorboardX

from fmacomp import datasets
from fmacomp.datasets import pipeline
from fmacomp import errors
from fmacomp import files
from fmacomp.training import checkpointing
from fmacomp.training import provenance
from fmacomp.training import tasks


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the model's non-trainable variable collections.

  `non_trainable` maps collection name -> variables that the optimiser never touches (e.g.
  time_ae's 'norm' statistics of the training split); apply the model with
  `{'params': params, **non_trainable}`. `loss_fn(params, non_trainable, batch, rng) ->
  (loss, metrics)` is static: it is part of the jit cache key, and it is the same object for
  the whole run.
  """
  non_trainable: flax.core.FrozenDict = flax.struct.field(default_factory=dict)
  loss_fn: callable = flax.struct.field(pytree_node=False, default=None)


def train_step(state, batch, rng):
  """One optimiser step. Returns the new state and scalar metrics (loss, norms)."""
  rng = jax.random.fold_in(rng, state.step)

  def loss(params):
    return state.loss_fn(params, state.non_trainable, batch, rng)

  (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads)
  updates = jax.tree.map(lambda a, b: a - b, new_state.params, state.params)
  metrics = dict(metrics, loss=value, grad_norm=optax.global_norm(grads),
                 update_norm=optax.global_norm(updates),
                 param_norm=optax.global_norm(new_state.params))
  return new_state, metrics


def make_mesh(config):
  """A 1-D mesh over every device ('data'); built here, never at import."""
  n = config.mesh.data if config.mesh.data > 0 else jax.device_count()
  if n != jax.device_count():
    raise errors.InputError('config.mesh.data', f'{n} != {jax.device_count()} devices')
  return jax.make_mesh((n,), ('data',), axis_types=(jax.sharding.AxisType.Auto,))


def make_optimizer(config, trainable_mask=None):
  """optax optimiser and schedule from `config.optimizer`; frozen params get zero updates."""
  opt = config.optimizer
  if opt.schedule == 'cosine':
    lr = optax.warmup_cosine_decay_schedule(0.0, opt.lr, max(opt.warmup_steps, 1),
                                            max(config.steps, opt.warmup_steps + 1))
  elif opt.schedule == 'constant':
    lr = optax.linear_schedule(0.0, opt.lr, opt.warmup_steps) if opt.warmup_steps else opt.lr
  else:
    raise errors.InputError('config.optimizer.schedule', f'unknown schedule {opt.schedule!r}')
  if opt.weight_decay > 0:
    tx = optax.adamw(lr, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
  else:
    tx = optax.adam(lr, b1=opt.b1, b2=opt.b2)
  if opt.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  if trainable_mask is not None:
    tx = tasks.freeze(tx, trainable_mask, config)
  return tx


def _prepare_data(config):
  """Process 0 builds the dataset on first use; the others wait at a barrier."""
  kwargs = dict(data_dir=config.data.data_dir or None, manual_dir=config.data.manual_dir or None)
  if jax.process_index() == 0:
    # Old configs (shipped models') have no `workers`: the machine's cores, as prepare's default.
    datasets.prepare(config.data.name, workers=config.data.get('workers') or None, **kwargs)
  multihost_utils.sync_global_devices('fmacomp:prepare_data')
  return datasets.get_builder(config.data.name, **kwargs)


def _write_config(config, workdir):
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json(indent=2, sort_keys=True))


def _record_step(line):
  """The step of a metrics.jsonl line; infinite for a line a killed run left half-written."""
  try:
    return json.loads(line)['step']
  except (ValueError, KeyError, TypeError):
    return float('inf')


class _MetricWriter:
  """metrics.jsonl + TensorBoard, on process 0 only.

  A resumed run first drops what a killed run logged after its checkpoint (`resume_step`), so
  every step is logged once and the curves continue where the state does.
  """

  def __init__(self, workdir, resume_step=None):
    self.active = jax.process_index() == 0
    if self.active:
      path = os.path.join(workdir, 'metrics.jsonl')
      if resume_step is not None and os.path.exists(path):
        with open(path) as f:
          kept = [line for line in f if _record_step(line) <= resume_step]
        files.write_text_atomic(path, ''.join(kept))
      self.jsonl = open(path, 'a')
      self.tb = tensorboardX.SummaryWriter(
          os.path.join(workdir, 'tb'), purge_step=None if resume_step is None else resume_step + 1)

  def write(self, step, split, metrics):
    if not self.active:
      return
    record = {'step': int(step), 'split': split, **{k: float(v) for k, v in metrics.items()}}
    self.jsonl.write(json.dumps(record) + '\n')
    self.jsonl.flush()
    for k, v in metrics.items():
      self.tb.add_scalar(f'{split}/{k}', float(v), int(step))

  def close(self):
    if self.active:
      self.jsonl.close()
      self.tb.close()


def _check_finite(unsynced):
  """Host copies of [(step, metrics on device)]'s metrics; RunError names the first step whose
  loss is not finite."""
  host = jax.device_get([m for _, m in unsynced])
  for (step, _), metrics in zip(unsynced, host):
    if not np.isfinite(metrics['loss']):
      raise errors.RunError(f'step {step}', f'non-finite loss ({metrics["loss"]}); stopping, '
                            'the last good checkpoint is kept')
  return host


def train_and_evaluate(config, workdir):
  """Trains `config` in `workdir`, resuming from its latest checkpoint. Returns the checksum."""
  workdir = os.path.abspath(workdir)
  _write_config(config, workdir)
  builder = _prepare_data(config)

  # --- Mesh, task, optimiser ---------------------------------------------------------------
  mesh = make_mesh(config)
  if config.batch_size % mesh.size:
    raise errors.InputError('config.batch_size', (
        f'{config.batch_size} is not divisible by the {mesh.size} devices of the data axis'))
  replicated = jax.NamedSharding(mesh, jax.P())
  batch_sharding = jax.NamedSharding(mesh, jax.P('data'))
  task = tasks.make_task(config, builder)
  tx = make_optimizer(config, task.trainable_mask)

  def init(rng):
    # Strongly typed leaves: a weak-typed initialiser (a Python float in it, e.g. the
    # hyperprior's side_log_scale) would compile the train step twice, for the fresh state
    # and again for the strongly typed state the first step returns (12 s for stft_codec:tiny).
    # The values are the same either way (stft_codec:tiny's checksum is unchanged).
    variables = jax.tree.map(lambda x: x.astype(x.dtype), task.init_variables(rng))
    params = variables.pop('params')
    return TrainState.create(apply_fn=None, params=params, tx=tx, non_trainable=variables,
                             loss_fn=task.loss)

  rng = jax.random.key(config.seed)
  init_rng, step_rng = jax.random.split(rng)
  abstract = jax.eval_shape(init, init_rng)
  state_sharding = jax.tree.map(lambda _: replicated, abstract)

  # --- Input pipeline, then the state: restored from the latest checkpoint, or created ---
  loader = pipeline.train_loader(
      builder, split='train', crop_s=config.crop_s, sample_rate=config.sample_rate,
      global_batch_size=config.batch_size, seed=config.seed,
      worker_count=config.worker_count, label_filter=config.label_filter or None)
  iterator = iter(loader)
  ckpt = checkpointing.RunCheckpoints(workdir, keep=config.keep_checkpoints)
  resume_step = ckpt.latest_step()
  if resume_step is None:
    # Non-partitionable threefry for the (replicated) initial parameters: XLA:CPU takes ~7 s
    # to compile one partitionable draw of a 4-D conv kernel (freq_ae's init took 20 s).
    with jax.threefry_partitionable(False):
      state = jax.jit(init, out_shardings=state_sharding)(init_rng)
    state = task.load_pretrained(state, state_sharding)
  else:
    logging.info('Resuming from step %d', resume_step)
    abstract_state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_sharding)
    state = ckpt.restore(resume_step, abstract_state, iterator)
    state = state.replace(loss_fn=task.loss, tx=tx)
  start = resume_step or 0
  # config.json is overwritten at each launch; launches.jsonl keeps what made each checkpoint.
  provenance.record_launch(workdir, config, start, builder)

  # The next global batches go to the devices while a step runs; checkpoints save the state of
  # the batches taken, not of those read ahead.
  batches = pipeline.DevicePrefetch(iterator, batch_sharding)
  step_fn = jax.jit(train_step, in_shardings=(state_sharding, batch_sharding, replicated),
                    out_shardings=(state_sharding, replicated), donate_argnums=(0,))
  writer = _MetricWriter(workdir, resume_step)
  logging.info('Process %d of %d, %d local / %d global devices, training steps %d -> %d',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), start, config.steps)

  # --- Loop ------------------------------------------------------------------------------
  unsynced = []  # (step, metrics on device) since the last host sync
  logged = []    # host metrics of the steps since the last log line
  t0, step0 = time.time(), start
  try:
    for step in range(start + 1, config.steps + 1):
      batch = next(batches)
      state, metrics = step_fn(state, batch, step_rng)
      unsynced.append((step, metrics))
      boundary = (step % config.log_every == 0 or step % config.eval_every == 0 or
                  step % config.checkpoint_every == 0 or step == config.steps)
      if not boundary:
        continue
      logged += _check_finite(unsynced)  # before anything of these steps is saved
      unsynced = []
      if step % config.log_every == 0 or step == config.steps:
        averaged = {k: np.mean([m[k] for m in logged]) for k in logged[0]}
        writer.write(step, 'train', averaged)
        logged = []
        rate = (step - step0) / max(time.time() - t0, 1e-9)
        logging.info('step %d/%d loss %.5g | %.2f steps/s, %.1f examples/s, ETA %.0f s',
                     step, config.steps, averaged['loss'], rate, rate * config.batch_size,
                     (config.steps - step) / max(rate, 1e-9))
      if step % config.eval_every == 0 or step == config.steps:
        val = task.evaluate(state, builder, mesh, config)
        writer.write(step, 'validation', val)
        logging.info('step %d validation %s', step,
                     ', '.join(f'{k}={v:.5g}' for k, v in sorted(val.items())))
        ckpt.save_best(step, state, val['loss'])
      if step % config.checkpoint_every == 0 or step == config.steps:
        ckpt.save(step, state, batches)
  finally:
    batches.close()
    ckpt.wait()
    ckpt.close()
    writer.close()
  return checkpointing.params_checksum(state.params)
