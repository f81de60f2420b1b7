"""Every config file loads at every size, keeps its full config's structure, and builds its model.

Config files are found on disk (fmacomp/configs/*.py but common.py), so a new one is covered
without editing this file. Model shapes go through `jax.eval_shape`: nothing is computed.
"""

import importlib.util
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from fmacomp.configs import freq_ae
from fmacomp import models
from fmacomp.training import sweep
from fmacomp.training import tasks

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / 'fmacomp' / 'configs'
FILES = sorted(p.stem for p in CONFIG_DIR.glob('*.py') if p.stem not in ('__init__', 'common'))
N_CLASSES = 8


def load(name):
  """The config module as launchers load it: from its file, not as a package import."""
  spec = importlib.util.spec_from_file_location(f'config_{name}', CONFIG_DIR / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def args_of(name):
  """Every argument string a config documents: sizes, plus the classifier's log-mel frontend."""
  extra = ['logmel', 'tiny,logmel', 'quick,logmel'] if name == 'classifier' else []
  return ['', 'quick', 'tiny'] + extra


def structure(config):
  """{dotted key: type name} of every leaf, references resolved."""
  flat = {}

  def walk(prefix, node):
    for key, value in node.items():
      if isinstance(value, (dict, ml_collections.ConfigDict)):
        walk(f'{prefix}{key}.', value)
      else:
        flat[prefix + key] = type(value).__name__

  walk('', config.copy_and_resolve_references())
  return flat


def test_the_config_files_are_found():
  assert {'freq_ae', 'time_ae', 'classifier'} <= set(FILES)


@pytest.mark.parametrize('name', FILES)
def test_every_size_loads_and_keeps_the_full_structure(name):
  module = load(name)
  full = structure(module.get_config(''))
  for arg in args_of(name):
    config = module.get_config(arg)
    assert structure(config) == full, arg
    assert config.to_json()  # train.py writes it to config.json
    # One source of truth for the audio constants: a size that changes the rate moves the model.
    assert config.model.sample_rate == config.sample_rate, arg
    if arg in ('tiny', 'quick'):
      assert config.steps < module.get_config('').steps


def _strided(name):
  return 'strides' in load(name).get_config('').model


@pytest.mark.parametrize('name', [n for n in FILES if _strided(n)])
def test_the_crop_follows_the_strides_and_the_rate(name):
  """A strided model's crop is a whole number of latent frames (hop = product of the strides),
  derived from the strides and the rate, so changing either (a flag, a sweep) moves the crop."""
  module = load(name)
  for arg in ('', 'quick', 'tiny'):
    config = module.get_config(arg)
    hop = math.prod(config.model.strides)
    frames = config.crop_s * config.sample_rate / hop
    assert frames == pytest.approx(round(frames), abs=1e-9) and frames >= 64, arg
    config.model.strides = tuple(config.model.strides) + (2,)  # twice the hop
    assert config.crop_s * config.sample_rate / (2 * hop) == pytest.approx(frames), arg
    config.sample_rate *= 2
    assert config.model.sample_rate == config.sample_rate, arg
    assert config.crop_s * config.sample_rate / (2 * hop) == pytest.approx(frames), arg
    assert json.loads(config.to_json())['crop_s'] == config.crop_s, arg  # what train.py writes
    config.crop_s = 0.5  # an explicit crop (a flag) replaces the rule
    config.model.strides = (4, 4)
    assert config.crop_s == 0.5, arg


@pytest.mark.parametrize('name', FILES)
def test_bad_arguments_raise(name):
  with pytest.raises(ValueError, match='nope'):
    load(name).get_config('nope=1')
  with pytest.raises(ValueError, match='at most one'):
    load(name).get_config('tiny,quick')


@pytest.mark.parametrize('name', [n for n in FILES if hasattr(load(n), 'sweep')])
def test_every_sweep_run_overrides_existing_keys(name):
  module = load(name)
  base = module.get_config('tiny')
  runs = module.sweep()
  assert runs and len({sweep.run_name(r) for r in runs}) == len(runs)
  for overrides in runs:
    config = sweep.run_config(base, overrides)  # raises on a key the config lacks
    flat = structure(config)
    assert flat.keys() == structure(base).keys()
    for key, value in overrides.items():
      assert _get(config, key) == value


def _get(config, dotted):
  for part in dotted.split('.'):
    config = config[part]
  return config


def _size(arg):
  """'tiny', 'quick' or '' (full) from an argument string."""
  words = arg.split(',')
  return 'tiny' if 'tiny' in words else 'quick' if 'quick' in words else ''


def _model(config, arg):
  """The config's model, as tasks.make_task builds it (no dataset: the classifier gets
  N_CLASSES, and a time_ae encoder of its own size)."""
  kwargs = tasks.model_kwargs(config.model)
  if config.model.name == 'classifier':
    kwargs['n_classes'] = N_CLASSES
    if kwargs['frontend'] == 'latent':
      encoder = load('time_ae').get_config(_size(arg))
      assert encoder.sample_rate == config.sample_rate
      kwargs.update(encoder='time_ae', encoder_kwargs=tasks.model_kwargs(encoder.model))
  return models.get_model(config.model.name, **kwargs)


def _shapes(config, arg=''):
  """(variables, outputs) shapes of the config's model on one crop, through eval_shape."""
  model = _model(config, arg)
  crop = jnp.zeros((1, int(round(config.crop_s * config.sample_rate))), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), crop)
  outputs = jax.eval_shape(model.apply, variables, crop)
  return variables, outputs


@pytest.mark.parametrize('name', FILES)
def test_every_size_builds_its_model(name):
  module = load(name)
  for arg in args_of(name):
    config = module.get_config(arg)
    variables, outputs = _shapes(config, arg)
    assert variables['params'], arg
    if config.model.name == 'classifier':
      assert outputs.shape == (1, N_CLASSES), arg
    else:
      assert outputs['prediction'].shape == outputs['target'].shape, arg
      assert outputs['latent'].ndim == 3, arg


@pytest.mark.parametrize('latent', freq_ae.LATENT_SIZES)
def test_freq_ae_full_latents_are_c_x_126(latent):
  _, outputs = _shapes(freq_ae.get_config(f'latent={latent}'))
  assert outputs['latent'].shape == (1, 126, latent)  # [B, frames, C]: C x 1 x 126
  assert outputs['target'].shape == (1, 257, 513, 2)  # [B, bins, frames, re/im]


def test_time_ae_and_classifier_full_shapes():
  _, outputs = _shapes(load('time_ae').get_config(''))
  assert outputs['latent'].shape == (1, 255, 32)  # 65,536 samples -> 32 x 255
  for arg in ('', 'logmel'):
    _, logits = _shapes(load('classifier').get_config(arg), arg)
    assert logits.shape == (1, N_CLASSES)
