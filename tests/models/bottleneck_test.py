"""Bottleneck: a tiny model trained on Laplacian latents; its estimate against real ANS bytes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmacomp import errors
from fmacomp.models import bottleneck

from tests import trained_bottleneck

CHANNELS = trained_bottleneck.CHANNELS
MAX_SYMBOL = trained_bottleneck.MAX_SYMBOL
laplacian_latents = trained_bottleneck.laplacian_latents
train = trained_bottleneck.train


@functools.partial(jax.jit, static_argnums=0)
def evaluate(model, variables, z):
  """Inference: z [B, T, C] -> (z_hat, estimated bits [B], symbols), one compiled call."""
  z_hat, bits = model.apply(variables, z, train=False)
  return z_hat, bits, model.apply(variables, z, method=bottleneck.Bottleneck.to_symbols)


@pytest.fixture(scope='module')
def trained():
  model = bottleneck.Bottleneck(channels=CHANNELS, max_symbol=MAX_SYMBOL)
  variables = train(model)
  return model, variables, bottleneck.cdf_tables(model, variables)


def empirical_entropy_bits(symbols):
  """Sum over channels of count x entropy of the held-out histogram (an optimistic bound)."""
  total = 0.0
  for c in range(symbols.shape[1]):
    _, counts = np.unique(symbols[:, c], return_counts=True)
    total -= float(np.sum(counts * np.log2(counts / counts.sum())))
  return total


def test_real_payload_matches_estimate(trained):
  model, variables, tables = trained
  z = laplacian_latents(7, 1, 2048)  # held out: seeds differ from training
  _, bits, symbols = evaluate(model, variables, z)
  symbols = np.asarray(symbols[0])
  payload = bottleneck.encode_symbols(symbols, tables)
  estimated, real = float(bits[0]), 8 * len(payload)
  gap = real / estimated - 1
  print(f'estimated_bits={estimated:.0f} real_bits={real} gap={100 * gap:.2f}% '
        f'bits_per_symbol={real / symbols.size:.3f} '
        f'table_bits={bottleneck.table_bits(symbols, tables):.0f}')
  assert abs(gap) < 0.05
  assert real / symbols.size < np.log2(2 * MAX_SYMBOL + 1)
  # The prior learned the distribution: within 3 % of the held-out data's own entropy.
  assert real < 1.03 * empirical_entropy_bits(symbols)
  np.testing.assert_array_equal(bottleneck.decode_symbols(payload, tables, symbols.shape), symbols)


def test_training_learns_steps_and_spends_bits_where_spread(trained):
  model, variables, _ = trained
  steps = np.exp(np.asarray(variables['params']['log_step']))
  assert not np.allclose(steps, 1.0)
  symbols = np.asarray(evaluate(model, variables, laplacian_latents(8, 1, 2048))[2][0])
  spread = [np.unique(symbols[:, c]).size for c in range(CHANNELS)]
  assert spread[-1] > spread[0]  # wider channels use more symbols


def test_inference_is_round_trip_of_symbols(trained):
  model, variables, _ = trained
  z_hat, _, symbols = evaluate(model, variables, laplacian_latents(9, 1, 2048))
  assert symbols.dtype == jnp.int32 and int(jnp.abs(symbols).max()) <= MAX_SYMBOL
  np.testing.assert_allclose(
      z_hat, model.apply(variables, symbols, method=bottleneck.Bottleneck.from_symbols))


def test_tables_are_valid_cdfs(trained):
  _, _, tables = trained
  cdf = tables['cdf']
  assert cdf.dtype == np.int32 and cdf.shape == (CHANNELS, 2 * MAX_SYMBOL + 2)
  assert (cdf[:, 0] == 0).all() and (cdf[:, -1] == 1 << bottleneck.PRECISION).all()
  assert (np.diff(cdf, axis=1) >= 1).all()  # every symbol codable
  bottleneck.check_tables(tables)
  broken = cdf.copy()
  broken[0, 3] = broken[0, 2]  # a zero-probability symbol
  with pytest.raises(ValueError):
    bottleneck.check_tables({'cdf': broken})


def test_round_trip_exact_even_for_improbable_symbols(trained):
  _, _, tables = trained
  rng = np.random.default_rng(3)
  symbols = rng.integers(-MAX_SYMBOL, MAX_SYMBOL + 1, size=(300, CHANNELS))
  symbols[:4] = [[MAX_SYMBOL] * CHANNELS, [-MAX_SYMBOL] * CHANNELS, [0] * CHANNELS,
                 [MAX_SYMBOL, -MAX_SYMBOL] * (CHANNELS // 2)]
  payload = bottleneck.encode_symbols(symbols, tables)
  np.testing.assert_array_equal(bottleneck.decode_symbols(payload, tables, symbols.shape), symbols)
  # The coder charges what the integer tables say, plus a word or two of ANS state.
  real = 8 * len(payload)
  assert abs(real - bottleneck.table_bits(symbols, tables)) <= 64 + 1e-3 * real
  assert bottleneck.decode_symbols(bottleneck.encode_symbols(symbols[:0], tables), tables,
                                   (0, CHANNELS)).shape == (0, CHANNELS)


def test_encode_rejects_symbols_outside_alphabet(trained):
  _, _, tables = trained
  for bad in (np.full((4, CHANNELS), MAX_SYMBOL + 1), np.full((4, CHANNELS), -2**31, np.int32),
              np.zeros((4, CHANNELS), np.float32), np.zeros((4, CHANNELS + 1), np.int32)):
    with pytest.raises(ValueError):
      bottleneck.encode_symbols(bad, tables)


@pytest.mark.parametrize('damage', ['odd_length', 'drop_word', 'extra_word', 'zero_last_word'])
def test_decode_reports_corrupt_payload(trained, damage):
  _, _, tables = trained
  symbols = np.zeros((64, CHANNELS), np.int64)
  symbols[::5] = 2
  payload = bottleneck.encode_symbols(symbols, tables)
  damaged = {'odd_length': payload + b'\x01',
             'drop_word': payload[:-4],
             'extra_word': payload + b'\x07\x00\x00\x00',
             'zero_last_word': payload[:-4] + b'\x00' * 4}[damage]
  with pytest.raises(errors.InputError, match='corrupt payload'):
    bottleneck.decode_symbols(damaged, tables, symbols.shape, path='x.fmac')


def test_quantise_pmf_keeps_every_symbol_and_the_total():
  pmf = np.array([[1e-12, 0.5, 0.5 - 2e-12, 1e-12], [0.1, 0.2, 0.3, 0.4]])
  masses = bottleneck.quantise_pmf(pmf, precision=12)
  assert (masses >= 1).all() and (masses.sum(axis=1) == 4096).all()
  np.testing.assert_allclose(masses[1] / 4096, pmf[1], atol=2 / 4096)


def test_fixed_step_has_no_step_parameter():
  model = bottleneck.Bottleneck(channels=CHANNELS, learn_step=False, init_step=0.5)
  z = jnp.full((1, 2048, CHANNELS), 0.74)
  variables = jax.jit(functools.partial(model.init, train=False))(
      {'params': jax.random.key(0)}, z)
  assert 'log_step' not in variables['params']
  z_hat, _, symbols = evaluate(model, variables, z)
  np.testing.assert_allclose(z_hat, 0.5)
  assert (symbols == 1).all()
