"""Checks that several model tests share: training works, receptive fields stay in bounds."""

import jax
import jax.numpy as jnp
import numpy as np
import optax


def assert_gradients_flow_and_loss_falls(model, params, x, ratio, extra=None, steps=20):
  """A few Adam steps on the autoencoder's MSE: every parameter gets a finite, non-zero
  gradient at the first step and the loss ends below `ratio` x its first value.

  `extra` holds non-trainable collections (e.g. {'norm': ...}) applied beside the params.
  """
  tx = optax.adam(1e-2)

  def loss_fn(params):
    out = model.apply({'params': params, **(extra or {})}, x, train=True)
    return jnp.mean(jnp.square(out['prediction'] - out['target']))

  @jax.jit
  def step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss, grads

  opt_state = tx.init(params)
  losses = []
  for i in range(steps):
    params, opt_state, loss, grads = step(params, opt_state)
    losses.append(float(loss))
    if i == 0:
      for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(g)) and float(jnp.abs(g).max()) > 0, path
  assert losses[-1] < ratio * losses[0], losses


def assert_context_bounds_receptive_fields(model, variables, x, frames):
  """`model.context()` bounds what one latent frame sees of the audio (encoder, in samples)
  and what one frame of output audio sees of the latent (decoder, in frames), measured by
  the non-zero entries of a gradient at the middle frame. Returns how many latent frames
  before the middle one the decoder's output actually reads."""
  encoder_samples, decoder_frames = model.context()
  mid = frames // 2
  grad = jax.jit(jax.grad(lambda x: model.apply(variables, x, method='encode')[0, mid].sum()))(x)
  reach = np.nonzero(np.asarray(grad[0]))[0]
  assert mid * model.hop - reach.min() <= encoder_samples
  assert reach.max() - ((mid + 1) * model.hop - 1) <= encoder_samples
  z = model.apply(variables, x, method='encode')
  grad = jax.jit(jax.grad(lambda z: model.apply(variables, z, method='decode')[
      0, mid * model.hop:(mid + 1) * model.hop].sum()))(z)
  reach = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1))[0]
  assert mid - reach.min() <= decoder_frames and reach.max() - mid <= decoder_frames
  return int(mid - reach.min())
