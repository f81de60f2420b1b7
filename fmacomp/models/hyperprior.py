r"""A scale hyperprior (Balle et al. 2018) whose coding decisions are made in integers only.

The latent y [B, T, C] (already in quantisation steps) is coded with a zero-mean Gaussian whose
scale is predicted per frame and channel from a side latent z [B, T, Cz]:

  z = round(h_a(|y|))           hyper encoder: Conv k3 -> ReLU -> Conv k3, no biases
  o = h_s(z)                    hyper decoder: Conv k3 -> ReLU -> Conv k3, no biases
  scale = s_min exp(softplus(o - OFFSET)), at most s_max
  z: factorised prior (`bottleneck.Bottleneck`, step 1); y: the Gaussian of that scale

Every layer is bias-free, so an all-zero y (digital silence, an empty side channel) gives z = 0,
o = 0 and the smallest scale (OFFSET puts softplus(-OFFSET) at 0.02): such frames cost what the
integer tables charge their most probable symbol (~0.001 bit per symbol), through the model.

Coding (CompressAI's GaussianConditional, made deterministic): `freeze_tables` stores
  - one integer CDF row per scale of a fixed geometric ladder (`num_scales` scales from s_min to
    s_max), computed in float64 from constants, never from trained floats;
  - the factorised prior of z as `bottleneck.cdf_tables` rows;
  - h_s's weights in fixed point (FRACTION_BITS) and the ladder's boundaries as thresholds on
    its output, so `scale_index(z)` runs in int64 numpy: bit-exact on any processor.
A frame's table index is therefore a pure integer function of the decoded z symbols, and the
float network never reaches the coder. One ANS stream holds a chunk's z (channel by channel),
then its y grouped by table index. Training uses the float h_s; the two agree to 2**-12.
"""

import math

import constriction
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fmacomp import errors
from fmacomp.models import bottleneck

OFFSET = 4.0  # softplus(-OFFSET) = 0.018: o = 0 (z = 0) lands on the smallest scale
FRACTION_BITS = 12  # fixed-point fraction of h_s's integer weights


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


class HyperPrior(nn.Module):
  """Side latent z and per-frame Gaussian scales for y: `__call__(y, train)`.

  Attributes:
    channels: C of y.
    side_channels: Cz, side symbols per frame.
    hidden: width of h_a and h_s.
    max_symbol: L of y (symbols in [-L, L]).
    side_max_symbol: L of z.
    scale_min, scale_max, num_scales: the ladder (in steps of y).
    side_filters, side_init_scale: z's factorised prior.
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

  def setup(self):
    conv = lambda n, name: nn.Conv(n, (3,), padding=[(1, 1)], use_bias=False, name=name)
    self.analysis = [conv(self.hidden, 'h_a_0'), conv(self.side_channels, 'h_a_1')]
    self.synthesis = [conv(self.hidden, 'h_s_0'), conv(self.channels, 'h_s_1')]
    self.side = self.make_side()

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
    o = self.synthesis[1](nn.relu(self.synthesis[0](z_hat)))
    log_scale = math.log(self.scale_min) + nn.softplus(o - OFFSET)
    return jnp.exp(jnp.minimum(log_scale, math.log(self.scale_max)))

  def __call__(self, y, y_coded, train):
    """-> (z_hat [B, T, Cz], bits [B]): y's cost under the predicted scales plus z's.

    Args:
      y: the continuous latent [B, T, C] in steps (z is computed from it, as `side_symbols`).
      y_coded: what the rate is measured on: y + U(-1/2, 1/2) in training, round(y) otherwise.
      train: draw z's quantisation noise (rng stream 'noise').
    """
    z_hat, side_bits = self.side(self.side_latent(y), train)
    p = gaussian_likelihood(y_coded, self.scale(z_hat), self.max_symbol)
    y_bits = -jnp.sum(jnp.log2(jnp.maximum(p, bottleneck.LIKELIHOOD_BOUND)), axis=(1, 2))
    return z_hat, y_bits + side_bits

  def side_symbols(self, y):
    """y [..., T, C] -> int32 z symbols [..., T, Cz] (what the encoder writes)."""
    return self.side.to_symbols(self.side_latent(y))


def _integer_synthesis(variables):
  """h_s's kernels in fixed point: (int64 [3, Cz, H], int64 [3, H, C])."""
  params = variables['params']
  scale = 1 << FRACTION_BITS
  return tuple(np.round(np.asarray(params[n]['kernel'], np.float64) * scale).astype(np.int64)
               for n in ('h_s_0', 'h_s_1'))


