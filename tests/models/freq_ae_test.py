"""Tests for fmacomp.models.freq_ae: reference shapes, output padding, consistency, training.

Full reference sizes go through `jax.eval_shape` (no compute); real runs use a tiny config
(n_fft 128, narrow layers, 2,000-sample crops) and jitted calls, with 'rbg' keys because
threefry's initialisers are slow to compile on CPU.
"""


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmacomp import audio
from fmacomp import models
from fmacomp.models import freq_ae
from fmacomp.models import layers

from tests.models import model_checks

LATENT_SIZES = (512, 256, 128, 64, 32)
TINY = dict(latent_channels=6, n_fft=128, hop=32, widths=(3, 5))


def key(seed=0):
  return jax.random.key(seed, impl='rbg')


def music(batch, length, rate=8000, seed=0):
  """Deterministic test audio: a few decaying partials plus a little noise, [batch, length]."""
  rng = np.random.default_rng(seed)
  t = np.arange(length) / rate
  x = np.zeros((batch, length))
  for b in range(batch):
    for f in rng.uniform(80, rate / 4, size=4):
      x[b] += 0.2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * np.exp(-t * rng.uniform(0, 3))
  return jnp.asarray(x + 0.01 * rng.standard_normal(x.shape), jnp.float32)


def apply_fn(model, method=None, **kwargs):
  return jax.jit(lambda v, x: model.apply(v, x, method=method, **kwargs))


@pytest.fixture(scope='module')
def tiny():
  """A tiny model whose 2,000-sample crop leaves a remainder in both strided convs."""
  model = freq_ae.FreqAE(**TINY, crop_length=2000)
  x = music(2, 2000, seed=1)
  variables = jax.jit(model.init)(key(), x)
  return model, x, variables, apply_fn(model)(variables, x)


@pytest.mark.parametrize('channels', LATENT_SIZES)
def test_reference_shapes_at_every_latent_size(channels):
  model = models.get_model('freq_ae', latent_channels=channels, crop_length=65536)
  x = jax.ShapeDtypeStruct((2, 65536), jnp.float32)
  variables = jax.eval_shape(model.init, key(), x)
  out = jax.eval_shape(model.apply, variables, x)
  z = jax.eval_shape(lambda v, x: model.apply(v, x, method='encode'), variables, x)
  y = jax.eval_shape(lambda v, z: model.apply(v, z, method='decode'), variables, z)
  assert out['target'].shape == out['prediction'].shape == (2, 257, 513, 2)
  assert out['latent'].shape == z.shape == (2, 126, channels)
  assert y.shape == (2, 65536) and y.dtype == jnp.float32
  params = variables['params']
  assert params['enc_convs_0']['kernel'].shape == (5, 5, 2, 8)
  assert params['enc_convs_1']['kernel'].shape == (5, 5, 8, 32)
  assert params['enc_latent']['kernel'].shape == (62, 1, 32, channels)  # spans all 62 rows
  assert params['dec_latent']['kernel'].shape == (62, 1, channels, 32)
  assert params['dec_convs_1']['kernel'].shape[-1] == 2  # real and imaginary parts


def test_decoder_lands_on_the_input_length(tiny):
  model, x, variables, out = tiny
  # 2000 samples: 63 frames -> 30 -> 13; VALID transposed convs alone would give 29 and 61.
  assert out['prediction'].shape == out['target'].shape == (2, 65, 63, 2)
  assert out['latent'].shape == (2, 13, 6)
  assert apply_fn(model, 'decode')(variables, out['latent']).shape == (2, 2000)
  # Without a crop length, decode returns the length the frames come from exactly.
  free = freq_ae.FreqAE(**TINY)
  assert jax.eval_shape(lambda z: free.apply(variables, z, method='decode'),
                        out['latent']).shape == (2, (61 - 1) * 32)


def test_output_padding_matches_pytorch_semantics():
  # PyTorch's output_padding r equals explicit transposed-conv padding (k - 1, k - 1 + r).
  layer = nn.ConvTranspose(3, (5, 5), strides=(2, 2), padding='VALID')
  x = jax.random.normal(key(1), (2, 6, 9, 4))
  params = layer.init(key(2), x)
  got = layer.apply(params, x, method=lambda m, x: layers.conv_transpose_to(m, x, (16, 21)))
  explicit = nn.ConvTranspose(3, (5, 5), strides=(2, 2), padding=((4, 5), (4, 4)))
  want = explicit.apply(params, x)
  assert got.shape == want.shape == (2, 16, 21, 3)
  np.testing.assert_allclose(got, want, atol=1e-5)
  with pytest.raises(ValueError, match='cannot map'):
    layer.apply(params, x, method=lambda m, x: layers.conv_transpose_to(m, x, (17, 21)))


