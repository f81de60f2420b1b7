"""fmacomp.training.checkpointing: the params checksum, the two managers' keep policies, and
load_params of a workdir's best and latest checkpoints, on small pytrees (no training)."""

import hashlib

import grain
import jax
import numpy as np
import pytest

from fmacomp import errors
from fmacomp.training import checkpointing

# The checksum of `_params()`, pinned: .fmac headers carry its first 16 bytes and CDF tables
# record it, so a change of the recipe would orphan every file and table written before it.
KNOWN_CHECKSUM = '33e8de33dfc2583e418b7374f4bffb7316b26bc0adb21293b95900820e5f6e15'


def _params():
  return {'dense': {'kernel': np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
                    'bias': np.array([0.25, -1.5, 3.0], np.float32)},
          'scale': np.array(2.0, np.float32)}


def test_checksum_has_its_known_value_and_recipe():
  digest = hashlib.sha256()
  for path in ("['dense']['bias']", "['dense']['kernel']", "['scale']"):  # sorted key paths
    leaf = _params()
    for key in path[2:-2].split("']['"):
      leaf = leaf[key]
    digest.update(path.encode())
    digest.update(leaf.astype('<f4').tobytes())
  assert checkpointing.params_checksum(_params()) == digest.hexdigest() == KNOWN_CHECKSUM


def test_checksum_ignores_insertion_order_and_sees_which_leaf_holds_what():
  params = _params()
  reordered = {'scale': params['scale'],
               'dense': {'bias': params['dense']['bias'], 'kernel': params['dense']['kernel']}}
  assert checkpointing.params_checksum(reordered) == KNOWN_CHECKSUM
  swapped = _params()
  swapped['dense']['bias'], swapped['scale'] = swapped['scale'], swapped['dense']['bias']
  assert checkpointing.params_checksum(swapped) != KNOWN_CHECKSUM


def test_checksum_sees_the_dtype_and_every_bit():
  as_double = jax.tree.map(lambda x: x.astype(np.float64), _params())
  as_bfloat = jax.tree.map(lambda x: x.astype(jax.numpy.bfloat16), _params())
  seen = {KNOWN_CHECKSUM, checkpointing.params_checksum(as_double),
          checkpointing.params_checksum(as_bfloat)}
  for bit in (0, 31, 64 + 17):  # lowest mantissa bit, a sign bit, a bit of the third value
    flipped = _params()
    raw = flipped['dense']['kernel'].view(np.uint8).reshape(-1)
    raw[bit // 8] ^= np.uint8(1 << (bit % 8))
    seen.add(checkpointing.params_checksum(flipped))
  assert len(seen) == 6


def _state(step):
  """A train-state-like pytree whose every leaf says which step saved it."""
  return {'step': np.int32(step), 'params': {'w': np.full(3, step, np.float32)},
          'non_trainable': {'norm': {'mean': np.float32(10 * step)}}}


def _iterator():
  return iter(grain.MapDataset.range(1000).to_iter_dataset())


@pytest.fixture
def run(tmp_path):
  """A workdir with steps 1-5 saved (latest keeps 2) and validation losses whose best is 2."""
  checkpoints = checkpointing.RunCheckpoints(tmp_path, keep=2, async_save=False)
  iterator = _iterator()
  for step, val_loss in zip(range(1, 6), [3.0, 1.0, 2.0, 1.5, 4.0]):
    next(iterator)  # one batch a step
    checkpoints.save(step, _state(step), iterator)
    checkpoints.save_best(step, _state(step), val_loss)
  checkpoints.wait()
  yield tmp_path, checkpoints
  checkpoints.close()


def _steps(workdir, which):
  folder = workdir / 'checkpoints' / which
  return sorted(int(s.name) for s in folder.iterdir() if s.name.isdigit())


def test_latest_keeps_the_newest_n_and_best_the_lowest_validation_loss(run):
  workdir, checkpoints = run
  assert _steps(workdir, checkpointing.LATEST) == [4, 5]
  assert _steps(workdir, checkpointing.BEST) == [2]  # never deleted by later, worse steps
  assert checkpoints.latest_step() == 5


def test_restore_brings_back_the_state_and_the_input_position(run):
  _, checkpoints = run
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype),
                          _state(0))
  iterator = _iterator()
  state = checkpoints.restore(4, abstract, iterator)
  np.testing.assert_array_equal(state['params']['w'], np.full(3, 4, np.float32))
  assert next(iterator) == 4  # steps 1-4 consumed elements 0-3


def test_load_params_of_the_best_and_of_the_latest(run):
  workdir, _ = run
  variables, step = checkpointing.load_params(str(workdir))
  assert step == 2
  assert set(variables) == {'params', 'norm'}  # params and the collections, no step
  np.testing.assert_array_equal(variables['params']['w'], np.full(3, 2, np.float32))
  assert variables['norm']['mean'] == 20 and isinstance(variables['norm']['mean'], np.ndarray)
  variables, step = checkpointing.load_params(str(workdir), which=checkpointing.LATEST)
  assert step == 5 and variables['norm']['mean'] == 50


def test_load_params_falls_back_to_the_latest_and_reads_old_checkpoints(tmp_path):
  # No validation yet: only latest checkpoints exist.
  checkpoints = checkpointing.RunCheckpoints(tmp_path / 'new', keep=1, async_save=False)
  checkpoints.save(3, _state(3), _iterator())
  checkpoints.close()
  assert checkpointing.load_params(str(tmp_path / 'new'))[1] == 3
  # A checkpoint written before TrainState.non_trainable was renamed from `extra` (the shipped
  # models) keeps its collections.
  old = {'params': _state(7)['params'], 'extra': _state(7)['non_trainable']}
  checkpoints = checkpointing.RunCheckpoints(tmp_path / 'old', async_save=False)
  checkpoints.save_best(7, old, 1.0)
  checkpoints.close()
  variables, step = checkpointing.load_params(str(tmp_path / 'old'))
  assert step == 7 and variables['norm']['mean'] == 70


def test_a_workdir_without_checkpoints_is_a_clear_error(tmp_path):
  for workdir in (tmp_path, tmp_path / 'missing'):
    with pytest.raises(errors.InputError, match='no checkpoint found') as info:
      checkpointing.load_params(str(workdir))
    assert info.value.path == str(workdir)
  (tmp_path / 'checkpoints' / 'best').mkdir(parents=True)  # folders, but no step in them
  (tmp_path / 'checkpoints' / 'latest').mkdir()
  with pytest.raises(errors.InputError, match='no checkpoint found'):
    checkpointing.load_params(str(tmp_path))
  with pytest.raises(errors.InputError, match='no config.json'):
    checkpointing.load_config(str(tmp_path))
