r"""A scale hyperprior (Balle et al. 2018) whose coding decisions are made in integers only.

The latent y [B, T, C] (already in quantisation steps) is coded with a zero-mean Gaussian whose
scale is predicted per frame and channel from a side latent z [B, T, Cz]:

  z = round(h_a(|y|))           hyper encoder: Conv k3 -> ReLU -> Conv k3, no biases
  o = h_s(z)                    hyper decoder: Conv k3 -> leaky ReLU -> Conv k3, no biases
  scale = s_min exp(softplus(o - OFFSET)), at most s_max

Every layer is bias-free, so an all-zero y (digital silence, an empty side channel) gives z = 0,
o = 0 and the smallest scale (OFFSET puts softplus(-OFFSET) at 0.02): such frames cost what the
integer tables charge their most probable symbol (~0.001 bit per symbol), through the model.

z itself is coded in levels (hierarchical interpolation in time, so decoding stays vectorised):
frames t = 0 mod 2^levels ("anchors") with a factorised prior; then, level by level, the frames
halfway between already-coded ones, each with a Gaussian whose scale is learned per (level,
channel, context), context = min(|z[t - d]| + |z[t + d]|, contexts - 1) of its two coded
neighbours d frames away. A z channel that is 0 around a frame (silence, an empty side
channel) is then cheap by what the model learned, not by a special case: with a factorised
prior alone, z = 0 cost -log2 P(z = 0) in every frame (1.5 bits a channel in a trained test
model), which for 8 channels at 86 frames/s is about 1 kbps of silence.

Coding (CompressAI's GaussianConditional, made deterministic): `freeze_tables` stores one
integer CDF row per scale of a fixed geometric ladder for y and for z (float64 from constants,
never from trained floats), z's anchor prior, z's context scales as ladder indices, and h_s's
weights in fixed point with the ladder's boundaries as thresholds on its output, so the table
of every symbol is a pure integer function of already-decoded symbols
(`fmacomp.models.hyperprior_coder`). Training uses the float h_s; the two agree to 2**-12.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fmacomp.models import bottleneck

OFFSET = 4.0  # softplus(-OFFSET) = 0.018: o = 0 (z = 0) lands on the smallest scale
FRACTION_BITS = 12  # fixed-point fraction of h_s's integer weights
# h_s's activation slope below 0: a power of two (an arithmetic shift in integers), and not 0:
# with a ReLU, z = 0 everywhere gave h_s no gradient at all, and a test model's z stayed dead.
LEAK = 1 / 8


def ladder(scale_min, scale_max, num_scales):
  """The fixed geometric ladder of scales, float64 [num_scales]."""
  return np.exp(np.linspace(math.log(scale_min), math.log(scale_max), num_scales))


def gaussian_likelihood(v, scale, max_symbol):
  """P(round value v) under N(0, scale^2); the edge symbols +-L also take the tails.

  Computed on -|v| (the lower tail), where float32 is accurate, as CompressAI does.
  """
  half = jnp.float32(0.5)
  upper = jax.scipy.special.ndtr((half - jnp.abs(v)) / scale)
  lower = jax.scipy.special.ndtr((-half - jnp.abs(v)) / scale)
  return jnp.where(jnp.abs(v) >= max_symbol, upper, upper - lower)


def side_order(frames, levels):
  """z's coding levels: (level [T], -1 for anchors; neighbour distance d [T], 0 for anchors).

  Frame t != 0 mod 2^levels has d = the largest power of two dividing t and level
  levels - 1 - log2(d); its neighbours t +- d are anchors or of lower levels.
  """
  t = np.arange(frames)
  anchor = t % (1 << levels) == 0
  d = np.where(anchor, 0, t & -t)
  level = np.where(anchor, -1, levels - 1 - np.log2(np.maximum(d, 1)).astype(np.int64))
  return level, d


def side_context(z_abs, d, contexts):
  """min(|z[t - d]| + |z[t + d]|, contexts - 1) per frame and channel; past the end counts 0.

  Args:
    z_abs: |z| [..., T, Cz], integers (numpy, or jnp in training).
    d: neighbour distances [T] (`side_order`).
    contexts: K.
  """
  t = np.arange(len(d))
  right = t + d
  inside = right < len(d)
  total = z_abs[..., t - d, :] + z_abs[..., np.where(inside, right, t), :] * inside[:, None]
  return np.minimum(total, contexts - 1) if isinstance(total, np.ndarray) else jnp.minimum(
      total, contexts - 1)


class HyperPrior(nn.Module):
  """Side latent z and per-frame Gaussian scales for y: `__call__(y, y_coded, train)`.

  Attributes:
    channels: C of y.
    side_channels: Cz, side symbols per frame.
    hidden: width of h_a and h_s.
    max_symbol: L of y (symbols in [-L, L]).
    side_max_symbol: L of z.
    scale_min, scale_max, num_scales: the ladder (in steps of y).
    side_filters, side_init_scale: z's factorised prior (of its anchor frames).
    side_levels: z's anchors are every 2^side_levels frames.
    side_contexts: K, neighbour contexts of z's other frames.
  """
  channels: int
  side_channels: int = 8
  hidden: int = 64
  max_symbol: int = 63
  side_max_symbol: int = 15
  scale_min: float = 0.11
  scale_max: float = 32.0
  num_scales: int = 48
  side_filters: tuple = (3, 3, 3)
  side_init_scale: float = 4.0
  side_levels: int = 3
  side_contexts: int = 8

  def setup(self):
    conv = lambda n, name: nn.Conv(n, (3,), padding=[(1, 1)], use_bias=False, name=name)
    self.analysis = [conv(self.hidden, 'h_a_0'), conv(self.side_channels, 'h_a_1')]
    self.synthesis = [conv(self.hidden, 'h_s_0'), conv(self.channels, 'h_s_1')]
    self.side = self.make_side()
    # log scale per (level, channel, context); at init it grows with the neighbours' size.
    init = lambda _, shape: jnp.broadcast_to(jnp.log(1.0 + jnp.arange(shape[-1])), shape)
    self.side_log_scale = self.param(
        'side_log_scale', init, (self.side_levels, self.side_channels, self.side_contexts))

  @nn.nowrap
  def make_side(self):
    """z's factorised prior: the (unbound) `Bottleneck` that `bottleneck.cdf_tables` freezes."""
    return bottleneck.Bottleneck(self.side_channels, self.side_max_symbol, learn_step=False,
                                 filters=self.side_filters, init_scale=self.side_init_scale)

  def side_latent(self, y):
    """y [B, T, C] -> continuous z [B, T, Cz]."""
    return self.analysis[1](nn.relu(self.analysis[0](jnp.abs(y))))

  def scale(self, z_hat):
    """Dequantised z [B, T, Cz] -> Gaussian scales [B, T, C] in [s_min, s_max]."""
    o = self.synthesis[1](nn.leaky_relu(self.synthesis[0](z_hat), LEAK))
    log_scale = math.log(self.scale_min) + nn.softplus(o - OFFSET)
    return jnp.exp(jnp.minimum(log_scale, math.log(self.scale_max)))

  def __call__(self, y, y_coded, train):
    """-> (z_hat [B, T, Cz], bits [B]): y's cost under the predicted scales plus z's.

    Args:
      y: the continuous latent [B, T, C] in steps (z is computed from it, as `side_symbols`).
      y_coded: what the rate is measured on: y + U(-1/2, 1/2) in training, round(y) otherwise.
      train: draw z's quantisation noise (rng stream 'noise').
    """
    z_hat, side_bits = self._side(self.side_latent(y), train)
    p = gaussian_likelihood(y_coded, self.scale(z_hat), self.max_symbol)
    y_bits = -jnp.sum(jnp.log2(jnp.maximum(p, bottleneck.LIKELIHOOD_BOUND)), axis=(1, 2))
    return z_hat, y_bits + side_bits

  def _side(self, z, train):
    """Continuous z [B, T, Cz] -> (z_hat, bits [B]) under the anchor prior and the contexts."""
    lz = self.side_max_symbol
    z = jnp.clip(z, -lz, lz)
    rounded = jax.lax.stop_gradient(jnp.round(z))
    if train:
      coded = z + jax.random.uniform(self.make_rng('noise'), z.shape, minval=-0.5, maxval=0.5)
      z_hat = z + jax.lax.stop_gradient(rounded - z)  # the decoder sees round(z)
    else:
      coded = z_hat = rounded
    level, d = side_order(z.shape[-2], self.side_levels)
    context = side_context(jnp.abs(rounded).astype(jnp.int32), d, self.side_contexts)
    log_scale = self.side_log_scale[np.maximum(level, 0)[:, None],
                                    np.arange(self.side_channels)[None], context]  # [B, T, Cz]
    log_scale = jnp.clip(log_scale, math.log(self.scale_min), math.log(self.scale_max))
    p = jnp.where((level < 0)[:, None], self.side.prior.likelihood(coded, lz),
                  gaussian_likelihood(coded, jnp.exp(log_scale), lz))
    bits = -jnp.sum(jnp.log2(jnp.maximum(p, bottleneck.LIKELIHOOD_BOUND)), axis=(1, 2))
    return z_hat, bits

  def side_symbols(self, y):
    """y [..., T, C] -> int32 z symbols [..., T, Cz] (what the encoder writes)."""
    return self.side.to_symbols(self.side_latent(y))


