"""Tests for fmacomp.models.layers: each fast layer equals the Flax layer it replaces.

Same parameter tree and shapes (so checkpoints load either way), and the same outputs and
gradients (parameters and input) to ~1e-5, with strides that leave remainders, kernels that
are not a multiple of the stride, and 1-D and 2-D inputs.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmacomp.models import layers

CASES = [  # (input shape [B, *spatial, C], features, kernel, strides)
    ((2, 37, 3), 4, (8,), (4,)),  # remainder 1, kernel = 2 strides
    ((2, 1000, 1), 5, (48,), (20,)),  # kernel % stride != 0
    ((2, 17, 6), 3, (1,), (1,)),  # a 1x1 conv
    ((2, 13, 17, 3), 4, (5, 5), (2, 2)),  # freq_ae's encoder: odd sizes, 5x5 / 2
    ((2, 14, 18, 2), 8, (5, 5), (2, 2)),
    ((1, 9, 11, 2), 3, (3, 4), (3, 2)),  # a different kernel and stride per axis
]


def key(seed):
  return jax.random.key(seed, impl='rbg')


def assert_equal_to_flax(layer, flax_layer, shape):
  """Same param tree; outputs and the gradients of a random projection equal to ~1e-5."""
  x = jax.random.normal(key(1), shape)
  params = flax_layer.init(key(2), x)
  params = jax.tree.map(lambda p: jax.random.normal(key(3), p.shape), params)  # nonzero bias
  assert jax.tree.map(jnp.shape, layer.init(key(2), x)) == jax.tree.map(jnp.shape, params)
  want = flax_layer.apply(params, x)
  cotangent = jax.random.normal(key(4), want.shape)

  @jax.jit
  def run(params, x):
    def loss(module, params, x):  # relu: the gradients see the forward values too
      y = module.apply(params, x)
      return jnp.sum(jax.nn.relu(y) * cotangent), y
    return [jax.value_and_grad(lambda p, x: loss(m, p, x), argnums=(0, 1), has_aux=True)(
        params, x) for m in (layer, flax_layer)]

  ((_, got), got_grads), ((_, flax_out), want_grads) = run(params, x)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, flax_out, atol=1e-5, rtol=1e-5)
  for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize('shape,features,kernel,strides', CASES)
def test_matmul_conv_equals_flax_conv(shape, features, kernel, strides):
  assert_equal_to_flax(layers.MatmulConv(features, kernel, strides),
                       nn.Conv(features, kernel, strides=strides, padding='VALID'), shape)


@pytest.mark.parametrize('shape,features,kernel,strides', CASES)
def test_phase_conv_equals_flax_conv(shape, features, kernel, strides):
  assert_equal_to_flax(layers.PhaseConv(features, kernel, strides),
                       nn.Conv(features, kernel, strides=strides, padding='VALID'), shape)


@pytest.mark.parametrize('shape,features,kernel,strides', CASES)
def test_matmul_conv_transpose_equals_flax_conv_transpose(shape, features, kernel, strides):
  assert_equal_to_flax(layers.MatmulConvTranspose(features, kernel, strides),
                       nn.ConvTranspose(features, kernel, strides=strides, padding='VALID'),
                       shape)