def freeze_tables(module, variables, precision=bottleneck.PRECISION):
  """The integer tables that code y and z: a dict of int arrays (stored in cdf_tables.npz).

  Returns:
    cdf: int32 [Cz, 2 Lz + 2], z's factorised prior (`bottleneck.cdf_tables`).
    scale_cdf: int32 [num_scales, 2L + 2], the Gaussian of each ladder scale.
    h_s_0, h_s_1: int64 fixed-point kernels of h_s.
    thresholds: int64 [num_scales - 1], h_s outputs (at 2 FRACTION_BITS) where the index steps.
  """
  side = bottleneck.cdf_tables(module.make_side(), {'params': variables['params']['side']},
                               precision)
  scales = ladder(module.scale_min, module.scale_max, module.num_scales)
  v = np.arange(-module.max_symbol, module.max_symbol + 1, dtype=np.float64)
  phi = np.vectorize(lambda t: 0.5 * math.erfc(-t / math.sqrt(2)))
  upper = phi((0.5 - np.abs(v))[None] / scales[:, None])  # [K, levels]
  lower = phi((-0.5 - np.abs(v))[None] / scales[:, None])
  pmf = np.where(np.abs(v)[None] >= module.max_symbol, upper, upper - lower)
  masses = bottleneck.quantise_pmf(pmf, precision)
  cdf = np.concatenate([np.zeros((len(scales), 1), np.int64), np.cumsum(masses, 1)], 1)
  # Index k is chosen when log(scale) passes the geometric mean of scales k - 1 and k:
  # softplus(o - OFFSET) = b  <=>  o = OFFSET + log(expm1(b)).
  bounds = (np.log(scales[1:]) + np.log(scales[:-1])) / 2 - math.log(module.scale_min)
  thresholds = OFFSET + np.log(np.expm1(bounds))
  h0, h1 = _integer_synthesis(variables)
  return {'cdf': side['cdf'], 'scale_cdf': cdf.astype(np.int32), 'h_s_0': h0, 'h_s_1': h1,
          'thresholds': np.ceil(thresholds * (1 << 2 * FRACTION_BITS)).astype(np.int64)}


def _conv3(x, kernel):
  """int64 'same' conv of kernel 3 along time: x [T, I], kernel [3, I, O] -> [T, O]."""
  padded = np.pad(x, ((1, 1), (0, 0)))
  t = x.shape[0]
  return sum(padded[k:k + t] @ kernel[k] for k in range(3))


def scale_index(z, tables):
  """Ladder index of every y symbol from int z symbols [T, Cz]: int64 [T, C], integers only."""
  h = np.maximum(_conv3(np.asarray(z, np.int64), tables['h_s_0']), 0)
  o = _conv3(h, tables['h_s_1'])  # [T, C] at 2 FRACTION_BITS
  return np.searchsorted(tables['thresholds'], o, side='right')


def check_tables(tables):
  """Raises ValueError unless the tables are complete and every CDF row is valid."""
  missing = {'cdf', 'scale_cdf', 'h_s_0', 'h_s_1', 'thresholds'} - set(tables)
  if missing:
    raise ValueError(f'hyperprior tables lack {sorted(missing)}')
  bottleneck.check_tables({'cdf': tables['cdf']})
  bottleneck.check_tables({'cdf': tables['scale_cdf']})
  if len(tables['thresholds']) != len(tables['scale_cdf']) - 1:
    raise ValueError('one threshold between each two ladder scales')
  if np.any(np.diff(tables['thresholds']) < 0):
    raise ValueError('ladder thresholds must not decrease')


def _models(cdf):
  """One constriction model per CDF row, from its integer masses only (exact in float64)."""
  cdf = np.asarray(cdf, np.int64)
  return [constriction.stream.model.Categorical(p, perfect=False)
          for p in np.diff(cdf, axis=1) / float(cdf[0, -1])]