def _integer_synthesis(params):
  """h_s's kernels in fixed point: (int64 [3, Cz, H], int64 [3, H, C])."""
  scale = 1 << FRACTION_BITS
  return tuple(np.round(np.asarray(params[n]['kernel'], np.float64) * scale).astype(np.int64)
               for n in ('h_s_0', 'h_s_1'))


def gaussian_tables(scales, max_symbol, precision=bottleneck.PRECISION):
  """Integer CDFs int32 [len(scales), 2L + 2] of N(0, s^2) over [-L, L] (tails at the edges),
  computed in float64 from the scales alone."""
  v = np.arange(-max_symbol, max_symbol + 1, dtype=np.float64)
  phi = np.vectorize(lambda t: 0.5 * math.erfc(-t / math.sqrt(2)))
  upper = phi((0.5 - np.abs(v))[None] / scales[:, None])  # [K, levels]
  lower = phi((-0.5 - np.abs(v))[None] / scales[:, None])
  pmf = np.where(np.abs(v)[None] >= max_symbol, upper, upper - lower)
  masses = bottleneck.quantise_pmf(pmf, precision)
  cdf = np.concatenate([np.zeros((len(scales), 1), np.int64), np.cumsum(masses, 1)], 1)
  return cdf.astype(np.int32)


