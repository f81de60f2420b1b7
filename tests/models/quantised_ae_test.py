"""QuantisedAE: the reference autoencoders with a quantised latent. Geometry (W x hop samples
<-> W frames), receptive fields within `context()`, the symbol path equal to the call path, and
a time_ae fine-tuned from the session's trained reference run coding real files."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from fmacomp.configs import quantised_ae as config_lib
from fmacomp.fmac import compress
from fmacomp.fmac import model_store
from fmacomp import models
from fmacomp.training import checkpointing
from fmacomp.training import tasks
from fmacomp.training import train

from tests.models import model_checks

KEY = jax.random.key(0)


def tiny(ae):
  config = config_lib.get_config(f'tiny,ae={ae}')
  return config, models.get_model('quantised_ae', **tasks.model_kwargs(config.model))


def random_variables(model, x, seed=0):
  """Generic weights of the model's shapes, drawn in numpy (no initialiser to compile)."""
  shapes = jax.eval_shape(functools.partial(model.init, train=False), KEY, x)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype), shapes)


@pytest.mark.parametrize('ae', ['time_ae', 'freq_ae'])
def test_geometry_receptive_fields_and_symbol_path(ae):
  config, model = tiny(ae)
  assert model.hop == {'time_ae': 32, 'freq_ae': 512}[ae]
  assert round(config.crop_s * config.sample_rate) % model.hop == 0
  frames = 24
  x = jnp.asarray(0.1 * np.random.default_rng(1).standard_normal((1, frames * model.hop)),
                  jnp.float32)
  variables = random_variables(model, x)
  out = jax.jit(functools.partial(model.apply, train=False))(variables, x)
  assert out['latent'].shape == (1, frames, model.latent_channels)
  assert out['prediction'].shape == x.shape
  assert out['domain_prediction'].shape == out['domain_target'].shape
  symbols = model.apply(variables, x, method='to_symbols')
  audio = model.apply(variables, symbols, method='from_symbols')
  np.testing.assert_allclose(audio, out['prediction'], atol=1e-4)
  model_checks.assert_context_bounds_receptive_fields(model, variables, x, frames)


def test_time_ae_fine_tuned_from_its_run_codes_files(reference_run, tiny_data_dir, tmp_path):
  config = config_lib.get_config(f'tiny,ae=time_ae,ae_workdir={reference_run.workdir}')
  config.data.data_dir = str(tiny_data_dir)
  config.steps, config.eval_every, config.checkpoint_every = 4, 4, 4
  workdir = tmp_path / 'qae'
  train.train_and_evaluate(config, str(workdir))
  trained, _ = checkpointing.load_params(str(workdir))
  ae, _ = checkpointing.load_params(str(reference_run.workdir))
  # Started from the autoencoder: the statistics are its own, the weights moved only a little.
  np.testing.assert_array_equal(trained['norm']['ae']['mean'], ae['norm']['mean'])
  kernel, start = trained['params']['ae']['enc_conv']['kernel'], ae['params']['enc_conv']['kernel']
  assert 0 < np.abs(kernel - start).max() < 0.1 * np.abs(start).max()
  codec = model_store.load(str(workdir))
  assert codec.point.model == 'quantised_ae' and np.isfinite(codec.point.kbps)
  x = np.random.default_rng(2).standard_normal((33075, 2)).astype(np.float32) * 0.1
  sf.write(tmp_path / 'in.wav', x, 22050)  # 1.5 s of stereo at another rate
  for chunk_s in (100.0, 0.5):
    compress.encode_file(tmp_path / 'in.wav', tmp_path / f'{chunk_s}.fmac', codec, chunk_s)
    compress.decode_file(tmp_path / f'{chunk_s}.fmac', tmp_path / f'{chunk_s}.wav', codec,
                         subtype='FLOAT')
  whole, _ = sf.read(tmp_path / '100.0.wav')
  chunked, _ = sf.read(tmp_path / '0.5.wav')
  assert whole.shape == x.shape
  np.testing.assert_allclose(chunked, whole, atol=1e-4)
