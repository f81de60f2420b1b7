"""fmacomp.training.train: the checksum, the mesh, the optimiser, and short real runs here.

The subprocess tests (resume after SIGKILL, 4 devices, 2 processes, non-finite loss, sweeps) are
in tests/launch/train_launch_test.py; the session's reference run and dataset in conftest.py.
"""

import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from fmacomp.configs import classifier as classifier_config
from fmacomp.configs import time_ae as time_ae_config
import fmacomp
from fmacomp import datasets
from fmacomp import errors
from fmacomp.training import checkpointing
from fmacomp.training import provenance
from fmacomp.training import train

from tests import trained_codec


# --- params_checksum ------------------------------------------------------------------------

def _tree():
  return {'b': {'kernel': np.arange(6, dtype=np.float32).reshape(2, 3)},
          'a': {'bias': np.array([1.5, -2.0], np.float32)}}


def test_checksum_is_sha256_of_sorted_paths_and_little_endian_bytes():
  digest = hashlib.sha256()
  for path, leaf in [("['a']['bias']", np.array([1.5, -2.0], '<f4')),
                     ("['b']['kernel']", np.arange(6, dtype='<f4').reshape(2, 3))]:
    digest.update(path.encode())
    digest.update(leaf.tobytes())
  assert checkpointing.params_checksum(_tree()) == digest.hexdigest()


def test_checksum_ignores_insertion_order_byte_order_and_placement():
  tree = _tree()
  reordered = {'a': tree['a'], 'b': tree['b']}
  big_endian = jax.tree.map(lambda x: x.astype(x.dtype.newbyteorder('>')), tree)
  on_device = jax.tree.map(jnp.asarray, tree)
  expected = checkpointing.params_checksum(tree)
  checksums = {checkpointing.params_checksum(t) for t in (reordered, big_endian, on_device)}
  assert checksums == {expected}


def test_checksum_sees_one_ulp_a_dtype_and_a_name():
  expected = checkpointing.params_checksum(_tree())
  nudged = _tree()
  nudged['a']['bias'][0] = np.nextafter(np.float32(1.5), np.float32(2))
  as_half = jax.tree.map(lambda x: x.astype(np.float16), _tree())
  renamed = {'c' if k == 'b' else k: v for k, v in _tree().items()}
  assert len({expected, *map(checkpointing.params_checksum, (nudged, as_half, renamed))}) == 4


def test_printed_checksum_is_the_saved_parameters(reference_run):
  variables, step = checkpointing.load_params(str(reference_run.workdir), which='latest')
  assert step == 12
  assert checkpointing.params_checksum(variables['params']) == reference_run.checksum


# --- Mesh, optimiser, non-finite check ------------------------------------------------------

def test_make_mesh_spans_every_device_or_names_the_mismatch():
  config = ml_collections.ConfigDict({'mesh': {'data': -1}})
  mesh = train.make_mesh(config)
  assert mesh.axis_names == ('data',) and mesh.size == jax.device_count()
  config.mesh.data = jax.device_count() + 1
  with pytest.raises(errors.InputError, match='config.mesh.data'):
    train.make_mesh(config)


def _optimizer_config(**optimizer):
  config = time_ae_config.get_config('tiny')
  config.optimizer.update(optimizer)
  return config


def test_make_optimizer_schedules_and_unknown_names():
  params = {'w': jnp.ones(3)}
  grads = {'w': jnp.ones(3)}
  warm = train.make_optimizer(_optimizer_config(schedule='cosine', warmup_steps=4, lr=1e-2))
  updates, _ = warm.update(grads, warm.init(params), params)
  np.testing.assert_array_equal(updates['w'], 0.0)  # step 0 of a warmup from 0
  with pytest.raises(errors.InputError, match='schedule'):
    train.make_optimizer(_optimizer_config(schedule='nope'))


@pytest.mark.parametrize('unfreeze_step, frozen_moves_at', [(-1, None), (2, 2)])
def test_frozen_params_get_no_updates_until_the_unfreeze_step(unfreeze_step, frozen_moves_at):
  config = _optimizer_config()
  with config.unlocked():
    config.unfreeze_step = unfreeze_step
  params = {'encoder': jnp.ones(3), 'head': jnp.ones(3)}
  tx = train.make_optimizer(config, {'encoder': False, 'head': True})
  state = tx.init(params)
  for step in range(4):
    updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    assert np.all(np.asarray(updates['head']) != 0)
    moves = bool(np.any(np.asarray(updates['encoder']) != 0))
    assert moves == (frozen_moves_at is not None and step >= frozen_moves_at), step


