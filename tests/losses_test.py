"""Losses: 0 on a clean copy, larger for worse copies, finite gradients on silence, jit-able."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmacomp import losses
from fmacomp import metrics

RATE = 16000
LOSSES = {  # jitted: one compiled program per shape instead of many small eager ones
    'l1': jax.jit(losses.waveform_l1),
    'mse': jax.jit(losses.waveform_mse),
    'stft': jax.jit(losses.multi_resolution_stft_loss),
    'mel': jax.jit(functools.partial(losses.multiscale_mel_loss, sample_rate=RATE)),
}


def music(batch=2, length=8192, seed=0):
  """A chord with an envelope plus a little noise: [B, T] float32."""
  rng = np.random.default_rng(seed)
  t = np.arange(length) / RATE
  x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (220.0, 277.2, 329.6, 1760.0))
  x = 0.2 * x * np.exp(-2 * t) + 0.003 * rng.standard_normal((batch, length))
  return jnp.asarray(x, jnp.float32)


@pytest.mark.parametrize('name', sorted(LOSSES))
def test_clean_copy_scores_zero_and_noise_scores_more(name):
  loss = LOSSES[name]
  x = music()
  noise = jnp.asarray(np.random.default_rng(1).standard_normal(x.shape), jnp.float32)
  values = [float(loss(x, x + level * noise)) for level in (0.0, 0.003, 0.03, 0.3)]
  assert values[0] == pytest.approx(0.0, abs=1e-6)
  assert values[1] > 1e3 * max(values[0], 1e-12)
  assert values[1] < values[2] < values[3], values


@pytest.mark.parametrize('name', ['stft', 'mel'])
def test_spectral_losses_see_a_lost_band_that_waveform_error_barely_weighs(name):
  x = music()
  spec = jnp.fft.rfft(x, axis=-1)
  lowpassed = jnp.fft.irfft(spec.at[..., spec.shape[-1] // 4:].set(0), n=x.shape[-1], axis=-1)
  loss = LOSSES[name]
  # The 1760 Hz partial is about a quarter of the energy; losing everything above 2 kHz is a
  # large spectral change, and a 0.5 dB gain change is a small one.
  assert float(loss(x, lowpassed)) > 3 * float(loss(x, x * 10 ** (0.5 / 20)))


def test_spectral_losses_ignore_a_time_shift_more_than_waveform_losses():
  x = music(length=8193)
  shifted, x = x[:, 1:], x[:, :-1]
  ratio_wave = float(LOSSES['l1'](x, shifted)) / float(LOSSES['l1'](x, 0 * x))
  ratio_mel = float(LOSSES['mel'](x, shifted)) / float(LOSSES['mel'](x, 0 * x))
  assert ratio_mel < 0.2 * ratio_wave


@pytest.mark.parametrize('name', sorted(LOSSES))
def test_gradients_are_finite_on_silence(name):
  x = music()
  zero = jnp.zeros_like(x)
  value_and_grad = jax.jit(jax.value_and_grad(LOSSES[name], argnums=1))  # compiled once
  for target, prediction in ((zero, zero), (zero, x), (x, zero)):
    value, grad = value_and_grad(target, prediction)
    assert np.isfinite(float(value))
    assert np.isfinite(np.asarray(grad)).all()
  value, grad = value_and_grad(zero, x)
  assert float(value) > 0 and float(jnp.abs(grad).max()) > 0  # silence is asked for


def test_mel_loss_at_44k_is_the_pinned_mel_distance():
  rate = 44100
  x = np.asarray(music(batch=1, length=22050)[0])
  y = x + 0.01 * np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
  loss = float(jax.jit(losses.multiscale_mel_loss, static_argnums=2)(x, y, rate))
  assert loss == pytest.approx(metrics.mel_distance(x, y, rate), rel=2e-3)


def test_shapes_and_batch_mean():
  x, y = music(batch=3), music(batch=3, seed=5)
  together = float(LOSSES['stft'](x, y))
  apart = np.mean([float(LOSSES['stft'](x[i], y[i])) for i in range(3)])
  assert together == pytest.approx(apart, rel=1e-4)
