"""Quantised latents and their rate: a scalar quantiser, a learned entropy model, integer coding.

Any autoencoder's latent z [B, frames, channels] passes through `Bottleneck`:

  y = z / step                  per-channel step size (learned in the log domain, or fixed)
  y = clip(y, -L, L)            bounded alphabet {-L..L} (2L+1 levels) so CDF tables are finite;
                                a true clip, not straight-through: the step needs the real
                                gradient of the clipping error (a straight-through clip makes a
                                smaller step look free, and the steps collapse onto the edges)
  training:  rate on y + u, u ~ U(-1/2, 1/2)  (Balle et al. 2018: the density of y + u equals
             the probability mass of round(y), so the rate is differentiable and honest);
             the decoder sees round(y) with a straight-through gradient (Minnen & Singh 2020:
             "mixed" quantisation), so it trains on exactly what it will decode; set
             `decoder_noise=True` for the pure noise relaxation
  inference: symbols = round(y) (int), z_hat = symbols * step

The entropy model is a factorised prior: one small monotone network per channel gives a CDF
(`FactorizedPrior`), a symbol's probability is CDF(v + 1/2) - CDF(v - 1/2), and the two edge
symbols +-L also take the tails, so the L-level pmf sums to one and every clipped value costs
what the coder will charge. The loss is distortion + lambda x bits.

For coding, `cdf_tables` freezes the prior into integer CDFs ({'cdf': int32 [C, 2L + 2]}, every
symbol at least one unit of 2**PRECISION) that are stored in the checkpoint; `encode_symbols` and
`decode_symbols` drive constriction's ANS coder with models built from those integers only, so
encoder and decoder agree bit for bit whatever hardware computed the float prior.
"""

import math
from typing import Sequence

import constriction
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fmacomp import errors

PRECISION = 16  # bits of the integer CDF tables
LIKELIHOOD_BOUND = 1e-9  # keeps -log2(p) finite (at most ~30 bits) during training


class FactorizedPrior(nn.Module):
  """A learned density per channel: CDF_c(v) = sigmoid(f_c(v)), f_c monotone in v.

  f_c is a chain of 1 -> filters -> 1 affine maps with softplus (positive) weights and
  x + tanh(a) tanh(x) gates, monotone by construction (Balle et al. 2018, appendix 6.1).

  Attributes:
    channels: latent channels, each with its own network.
    filters: hidden widths of the per-channel network.
    init_scale: initial spread of the density, in quantisation steps.
  """
  channels: int
  filters: Sequence[int] = (3, 3, 3)
  init_scale: float = 10.0

  def setup(self):
    dims = (1,) + tuple(self.filters) + (1,)
    scale = self.init_scale ** (1 / (len(dims) - 1))
    uniform = lambda key, shape: jax.random.uniform(key, shape, minval=-0.5, maxval=0.5)
    matrices, biases, factors = [], [], []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
      init = nn.initializers.constant(math.log(math.expm1(1 / scale / d_out)))
      matrices.append(self.param(f'matrix_{i}', init, (self.channels, d_out, d_in)))
      biases.append(self.param(f'bias_{i}', uniform, (self.channels, d_out, 1)))
      if i < len(dims) - 2:
        factors.append(self.param(f'factor_{i}', nn.initializers.zeros, (self.channels, d_out, 1)))
    self.matrices, self.biases, self.factors = matrices, biases, factors

  def logits_cdf(self, v):
    """f(v): logits of the CDF at v [..., C] -> [..., C]."""
    shape = v.shape
    x = jnp.moveaxis(v, -1, 0).reshape(self.channels, 1, -1)  # [C, 1, N]
    for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
      x = jnp.matmul(nn.softplus(matrix), x) + bias  # [C, d_out, N]
      if i < len(self.factors):
        x = x + jnp.tanh(self.factors[i]) * jnp.tanh(x)
    x = x.reshape((self.channels,) + shape[:-1])
    return jnp.moveaxis(x, 0, -1)

  def likelihood(self, v, max_symbol):
    """P(round value v) = CDF(v + 1/2) - CDF(v - 1/2); v at +-max_symbol also takes the tails."""
    lower = self.logits_cdf(v - 0.5)
    upper = self.logits_cdf(v + 0.5)
    # Subtract on the side of the sigmoid where it is far from 1, where float32 is accurate.
    sign = jax.lax.stop_gradient(jnp.where(lower + upper > 0, -1.0, 1.0))
    p = jnp.abs(nn.sigmoid(sign * upper) - nn.sigmoid(sign * lower))
    p = jnp.where(v <= -max_symbol, nn.sigmoid(upper), p)
    return jnp.where(v >= max_symbol, nn.sigmoid(-lower), p)