def test_check_finite_returns_host_metrics_or_names_the_first_bad_step():
  host = train._check_finite([(3, {'loss': jnp.float32(0.5)})])  # pylint: disable=protected-access
  assert host == [{'loss': np.float32(0.5)}] and isinstance(host[0]['loss'], np.ndarray)
  pending = [(4, {'loss': jnp.float32(1.0)}), (5, {'loss': jnp.float32(np.inf)}),
             (6, {'loss': jnp.float32(np.nan)})]
  with pytest.raises(errors.RunError, match=r'^step 5: non-finite loss'):
    train._check_finite(pending)  # pylint: disable=protected-access


def test_a_resumed_metric_writer_drops_records_after_the_checkpoint(tmp_path):
  lines = [json.dumps({'step': s, 'split': 'train', 'loss': 1.0}) + '\n' for s in range(1, 6)]
  (tmp_path / 'metrics.jsonl').write_text(''.join(lines) + '{"step": 6, "spl')  # killed mid-write
  writer = train._MetricWriter(str(tmp_path), resume_step=3)  # pylint: disable=protected-access
  writer.write(4, 'train', {'loss': 0.5})
  writer.close()
  assert [r['step'] for r in _records(tmp_path, 'train')] == [1, 2, 3, 4]
  assert _records(tmp_path, 'train')[-1]['loss'] == 0.5


def test_train_step_reports_the_loss_and_norms_of_its_update():
  def loss_fn(params, non_trainable, batch, rng):
    del non_trainable, rng
    return jnp.mean(jnp.square(params['w'] - batch['audio'])), {}

  state = train.TrainState.create(apply_fn=None, params={'w': jnp.zeros(4)},
                                  tx=optax.sgd(0.5), loss_fn=loss_fn)
  new, metrics = jax.jit(train.train_step)(state, {'audio': jnp.ones(4)}, jax.random.key(0))
  np.testing.assert_allclose(metrics['loss'], 1.0)
  np.testing.assert_allclose(metrics['grad_norm'], 1.0)  # d/dw mean((w-1)^2) = -0.5 each
  np.testing.assert_allclose(new.params['w'], 0.25)
  np.testing.assert_allclose(metrics['update_norm'], 0.5)
  np.testing.assert_allclose(metrics['param_norm'], 0.5)
  assert int(new.step) == 1


# --- Short real runs ------------------------------------------------------------------------

def _records(workdir, split):
  with open(workdir / 'metrics.jsonl') as f:
    return [r for r in map(json.loads, f) if r['split'] == split]


@pytest.fixture(scope='module')
def time_ae_run(tiny_data_dir, tmp_path_factory):
  """time_ae tiny for 40 steps, validation on the whole split every 10, compiles logged."""
  config = time_ae_config.get_config('tiny')
  config.data.update(name='synthetic_music/tiny', data_dir=str(tiny_data_dir))
  config.update(steps=40, eval_every=10, checkpoint_every=20, log_every=1, eval_batches=0)
  workdir = tmp_path_factory.mktemp('time_ae') / 'wd'
  handler = trained_codec.LogMessages()
  logging.getLogger('jax').addHandler(handler)
  try:
    with jax.log_compiles(True):
      checksum = train.train_and_evaluate(config, str(workdir))
  finally:
    logging.getLogger('jax').removeHandler(handler)
  return workdir, checksum, handler.messages


def test_train_and_eval_steps_compile_once(time_ae_run):
  _, _, messages = time_ae_run
  compiled = [m for m in messages if m.startswith('Compiling ')]
  assert sum('jit(train_step)' in m for m in compiled) == 1, compiled
  assert sum('jit(_autoencoder_eval)' in m for m in compiled) == 1, compiled


def test_reference_run_compiled_its_step_once(reference_run):
  """The same in a launcher subprocess: 12 steps, 2 evaluations (JAX_LOG_COMPILES=1)."""
  stderr = reference_run.result.stderr
  assert len(re.findall(r'Compiling jit\(train_step\)', stderr)) == 1
  assert len(re.findall(r'Compiling jit\(_autoencoder_eval\)', stderr)) == 1


def test_a_weak_typed_initialiser_does_not_compile_the_step_twice(tmp_path_factory,
                                                                  tiny_data_dir):
  # stft_codec's hyperprior initialises a parameter from a Python float (weakly typed); the
  # state the first step returns is strongly typed, so without train.py's cast at init the
  # step compiled again at step 2 (the tiny run shared with the codec tests).
  compiled = trained_codec.compiled(trained_codec.stft_workdir(tmp_path_factory, tiny_data_dir))
  assert sum('jit(train_step)' in m for m in compiled) == 1, compiled
  assert sum('jit(_rate_codec_eval)' in m for m in compiled) == 1, compiled


