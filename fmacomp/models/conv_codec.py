"""A strided convolutional waveform codec: encoder, quantised latent, decoder (SoundStream spirit).

Mono audio at `sample_rate` in, the same out; hop = prod(strides) samples per latent frame.

  encoder: Conv k7 (channels) -> per stride s: residual units (dilations 1, 3, 9), act,
           Conv k2s stride s (channels doubling) -> act, Conv k3 -> z [B, frames, latent]
  bottleneck: `Bottleneck` (scalar quantiser + factorised prior, fmacomp.models.bottleneck)
  decoder: Conv k7 -> per stride s (reversed): act, ConvTranspose k2s stride s (channels
           halving), residual units -> act, Conv k7 -> audio [B, frames * hop]

Residual unit: x + Conv k1(act(Conv k7 dilation d (act(x)))). The activation is Snake
(x + sin^2(a x) / a, a learned per channel; DAC's choice for periodic signals) or ELU.

Non-causal: every conv is padded symmetrically (a stride-s conv of kernel 2s by s // 2 on the
left), so a frame sees audio on both sides. File coding is offline, and symmetric context is
worth more than latency; the price is that chunked coding needs context on both sides, which
`context()` bounds: the encoder output at frame f depends on input samples within
`encoder_samples` of frame f's span, the decoder output of frame f on latent frames within
`decoder_frames` of f. `fmacomp.fmac.compress` pads each chunk by these amounts so that chunked
coding equals whole-signal coding.
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fmacomp.models import bottleneck as bottleneck_lib


class Snake(nn.Module):
  """x + sin^2(a x) / a with a learned a > 0 per channel (Ziyin et al. 2020, DAC)."""

  @nn.compact
  def __call__(self, x):
    log_alpha = self.param('log_alpha', nn.initializers.zeros, (x.shape[-1],))
    alpha = jnp.exp(log_alpha)
    return x + jnp.square(jnp.sin(alpha * x)) / alpha


def _activation(name):
  if name == 'snake':
    return Snake()
  if name == 'elu':
    return nn.elu
  raise ValueError(f'unknown activation {name!r} (snake or elu)')


def _same(kernel, dilation=1):
  """Symmetric padding for an odd stride-1 kernel: output length = input length."""
  half = (kernel - 1) * dilation // 2
  return [(half, half)]


class ResidualUnit(nn.Module):
  """x + Conv k1(act(Conv k dilation d (act(x)))): [B, T, C] -> [B, T, C]."""
  channels: int
  dilation: int
  kernel_size: int = 7
  activation: str = 'snake'

  @nn.compact
  def __call__(self, x):
    y = _activation(self.activation)(x)
    y = nn.Conv(self.channels, (self.kernel_size,), kernel_dilation=(self.dilation,),
                padding=_same(self.kernel_size, self.dilation))(y)
    y = _activation(self.activation)(y)
    # Zero-initialised branch: every unit starts as the identity, so a deep stack does not
    # multiply the signal's scale at init (which made the first hundred steps shrink it).
    return x + nn.Conv(self.channels, (1,), kernel_init=nn.initializers.zeros)(y)


class UpConv(nn.Module):
  """nn.ConvTranspose(features, (2s,), strides=(s,), padding='SAME'), computed sub-pixel style.

  Same parameters ('kernel' [2s, in, features], 'bias'), initialisers and outputs as the
  transposed conv, but as a stride-1 conv to s x features channels whose output phases are
  interleaved: the transposed conv's weight gradient (a conv over an input dilated by s) ran
  20x slower than its forward pass under XLA on CPU and made GPU training crawl.
  [B, T, in] -> [B, T * s, features].
  """
  features: int
  stride: int

  @nn.compact
  def __call__(self, x):
    s, k = self.stride, 2 * self.stride
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (k, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    # lax.conv_transpose 'SAME' pads the s-dilated input by ceil((k + s - 2) / 2) on the left, so
    # output s q + r takes input q + m through tap j = s m + pad - r (0 <= j < k).
    pad = -(-(k + s - 2) // 2) if s > 1 else k - 1
    taps = {(m, r): s * m + pad - r for r in range(s) for m in range(-2, 3)
            if 0 <= s * m + pad - r < k}
    lo, hi = min(m for m, _ in taps), max(m for m, _ in taps)
    index = np.full((hi - lo + 1, s), k)  # k: the zero row appended below
    for (m, r), j in taps.items():
      index[m - lo, r] = j
    padded = jnp.concatenate([kernel, jnp.zeros_like(kernel[:1])])  # [k + 1, in, out]
    w = jnp.transpose(padded[index], (0, 2, 1, 3))  # [M, in, s, out]
    w = w.reshape(w.shape[0], w.shape[1], s * self.features)
    y = jax.lax.conv_general_dilated(x, w, (1,), [(-lo, hi)],
                                     dimension_numbers=('NWC', 'WIO', 'NWC'))  # [B, T, s * out]
    y = y.reshape(y.shape[0], y.shape[1] * s, self.features)
    return y + bias


class Encoder(nn.Module):
  """Audio [B, T, 1] (T a multiple of the hop) -> z [B, T / hop, latent_channels]."""
  strides: Sequence[int]
  channels: int
  latent_channels: int
  dilations: Sequence[int]
  kernel_size: int
  activation: str

  @nn.compact
  def __call__(self, h):
    h = nn.Conv(self.channels, (self.kernel_size,), padding=_same(self.kernel_size),
                name='conv_in')(h)
    width = self.channels
    for i, s in enumerate(self.strides):
      for d in self.dilations:
        h = ResidualUnit(width, d, self.kernel_size, self.activation, name=f'stage_{i}_res_{d}')(h)
      h = _activation(self.activation)(h)
      width *= 2
      # Kernel 2s, stride s, s // 2 on the left: frame j is centred on its own s samples.
      h = nn.Conv(width, (2 * s,), strides=(s,), padding=[(s // 2, s - s // 2)],
                  name=f'stage_{i}_down')(h)  # [B, T / prod(strides[:i + 1]), width]
    h = _activation(self.activation)(h)
    return nn.Conv(self.latent_channels, (3,), padding=_same(3), name='conv_out')(h)


class Decoder(nn.Module):
  """Latent [B, frames, C] -> audio [B, frames * hop, 1] (the encoder mirrored)."""
  strides: Sequence[int]
  channels: int
  dilations: Sequence[int]
  kernel_size: int
  activation: str

  @nn.compact
  def __call__(self, h):
    width = self.channels * 2 ** len(self.strides)
    h = nn.Conv(width, (self.kernel_size,), padding=_same(self.kernel_size), name='conv_in')(h)
    for i, s in reversed(list(enumerate(self.strides))):
      h = _activation(self.activation)(h)
      width //= 2
      h = UpConv(width, s, name=f'stage_{i}_up')(h)  # s times more steps, width halved
      for d in self.dilations:
        h = ResidualUnit(width, d, self.kernel_size, self.activation, name=f'stage_{i}_res_{d}')(h)
    h = _activation(self.activation)(h)
    return nn.Conv(1, (self.kernel_size,), padding=_same(self.kernel_size), name='conv_out')(h)


class ConvCodec(nn.Module):
  """Waveform codec with a quantised latent (see the module docstring for the layout).

  Attributes:
    sample_rate: the rate audio must have (the model does not resample).
    strides: downsampling per stage; hop = their product (full size: (2, 4, 5, 8) = 320).
    channels: width of the first stage; each downsampling doubles it.
    latent_channels: C, symbols per latent frame.
    dilations: of the residual units in each stage.
    kernel_size: of the residual units and the outer convs (odd).
    activation: 'snake' or 'elu'.
    max_symbol: the bottleneck's L (2L + 1 levels).
    prior_filters: hidden widths of the factorised prior's per-channel network.
    prior_init_scale: the prior's initial spread, in quantisation steps (about the latent's
      initial spread, so that the first steps do not pay for a far too wide prior).
  """
  sample_rate: int = 44100
  strides: Sequence[int] = (2, 4, 5, 8)
  channels: int = 32
  latent_channels: int = 64
  dilations: Sequence[int] = (1, 3, 9)
  kernel_size: int = 7
  activation: str = 'snake'
  max_symbol: int = 15
  prior_filters: Sequence[int] = (3, 3, 3)
  prior_init_scale: float = 4.0

  @property
  def hop(self):
    """Samples per latent frame."""
    return math.prod(self.strides)

  def context(self):
    """(encoder_samples, decoder_frames): conservative receptive-field radii (see module doc).

    Every layer is charged its full reach: a kernel-k conv of dilation d at a resolution of u
    samples reaches (k - 1) d / 2 units either side, a stride-s conv or transposed conv of
    kernel 2s at most 2 units of its coarser side.
    """
    reach = sum((self.kernel_size - 1) * d // 2 for d in self.dilations)  # per stage, units
    edge = (self.kernel_size - 1) // 2
    samples, unit = edge, 1
    for s in self.strides:
      samples += unit * (reach + 2 * s)
      unit *= s
    samples += unit  # the final k3 conv
    frames, unit = float(edge), self.hop  # decoder, in frames; unit = samples per step
    for s in reversed(self.strides):
      frames += 2 * unit / self.hop
      unit //= s
      frames += reach * unit / self.hop
    frames += edge / self.hop
    return samples, math.ceil(frames)

  def setup(self):
    self.encoder = Encoder(self.strides, self.channels, self.latent_channels, self.dilations,
                           self.kernel_size, self.activation)
    self.decoder = Decoder(self.strides, self.channels, self.dilations, self.kernel_size,
                           self.activation)
    self.bottleneck = self.make_bottleneck()

  @nn.nowrap
  def make_bottleneck(self):
    """The (unbound) `Bottleneck` of this codec: `cdf_tables` freezes it, with the params
    subtree `params['bottleneck']`."""
    return bottleneck_lib.Bottleneck(
        channels=self.latent_channels, max_symbol=self.max_symbol, filters=self.prior_filters,
        init_scale=self.prior_init_scale)

  def frames(self, length):
    """Latent frames for `length` samples: ceil(length / hop) (the tail is zero-padded)."""
    return -(-length // self.hop)

  def encode(self, x):
    """Audio [B, T] -> continuous latent z [B, ceil(T / hop), latent_channels]."""
    pad = self.frames(x.shape[-1]) * self.hop - x.shape[-1]
    return self.encoder(jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])[..., None])

  def decode(self, z):
    """Latent [B, frames, C] (continuous or dequantised) -> audio [B, frames * hop]."""
    return self.decoder(z)[..., 0]

  def quantise(self, z):
    """Continuous z [..., C] -> dequantised z_hat, exactly what `from_symbols` decodes."""
    return self.bottleneck.from_symbols(self.bottleneck.to_symbols(z))

  def to_symbols(self, x):
    """Audio [B, T] -> int32 symbols [B, ceil(T / hop), latent_channels] in [-L, L]."""
    return self.bottleneck.to_symbols(self.encode(x))

  def symbols_of_latent(self, z):
    """Continuous z -> int32 symbols (for callers that ran `encode` themselves)."""
    return self.bottleneck.to_symbols(z)

  def from_symbols(self, symbols):
    """int symbols [B, frames, latent_channels] -> audio [B, frames * hop]."""
    return self.decode(self.bottleneck.from_symbols(symbols))

  def pmf(self):
    """The prior's symbol probabilities [C, 2L + 1] (what `cdf_tables` freezes)."""
    return self.bottleneck.pmf()

  def __call__(self, x, train=False):
    """Audio [B, T] -> dict(prediction [B, T], target [B, T], latent, bits [B]).

    `latent` is the quantised latent the decoder saw (`decode(latent)` gives the prediction
    before trimming to T); `bits` the prior's estimate per example. Training draws the
    quantisation noise from the 'noise' rng stream.
    """
    z = self.encode(x)
    z_hat, bits = self.bottleneck(z, train)
    prediction = self.decode(z_hat)[..., :x.shape[-1]]
    return dict(prediction=prediction, target=x, latent=z_hat, bits=bits)