class Bottleneck(nn.Module):
  """Scalar quantiser + factorised prior: `__call__(z, train) -> (z_hat, bits)`.

  Training needs an rng stream named 'noise' (`apply(..., rngs={'noise': key})`).

  Attributes:
    channels: latent channels C (the last axis of z).
    max_symbol: L; symbols lie in [-L, L], 2L + 1 levels.
    learn_step: learn a per-channel step size (else it stays `init_step`).
    init_step: initial (or fixed) quantisation step in latent units.
    decoder_noise: give the decoder y + u in training instead of round(y) (straight-through).
    filters: hidden widths of the prior's per-channel network.
    init_scale: initial spread of the prior, in steps.
  """
  channels: int
  max_symbol: int = 15
  learn_step: bool = True
  init_step: float = 1.0
  decoder_noise: bool = False
  filters: Sequence[int] = (3, 3, 3)
  init_scale: float = 10.0

  def setup(self):
    self.prior = FactorizedPrior(self.channels, self.filters, self.init_scale)
    if self.learn_step:
      self.log_step = self.param('log_step', nn.initializers.constant(math.log(self.init_step)),
                                 (self.channels,))

  def step(self):
    """Per-channel quantisation step [C]."""
    if self.learn_step:
      return jnp.exp(self.log_step)
    return jnp.full((self.channels,), self.init_step, jnp.float32)

  def __call__(self, z, train):
    """z [B, T, C] -> (z_hat [B, T, C], bits [B]); bits are estimated, per example."""
    y = jnp.clip(z / self.step(), -self.max_symbol, self.max_symbol)
    if train:
      noisy = y + jax.random.uniform(self.make_rng('noise'), y.shape, minval=-0.5, maxval=0.5)
      y_hat = noisy if self.decoder_noise else y + jax.lax.stop_gradient(jnp.round(y) - y)
      bits = self.bits(noisy)
    else:
      y_hat = jnp.round(y)
      bits = self.bits(y_hat)
    return y_hat * self.step(), bits

  def bits(self, v):
    """-log2 P(v) summed over all but the batch axis: v [B, ...] in steps -> [B]."""
    p = jnp.maximum(self.prior.likelihood(v, self.max_symbol), LIKELIHOOD_BOUND)
    return -jnp.sum(jnp.log2(p), axis=tuple(range(1, v.ndim)))

  def to_symbols(self, z):
    """z [..., C] -> int32 symbols in [-L, L] (what the encoder writes)."""
    y = jnp.clip(z / self.step(), -self.max_symbol, self.max_symbol)
    return jnp.round(y).astype(jnp.int32)

  def from_symbols(self, symbols):
    """int symbols [..., C] -> z_hat [..., C] (what the decoder feeds its network)."""
    return symbols.astype(jnp.float32) * self.step()

  def pmf(self):
    """The prior's probabilities of the 2L + 1 symbols, per channel: [C, 2L + 1]."""
    v = jnp.arange(-self.max_symbol, self.max_symbol + 1, dtype=jnp.float32)
    v = jnp.broadcast_to(v[:, None], (v.shape[0], self.channels))  # [levels, C]
    return self.prior.likelihood(v, self.max_symbol).T


def quantise_pmf(pmf, precision=PRECISION):
  """Float pmf [C, n] -> integer masses [C, n], each >= 1, each row summing to 2**precision.

  Every symbol keeps one unit first (so any symbol is codable); the rest is shared in
  proportion to the pmf, the rounding remainder going to the largest fractional parts.
  """
  pmf = np.asarray(pmf, np.float64)
  pmf = np.maximum(pmf, 0) / np.maximum(pmf.sum(axis=1, keepdims=True), 1e-300)
  total, n = 1 << precision, pmf.shape[1]
  if n > total // 2:
    raise ValueError(f'{n} symbols do not fit {precision}-bit tables')
  share = pmf * (total - n)
  masses = 1 + np.floor(share).astype(np.int64)
  remainder = total - masses.sum(axis=1)  # [C], each in [0, n)
  order = np.argsort(-(share - np.floor(share)), axis=1, kind='stable')
  ranks = np.argsort(order, axis=1, kind='stable')
  masses += ranks < remainder[:, None]
  return masses