def test_decode_of_encode_is_the_call_path(tiny):
  model, x, variables, out = tiny
  z = apply_fn(model, 'encode')(variables, x)
  np.testing.assert_allclose(z, out['latent'], atol=1e-6)
  spec = jnp.swapaxes(out['prediction'], 1, 2)  # [B, frames, bins, 2]
  via_call = audio.istft(spec[..., 0] + 1j * spec[..., 1], 128, 32, 2000)
  decoded = apply_fn(model, 'decode')(variables, z)
  np.testing.assert_allclose(decoded, via_call, atol=1e-5)
  assert float(jnp.abs(decoded).max()) > 0


def test_target_is_the_stft_and_inverts_to_the_input(tiny):
  model, x, variables, out = tiny
  spec = audio.stft(x, 128, 32)  # [B, frames, bins]
  np.testing.assert_allclose(out['target'][..., 0], jnp.swapaxes(spec.real, 1, 2), atol=1e-5)
  np.testing.assert_allclose(out['target'][..., 1], jnp.swapaxes(spec.imag, 1, 2), atol=1e-5)
  back = apply_fn(model, 'to_audio')(variables, out['target'])
  np.testing.assert_allclose(back, x, atol=1e-4)


def test_latent_relu_and_bad_lengths(tiny):
  model, x, variables, out = tiny
  assert float(out['latent'].min()) >= 0 and float(out['latent'].max()) > 0
  linear = freq_ae.FreqAE(**TINY, latent_relu=False)
  assert float(apply_fn(linear, 'encode')(variables, x).min()) < 0
  with pytest.raises(ValueError, match='does not decode'):
    model.apply(variables, jnp.zeros((1, 5, 6)), method='decode')
  with pytest.raises(ValueError, match='too short'):
    jax.eval_shape(model.init, key(), jnp.zeros((1, 200)))


def test_every_parameter_gets_a_gradient_and_a_few_steps_lower_the_loss():
  model = freq_ae.FreqAE(**TINY)
  x = music(4, 2048, seed=3)
  params = jax.jit(model.init)(key(), x)['params']
  model_checks.assert_gradients_flow_and_loss_falls(model, params, x, 0.95)


def _random_params(layer, x):
  params = layer.init(key(2), x)
  return jax.tree.map(lambda p: jax.random.normal(key(3), p.shape), params)  # nonzero bias


@pytest.mark.parametrize('out_sizes', [(16, 21), (15, 21), (16, 22)])
def test_matmul_conv_transpose_equals_flax(out_sizes):
  # Same parameters and output as nn.ConvTranspose, with and without output padding.
  layer = layers.MatmulConvTranspose(3, (5, 5), (2, 2))
  flax_layer = nn.ConvTranspose(3, (5, 5), strides=(2, 2), padding='VALID')
  x = jax.random.normal(key(1), (2, 6, 9, 4))
  params = _random_params(flax_layer, x)
  assert jax.tree.map(jnp.shape, layer.init(key(2), x)) == jax.tree.map(jnp.shape, params)
  to = jax.jit(lambda m, p, x: m.apply(p, x, method=lambda m, x: layers.conv_transpose_to(
      m, x, out_sizes)), static_argnums=0)
  got, want = to(layer, params, x), to(flax_layer, params, x)
  assert got.shape == want.shape == (2,) + out_sizes + (3,)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_full_height_latent_layers_equal_flax():
  x = jax.random.normal(key(1), (2, 7, 11, 4))  # 7 rows, all spanned by the kernel
  conv, flax_conv = layers.FullHeightConv(6, (7, 1)), nn.Conv(6, (7, 1), padding='VALID')
  params = _random_params(flax_conv, x)
  assert jax.tree.map(jnp.shape, conv.init(key(2), x)) == jax.tree.map(jnp.shape, params)
  z = conv.apply(params, x)
  assert z.shape == (2, 1, 11, 6)
  np.testing.assert_allclose(z, flax_conv.apply(params, x), atol=1e-5, rtol=1e-5)
  up = layers.FullHeightConvTranspose(4, (7, 1))
  flax_up = nn.ConvTranspose(4, (7, 1), padding='VALID')
  params = _random_params(flax_up, z)
  assert jax.tree.map(jnp.shape, up.init(key(2), z)) == jax.tree.map(jnp.shape, params)
  y = up.apply(params, z)
  assert y.shape == (2, 7, 11, 4)
  np.testing.assert_allclose(y, flax_up.apply(params, z), atol=1e-5, rtol=1e-5)