def test_the_loss_falls_on_a_short_run(time_ae_run):
  workdir, _, _ = time_ae_run
  train_losses = [r['loss'] for r in _records(workdir, 'train')]
  assert len(train_losses) == 40
  assert np.mean(train_losses[-5:]) < np.mean(train_losses[:5])
  validation = [r['loss'] for r in _records(workdir, 'validation')]
  assert [r['step'] for r in _records(workdir, 'validation')] == [10, 20, 30, 40]
  # Over seeds 0-2 the last validation loss is 0.74-0.90 of the first (a 0.85 bound failed on
  # seed 1) and single evaluations fell by as little as 1.5 %: bounds that another processor's
  # weights could cross. The last evaluation is the lowest, by >= 5.8 % on every seed.
  assert validation[-1] == min(validation), validation
  assert validation[-1] < validation[0], validation


def test_a_log_mel_classifier_beats_chance(tiny_data_dir, tmp_path):
  """60 steps on 16 training tracks (2 per style); validation: 8 unseen tracks, 48 segments."""
  config = classifier_config.get_config('tiny,logmel')
  config.data.update(name='synthetic_music/tiny', data_dir=str(tiny_data_dir))
  config.update(steps=60, batch_size=8, crop_s=1.0, eval_every=60, checkpoint_every=60,
                log_every=10, eval_batches=0)
  config.optimizer.lr = 3e-3
  config.model.update(conv_channels=16, hidden=32, n_mels=32)
  train.train_and_evaluate(config, str(tmp_path / 'wd'))
  final = _records(tmp_path / 'wd', 'validation')[-1]
  assert final['examples'] == 48
  assert final['accuracy'] > 2 / 8, final  # chance is 1/8
  train_records = _records(tmp_path / 'wd', 'train')
  assert train_records[-1]['loss'] < train_records[0]['loss']


# --- Launch records (launches.jsonl) --------------------------------------------------------

def test_a_run_records_its_launch(time_ae_run, tiny_data_dir):
  workdir, _, _ = time_ae_run
  (launch,) = provenance.read_launches(str(workdir))
  assert launch['start_step'] == 0
  assert launch['config'] == json.loads((workdir / 'config.json').read_text())
  assert launch['fmacomp_version'] == fmacomp.__version__
  assert launch['processes'] == jax.process_count() == 1
  assert launch['devices']['count'] == jax.device_count()
  assert launch['devices']['kind'] == jax.devices()[0].device_kind
  assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00', launch['time_utc'])
  builder = datasets.get_builder('synthetic_music/tiny', data_dir=str(tiny_data_dir))
  assert launch['data'] == builder.data_identity()
  assert launch['data']['examples']['train'] > 0
  repo = pathlib.Path(fmacomp.__file__).resolve().parents[1]
  if shutil.which('git') and (repo / '.git').exists():
    # Other commits may land while the tests run: the recorded one is HEAD or an ancestor.
    assert re.fullmatch(r'[0-9a-f]{40}', launch['git_commit'])
    assert isinstance(launch['git_dirty'], bool)
    subprocess.run(['git', 'merge-base', '--is-ancestor', launch['git_commit'], 'HEAD'],
                   cwd=repo, check=True, capture_output=True)


def test_git_state_is_none_outside_a_checkout_or_without_git(tmp_path, monkeypatch):
  assert provenance.git_state(str(tmp_path)) == (None, None)
  # A folder inside a checkout (e.g. site-packages of a venv in the repository) is not one.
  repo = pathlib.Path(fmacomp.__file__).resolve().parents[1]
  assert provenance.git_state(str(repo / 'fmacomp')) == (None, None)
  monkeypatch.setenv('PATH', str(tmp_path))  # no git executable at all
  assert provenance.git_state(str(repo)) == (None, None)


def test_append_launch_never_touches_earlier_lines(tmp_path, monkeypatch):
  provenance.append_launch(str(tmp_path), {'start_step': 0})
  provenance.append_launch(str(tmp_path), {'start_step': 5})
  path = tmp_path / provenance.LAUNCHES_FILE
  before = path.read_bytes()
  with pytest.raises(TypeError):  # a record that cannot be written leaves the file as it was
    provenance.append_launch(str(tmp_path), {'start_step': object()})

  def crash(*args):
    raise KeyboardInterrupt('killed mid-write')

  monkeypatch.setattr(os, 'replace', crash)
  with pytest.raises(KeyboardInterrupt):
    provenance.append_launch(str(tmp_path), {'start_step': 9})
  monkeypatch.undo()
  assert path.read_bytes() == before
  assert os.listdir(tmp_path) == [provenance.LAUNCHES_FILE]  # no temporary file left behind
  assert [r['start_step'] for r in provenance.read_launches(str(tmp_path))] == [0, 5]
