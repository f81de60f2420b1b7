"""tasks.augment: one draw per crop, gains within their range, polarity, mixing and silence."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fmacomp.configs import stft_codec as stft_codec_config
from fmacomp.training import tasks


def config(**kw):
  fields = dict(mix=0.0, gain_db=(0.0, 0.0), polarity=False, silence=0.0)
  fields.update(kw)
  return ml_collections.ConfigDict(fields)


def crops(batch=256, length=64):
  rng = np.random.default_rng(0)
  return jnp.asarray(0.1 * rng.uniform(0.1, 1.0, (batch, 1)) * rng.standard_normal(
      (batch, length)), jnp.float32)


def test_identity_when_switched_off():
  x = crops()
  np.testing.assert_allclose(tasks.augment(x, jax.random.key(0), config()), x, rtol=1e-6)


def test_each_crop_gets_one_gain_in_range_and_a_polarity():
  x = crops()
  y = np.asarray(tasks.augment(x, jax.random.key(1), config(gain_db=(-30.0, -6.0),
                                                                polarity=True)))
  ratio = y / np.asarray(x)  # one value per crop
  np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-5)
  gain_db = 20 * np.log10(np.abs(ratio[:, 0]))
  assert gain_db.min() >= -30.001 and gain_db.max() <= -5.999 and np.ptp(gain_db) > 15
  assert 0.35 < np.mean(ratio[:, 0] < 0) < 0.65


def test_mixing_and_silence():
  x = crops()
  y = np.asarray(tasks.augment(x, jax.random.key(2), config(mix=1.0)))
  np.testing.assert_allclose(y, np.clip(x + jnp.roll(x, 1, axis=0), -1, 1), atol=1e-6)
  y = np.asarray(tasks.augment(x, jax.random.key(3), config(silence=0.25)))
  silent = ~y.any(axis=1)
  assert 0.15 < silent.mean() < 0.35
  np.testing.assert_allclose(y[~silent], np.asarray(x)[~silent], rtol=1e-6)


def test_full_config_adds_silence_only_and_tiny_only_flips_polarity():
  full, tiny = (stft_codec_config.get_config(a) for a in ('', 'tiny'))
  assert full.augment.silence > 0 and full.augment.mix == 0 and not full.augment.polarity
  x = crops()
  y = tasks.augment(x, jax.random.key(4), tiny.augment)
  np.testing.assert_allclose(np.abs(y), np.abs(x), rtol=1e-6)