def freeze_tables(module, variables, precision=bottleneck.PRECISION):
  """The integer tables that code y and z: a dict of int arrays (stored in cdf_tables.npz).

  Returns:
    cdf: int32 [Cz, 2 Lz + 2], the prior of z's anchors (`bottleneck.cdf_tables`).
    side_scale_cdf: int32 [num_scales, 2 Lz + 2], z's Gaussian at each ladder scale.
    side_index: int64 [side_levels, Cz, side_contexts], the ladder scale of each z context
      (nearest in log, chosen once here from the trained scales and stored).
    scale_cdf: int32 [num_scales, 2L + 2], y's Gaussian at each ladder scale.
    h_s_0, h_s_1: int64 fixed-point kernels of h_s.
    thresholds: int64 [num_scales - 1], h_s outputs (at 2 FRACTION_BITS) where the index steps.
  """
  params = variables['params']
  side = bottleneck.cdf_tables(module.make_side(), {'params': params['side']}, precision)
  scales = ladder(module.scale_min, module.scale_max, module.num_scales)
  log_scale = np.asarray(params['side_log_scale'], np.float64)
  side_index = np.abs(log_scale[..., None] - np.log(scales)).argmin(-1).astype(np.int64)
  # Index k is chosen when log(scale) passes the geometric mean of scales k - 1 and k:
  # softplus(o - OFFSET) = b  <=>  o = OFFSET + log(expm1(b)).
  bounds = (np.log(scales[1:]) + np.log(scales[:-1])) / 2 - math.log(module.scale_min)
  thresholds = OFFSET + np.log(np.expm1(bounds))
  h0, h1 = _integer_synthesis(params)
  return {'cdf': side['cdf'], 'side_scale_cdf': gaussian_tables(scales, module.side_max_symbol),
          'side_index': side_index, 'scale_cdf': gaussian_tables(scales, module.max_symbol),
          'h_s_0': h0, 'h_s_1': h1,
          'thresholds': np.ceil(thresholds * (1 << 2 * FRACTION_BITS)).astype(np.int64)}


