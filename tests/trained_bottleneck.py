"""A Bottleneck trained for real on Laplacian latents, shared by the bottleneck and .fmac tests.

Each channel has its own spread (SCALES), so a trained prior must spend bits where the spread is.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

CHANNELS = 8
MAX_SYMBOL = 15
SCALES = np.linspace(0.5, 4.0, CHANNELS).astype(np.float32)


def laplacian_latents(seed, batch, frames):
  """float32 [batch, frames, CHANNELS], Laplacian with each channel's scale."""
  rng = np.random.default_rng(seed)
  return rng.laplace(size=(batch, frames, CHANNELS)).astype(np.float32) * SCALES


def train(model, steps=300, lam=0.05, seed=0):
  """Distortion + lambda x bits per value, Adam; returns the trained variables.

  Training latents use seeds 1000 and up; tests hold out smaller seeds.
  """
  key = jax.random.key(seed)
  init = jax.jit(functools.partial(model.init, train=True))
  variables = init({'params': key, 'noise': key}, jnp.zeros((1, 4, CHANNELS)))
  optimizer = optax.adam(1e-2)
  opt_state = optimizer.init(variables)

  @jax.jit
  def step(variables, opt_state, z, key):
    def loss_fn(v):
      z_hat, bits = model.apply(v, z, train=True, rngs={'noise': key})
      return jnp.mean((z_hat - z) ** 2) + lam * jnp.mean(bits) / (z.shape[1] * CHANNELS)
    updates, opt_state = optimizer.update(jax.grad(loss_fn)(variables), opt_state)
    return optax.apply_updates(variables, updates), opt_state

  for i in range(steps):
    z = jnp.asarray(laplacian_latents(1000 + i, 16, 64))
    variables, opt_state = step(variables, opt_state, z, jax.random.fold_in(key, i))
  return variables