def _split(symbols, tables):
  """[T, C + Cz] -> (y [T, C], z [T, Cz], L of y, L of z), checking shapes."""
  symbols = np.asarray(symbols)
  side, channels = len(tables['cdf']), tables['h_s_1'].shape[-1]
  if symbols.ndim != 2 or symbols.shape[1] != channels + side:
    raise ValueError(f'symbols {symbols.shape} do not match tables for {channels} + {side} '
                     'channels')
  lz = (np.shape(tables['cdf'])[1] - 2) // 2
  ly = (np.shape(tables['scale_cdf'])[1] - 2) // 2
  return symbols[:, :channels], symbols[:, channels:], ly, lz


def encode_symbols(symbols, tables):
  """int symbols [T, C + Cz] (y, then z) -> bytes: one ANS stream (little-endian u32 words).

  Decoding order: z channel by channel, then y grouped by ladder index (ascending), each group
  in frame-major order; ANS is last-in first-out, so this pushes that order reversed.
  """
  y, z, ly, lz = _split(symbols, tables)
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f'symbols must be integers, got {y.dtype}')
  for part, limit in ((y, ly), (z, lz)):
    if part.size and (part.min() < -limit or part.max() > limit):
      raise ValueError(f'symbols outside [-{limit}, {limit}]')
  index = scale_index(z, tables)  # [T, C]
  coder = constriction.stream.stack.AnsCoder()
  models = _models(tables['scale_cdf'])
  for k in reversed(range(len(models))):
    group = y[index == k]
    if group.size:
      coder.encode_reverse((group + ly).astype(np.int32), models[k])
  side = _models(tables['cdf'])
  for c in reversed(range(z.shape[1])):
    coder.encode_reverse((z[:, c] + lz).astype(np.int32), side[c])
  return coder.get_compressed().astype('<u4').tobytes()


def decode_symbols(data, tables, shape, path='payload'):
  """bytes from `encode_symbols` -> int32 symbols [T, C + Cz] (`shape`).

  Raises:
    errors.InputError(path, reason): data that is not a whole stream of this shape.
  """
  frames, total = shape
  side = len(tables['cdf'])
  _split(np.zeros((0, total), np.int32), tables)  # checks the shape against the tables
  if len(data) % 4:
    raise errors.InputError(path, 'corrupt payload: not a whole number of 32-bit words')
  lz = (np.shape(tables['cdf'])[1] - 2) // 2
  ly = (np.shape(tables['scale_cdf'])[1] - 2) // 2
  z = np.empty((frames, side), np.int32)
  y = np.empty((frames, total - side), np.int32)
  try:
    coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, '<u4').astype(np.uint32))
    for c, model in enumerate(_models(tables['cdf'])):
      z[:, c] = coder.decode(model, frames) - lz
    index = scale_index(z, tables)
    for k, model in enumerate(_models(tables['scale_cdf'])):
      count = int(np.count_nonzero(index == k))
      if count:
        y[index == k] = coder.decode(model, count) - ly
  except (ValueError, RuntimeError) as e:
    raise errors.InputError(path, f'corrupt payload: {e}') from None
  if not coder.is_empty():
    raise errors.InputError(path, 'corrupt payload: data left after the last symbol')
  return np.concatenate([y, z], axis=1)


def table_bits(symbols, tables):
  """Ideal code length in bits of int symbols [T, C + Cz] under the integer tables."""
  y, z, ly, _ = _split(symbols, tables)
  cdf = np.asarray(tables['scale_cdf'], np.int64)
  masses = np.diff(cdf, axis=1)
  y_bits = -np.log2(masses[scale_index(z, tables), y + ly] / cdf[0, -1]).sum()
  return float(y_bits) + bottleneck.table_bits(z, {'cdf': tables['cdf']})


class StreamCoding:
  """The hyperprior family's stream coder, as `fmacomp.fmac.model_store` drives a family.

  Attributes:
    module: the (unbound) `HyperPrior`.
    name: its params subtree in the model's variables.
  """

  def __init__(self, module, name):
    self.module, self.name = module, name

  def freeze(self, variables):
    """The model's variables -> `freeze_tables` of its hyperprior."""
    return freeze_tables(self.module, {'params': variables['params'][self.name]})

  check = staticmethod(check_tables)
  encode = staticmethod(encode_symbols)
  decode = staticmethod(decode_symbols)
  bits = staticmethod(table_bits)