def cdf_tables(module, variables, precision=PRECISION):
  """Freezes a `Bottleneck`'s prior into integer CDF tables for coding.

  Args:
    module: the `Bottleneck` (its fields give C and L).
    variables: its variables, {'params': ...} (a larger model passes its bottleneck subtree).
    precision: bits of the tables; each row ends at 2**precision.

  Returns:
    {'cdf': int32 [C, 2L + 2]}: cdf[c, k] = total mass of symbols below k - L; strictly increasing.
  """
  pmf = np.asarray(jax.jit(lambda v: module.apply(v, method=Bottleneck.pmf))(variables))
  masses = quantise_pmf(pmf, precision)
  cdf = np.concatenate([np.zeros((masses.shape[0], 1), np.int64), np.cumsum(masses, axis=1)], 1)
  return {'cdf': cdf.astype(np.int32)}


def check_tables(tables):
  """Raises ValueError unless `tables` are valid CDFs: start 0, end 2**P, strictly increasing."""
  cdf = np.asarray(tables['cdf'])
  if cdf.ndim != 2 or cdf.shape[1] < 3 or cdf.shape[1] % 2:
    raise ValueError(f'CDF tables must be [C, 2L + 2], got {cdf.shape}')
  total = int(cdf[0, -1])
  if total <= 0 or total & (total - 1) or total > 1 << 24:
    raise ValueError(f'CDF total {total} is not a power of two up to 2**24')
  if (cdf[:, 0] != 0).any() or (cdf[:, -1] != total).any() or (np.diff(cdf, axis=1) < 1).any():
    raise ValueError('CDF tables must start at 0, end at the total and give every symbol mass')


def _coder_models(tables):
  """One constriction model per channel, from integer masses only (exact in float64)."""
  check_tables(tables)
  cdf = np.asarray(tables['cdf'], np.int64)
  probabilities = np.diff(cdf, axis=1) / float(cdf[0, -1])  # [C, levels], k / 2**P is exact
  return [constriction.stream.model.Categorical(p, perfect=False) for p in probabilities]


def table_bits(symbols, tables):
  """Ideal code length in bits of int symbols [..., C] under the integer tables."""
  cdf = np.asarray(tables['cdf'], np.int64)
  masses = np.diff(cdf, axis=1)  # [C, levels]
  index = np.asarray(symbols) + (cdf.shape[1] - 2) // 2
  channel = np.broadcast_to(np.arange(cdf.shape[0]), index.shape)
  return float(-np.log2(masses[channel, index] / cdf[0, -1]).sum())


def encode_symbols(symbols, tables):
  """int symbols [frames, C] in [-L, L] -> bytes (one ANS stream, little-endian 32-bit words)."""
  symbols = np.asarray(symbols)
  cdf = np.asarray(tables['cdf'])
  max_symbol = (cdf.shape[1] - 2) // 2
  if symbols.ndim != 2 or symbols.shape[1] != cdf.shape[0]:
    raise ValueError(f'symbols {symbols.shape} do not match tables for {cdf.shape[0]} channels')
  if not np.issubdtype(symbols.dtype, np.integer):
    raise ValueError(f'symbols must be integers, got {symbols.dtype}')
  # Compare both ends (not abs): abs of the most negative int32 is still negative.
  if symbols.size and (symbols.min() < -max_symbol or symbols.max() > max_symbol):
    raise ValueError(f'symbols outside [-{max_symbol}, {max_symbol}]')
  coder = constriction.stream.stack.AnsCoder()
  models = _coder_models(tables)
  # ANS is last-in first-out: push the last channel first so decoding runs channel 0 first.
  for c in reversed(range(cdf.shape[0])):
    coder.encode_reverse((symbols[:, c] + max_symbol).astype(np.int32), models[c])
  return coder.get_compressed().astype('<u4').tobytes()


def decode_symbols(data, tables, shape, path='payload'):
  """bytes from `encode_symbols` -> int32 symbols [frames, C] (`shape`).

  Raises:
    errors.InputError(path, reason): data that is not a whole stream of this shape.
  """
  frames, channels = shape
  cdf = np.asarray(tables['cdf'])
  if channels != cdf.shape[0]:
    raise ValueError(f'shape {shape} does not match tables for {cdf.shape[0]} channels')
  if len(data) % 4:
    raise errors.InputError(path, 'corrupt payload: not a whole number of 32-bit words')
  out = np.empty((channels, frames), np.int32)
  try:
    coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, '<u4').astype(np.uint32))
    for c, model in enumerate(_coder_models(tables)):
      out[c] = coder.decode(model, frames)
  except (ValueError, RuntimeError) as e:
    raise errors.InputError(path, f'corrupt payload: {e}') from None
  # A valid stream is used up exactly by its symbols; anything left means corruption.
  if not coder.is_empty():
    raise errors.InputError(path, 'corrupt payload: data left after the last symbol')
  return np.ascontiguousarray(out.T) - (cdf.shape[1] - 2) // 2
