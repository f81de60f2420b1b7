"""Tests for fmacomp.models.time_ae: reference shapes, the 'norm' collection, consistency."""


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmacomp import models
from fmacomp.models import layers
from fmacomp.models import time_ae

from tests.models import model_checks

TINY = dict(hidden_channels=8, latent_channels=4, kernel_size=64, stride=32)


def key(seed=0):
  return jax.random.key(seed, impl='rbg')  # threefry initialisers compile slowly on CPU


def music(batch, length, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(length) / 16000
  x = sum(0.2 * np.sin(2 * np.pi * f * t[None] + rng.uniform(0, 6, (batch, 1)))
          for f in rng.uniform(60, 3000, size=4))
  return jnp.asarray(0.05 + x + 0.01 * rng.standard_normal((batch, length)), jnp.float32)


def apply_fn(model, method=None):
  return jax.jit(lambda v, x: model.apply(v, x, method=method))


@pytest.fixture(scope='module')
def tiny():
  """A tiny model with training statistics; 4,117 samples leave a remainder of 21."""
  model = time_ae.TimeAE(**TINY, norm_mean=0.05, norm_std=0.3, crop_length=4117)
  x = music(2, 4117)
  variables = jax.jit(model.init)(key(), x)
  return model, x, variables, apply_fn(model)(variables, x)


def test_reference_shapes():
  model = models.get_model('time_ae', crop_length=65536)
  x = jax.ShapeDtypeStruct((3, 65536), jnp.float32)
  variables = jax.eval_shape(model.init, key(), x)
  out = jax.eval_shape(model.apply, variables, x)
  y = jax.eval_shape(lambda v, z: model.apply(v, z, method='decode'), variables, out['latent'])
  assert out['latent'].shape == (3, 255, 32)  # 32 x 255 = 8x fewer values than samples
  assert out['prediction'].shape == out['target'].shape == y.shape == (3, 65536)
  assert jax.tree.map(lambda s: s.shape, variables) == {
      'norm': {'mean': (), 'std': ()},
      'params': {
          'enc_conv': {'kernel': (512, 1, 64), 'bias': (64,)},
          'enc_latent': {'kernel': (1, 64, 32), 'bias': (32,)},
          'dec_latent': {'kernel': (1, 32, 64), 'bias': (64,)},
          'dec_conv': {'kernel': (512, 64, 1), 'bias': (1,)},
      }}


def test_statistics_live_in_the_norm_collection(tiny):
  model, x, variables, out = tiny
  assert float(variables['norm']['mean']) == pytest.approx(0.05)
  assert float(variables['norm']['std']) == pytest.approx(0.3)
  np.testing.assert_allclose(out['target'], (x - 0.05) / 0.3, rtol=1e-5, atol=1e-6)
  # The statistics are read from the variables (the checkpoint), not from the module fields.
  other = dict(variables, norm={'mean': jnp.float32(0.0), 'std': jnp.float32(2.0)})
  np.testing.assert_allclose(apply_fn(model)(other, x)['target'], x / 2.0, rtol=1e-6)
  with pytest.raises(Exception, match='norm'):
    model.apply({'params': variables['params']}, x)


def test_decode_of_encode_is_the_call_path_denormalised(tiny):
  model, x, variables, out = tiny
  assert out['latent'].shape == (2, 127, 4) and float(out['latent'].min()) >= 0
  z = apply_fn(model, 'encode')(variables, x)
  np.testing.assert_allclose(z, out['latent'], atol=1e-6)
  decoded = apply_fn(model, 'decode')(variables, z)
  assert decoded.shape == (2, 4117)  # output padding restores the 21 dropped samples
  np.testing.assert_allclose(decoded, out['prediction'] * 0.3 + 0.05, atol=1e-5)
  # Without a crop length, decode returns the length the frames come from exactly.
  free = time_ae.TimeAE(**TINY)
  assert jax.eval_shape(lambda z: free.apply(variables, z, method='decode'),
                        z).shape == (2, 126 * 32 + 64)
  with pytest.raises(ValueError, match='does not decode'):
    model.apply(variables, z[:, :100], method='decode')


def test_every_parameter_gets_a_gradient_and_a_few_steps_lower_the_loss():
  model = time_ae.TimeAE(**TINY, norm_mean=0.05, norm_std=0.3)
  x = music(4, 4096, seed=2)
  variables = jax.jit(model.init)(key(), x)
  params, norm = variables['params'], variables['norm']
  model_checks.assert_gradients_flow_and_loss_falls(model, params, x, 0.7,
                                                    extra={'norm': norm})


@pytest.mark.parametrize('kernel,stride,length', [(64, 32, 4117), (64, 32, 4096), (48, 20, 1000)])
def test_decoder_conv_equals_flax_conv_transpose(kernel, stride, length):
  # The matmul + overlap-add layer keeps nn.ConvTranspose's parameters and its output,
  # including the output padding of a remainder (4,117 = 127 frames + 21) and kernel % stride.
  layer = layers.MatmulConvTranspose(3, (kernel,), (stride,))
  flax_layer = nn.ConvTranspose(3, (kernel,), strides=(stride,), padding='VALID')
  frames = (length - kernel) // stride + 1
  h = jax.random.normal(key(1), (2, frames, 5))
  params = flax_layer.init(key(2), h)
  params = jax.tree.map(lambda p: jax.random.normal(key(3), p.shape), params)  # nonzero bias
  assert jax.tree.map(jnp.shape, layer.init(key(2), h)) == jax.tree.map(jnp.shape, params)
  to = lambda m, h: layers.conv_transpose_to(m, h, (length,))
  got = layer.apply(params, h, method=to)
  want = flax_layer.apply(params, h, method=to)
  assert got.shape == want.shape == (2, length, 3)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
