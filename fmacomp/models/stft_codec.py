r"""A full-band, frame-rate codec: STFT frames, ConvNeXt blocks, a rate-conditioned hyperprior.

Mono audio at `sample_rate` in and out; one latent frame per STFT hop (44.1 kHz, n_fft 2048,
hop 512: 86.1 frames/s, 21.5 Hz bins, 75 % overlap: Vocos' 4x ratio at 44.1 kHz).

  frames: frame f covers samples [f hop - (n - hop) / 2, f hop + (n + hop) / 2), zero-padded at
          the ends (not reflected: the canonical signal is zero-extended, as chunked coding
          assumes), periodic Hann, real FFT -> X [B, F, n / 2 + 1]; F = ceil(T / hop)
  features: log(1 + |X| / a) and X / (|X| + a) (a = MAG_FLOOR): zero for digital silence, and
          near zero for bins far below 16-bit noise, whose phase is noise
  encoder: Dense(width) -> ConvNeXt blocks -> Dense(latent_channels), all bias-free: silence
          gives y = 0 exactly
  bottleneck: y x gain[point] (per-channel gains, one row per operating point; Cui et al. 2021),
          scalar quantisation, `hyperprior.HyperPrior` (side z, per-frame Gaussian scales)
  decoder: round(y) / gain[point] -> Dense(width) -> ConvNeXt blocks -> Dense(2 bins): log |X|
          and a phase angle p (Vocos' head) -> X = |X| (cos p + i sin p) -> inverse STFT
          (windowed overlap-add divided by the summed squared window) -> exactly T samples

ConvNeXt block (Liu et al. 2022, 1-D as in Vocos): x + g * W2 gelu(W1 LN(depthwise conv k7 x)),
the depthwise conv written as k shifted multiply-adds (XLA's grouped conv is slow on CPU).

Cost per frame at width 256, 4 + 5 blocks, MLP x3, 32 latent channels (`macs_per_frame`):
encoder 2.38 M MACs (input projection 0.79 M, blocks 0.40 M each), decoder 2.51 M (head
0.52 M); x 86.1 frames/s = 0.20 GMAC/s to encode and 0.22 GMAC/s to decode, the FFTs
(~0.03 M multiplies a frame) and the hyperprior (~0.01 M) aside.

Non-causal with a bounded receptive field (`context()`), so chunked coding equals whole-file
coding (fmacomp.fmac.compress). Every length codes: F = ceil(T / hop) >= 1 frames, any T >= 1.
Symbols are stored as [F, C + Cz] (y, then z) and coded by the family's own stream coder
(`stream_coding()`, `fmacomp.models.hyperprior_coder`); `point` picks the operating point.

Measured (one CPU thread, XLA single-threaded, random weights, 20 s of audio, on a shared
machine at load ~20): the networks run 80x (encode) and 71x (decode) real time, the ANS
coder 790x / 350x.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fmacomp.models import hyperprior as hyperprior_lib
from fmacomp.models import hyperprior_coder

MAG_FLOOR = 1e-3  # |X| where features fade: 16-bit noise gives |X| ~ 5e-4 at n_fft 2048
MAX_LOG_MAG = 9.0  # exp(9) = 8103 > the largest |X| of full-scale audio (n_fft / 2 = 1024)


def _window(n_fft):
  return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def analysis(x, n_fft, hop):
  """Audio [B, F hop] -> complex64 [B, F, n_fft / 2 + 1], frames as in the module docstring."""
  ratio, pad = n_fft // hop, (n_fft - hop) // 2
  frames = x.shape[-1] // hop
  blocks = jnp.pad(x, ((0, 0), (pad, pad))).reshape(x.shape[0], frames + ratio - 1, hop)
  windows = jnp.concatenate([blocks[:, i:i + frames] for i in range(ratio)], -1)  # [B, F, n]
  return jnp.fft.rfft(windows * _window(n_fft), axis=-1)


def _window_sum(n_fft, hop, frames):
  """The overlap-added squared window over the output span [F hop] (numpy: a constant)."""
  ratio, pad = n_fft // hop, (n_fft - hop) // 2
  w2 = np.square(_window(n_fft)).reshape(ratio, hop)
  total = np.zeros((frames + ratio - 1, hop), np.float32)
  for i in range(ratio):
    total[i:i + frames] += w2[i]
  return total.reshape(-1)[pad:pad + frames * hop]  # every entry > 0 (see the frame layout)


def synthesis(spec, n_fft, hop):
  """complex [B, F, n_fft / 2 + 1] -> audio [B, F hop]: the least-squares inverse of `analysis`."""
  ratio, pad = n_fft // hop, (n_fft - hop) // 2
  batch, frames = spec.shape[:2]
  windows = jnp.fft.irfft(spec, n=n_fft, axis=-1) * _window(n_fft)  # [B, F, n]
  parts = windows.reshape(batch, frames, ratio, hop)
  y = sum(jnp.pad(parts[:, :, i], ((0, 0), (i, ratio - 1 - i), (0, 0))) for i in range(ratio))
  y = y.reshape(batch, -1)[:, pad:pad + frames * hop]
  return y / _window_sum(n_fft, hop, frames)


def features(spec):
  """complex [B, F, bins] -> float32 [B, F, 3 bins]: log(1 + |X| / a), X / (|X| + a)."""
  power = jnp.real(spec)**2 + jnp.imag(spec)**2
  # |X| with a finite gradient at X = 0 (jnp.abs's is NaN there), and exactly 0 for silence.
  mag = jnp.where(power > 0, jnp.sqrt(jnp.where(power > 0, power, 1.0)), 0.0)
  inverse = 1 / (mag + MAG_FLOOR)  # real arithmetic: a complex division costs 4x the encoder's FFT
  return jnp.concatenate([jnp.log1p(mag / MAG_FLOOR), jnp.real(spec) * inverse,
                          jnp.imag(spec) * inverse], -1)


class ConvNeXtBlock(nn.Module):
  """x + g * W2 gelu(W1 LN(depthwise conv x)): [B, F, width] -> [B, F, width]."""
  mlp_ratio: int = 3
  kernel_size: int = 7
  use_bias: bool = False
  layer_scale: float = 0.1

  @nn.compact
  def __call__(self, x):
    width, k = x.shape[-1], self.kernel_size
    kernel = self.param('depthwise', nn.initializers.normal(1 / math.sqrt(k)), (k, width))
    padded = jnp.pad(x, ((0, 0), (k // 2, k // 2), (0, 0)))
    h = sum(padded[:, i:i + x.shape[1]] * kernel[i] for i in range(k))
    h = nn.LayerNorm(use_bias=self.use_bias)(h)  # LN(0) = 0: silence stays zero
    h = nn.gelu(nn.Dense(self.mlp_ratio * width, use_bias=self.use_bias)(h))
    h = nn.Dense(width, use_bias=self.use_bias)(h)
    return x + self.param('gamma', nn.initializers.constant(self.layer_scale), (width,)) * h


class StftCodec(nn.Module):
  """The frame-rate codec (see the module docstring).

  Attributes:
    sample_rate: the rate audio must have.
    n_fft: STFT frame length, a multiple of `hop_samples` (n_fft - hop even).
    hop_samples: samples per frame (`hop`).
    width: channels of the ConvNeXt stacks.
    encoder_blocks, decoder_blocks: ConvNeXt blocks each side.
    mlp_ratio: hidden width of a block's MLP, in widths.
    kernel_size: of the depthwise convs (odd).
    latent_channels: C of y.
    side_channels, hyper_hidden: the hyperprior's z channels and width.
    max_symbol, side_max_symbol: alphabets of y and z.
    scale_min, scale_max, num_scales: the hyperprior's scale ladder.
    num_points: operating points (rows of per-channel gains), lowest rate first.
    gain_range: initial gains of points 0 and num_points - 1 (geometric in between).
  """
  sample_rate: int = 44100
  n_fft: int = 2048
  hop_samples: int = 512
  width: int = 256
  encoder_blocks: int = 4
  decoder_blocks: int = 5
  mlp_ratio: int = 3
  kernel_size: int = 7
  latent_channels: int = 32
  side_channels: int = 8
  hyper_hidden: int = 64
  max_symbol: int = 63
  side_max_symbol: int = 15
  scale_min: float = 0.11
  scale_max: float = 32.0
  num_scales: int = 48
  num_points: int = 5
  gain_range: tuple = (0.25, 2.0)

  @property
  def hop(self):
    return self.hop_samples

  @property
  def symbol_channels(self):
    """Symbols per frame as stored: y's C, then z's Cz."""
    return self.latent_channels + self.side_channels

  def frames(self, length):
    return max(1, -(-length // self.hop))

  def context(self):
    """(encoder_samples, decoder_frames): receptive radii, as `ConvCodec.context`.

    Encoder: the frame's STFT window reaches (n - hop) / 2 samples beyond its own span, each
    block (k - 1) / 2 frames and h_a 2 frames (z is stored beside y). Decoder: each block
    (k - 1) / 2 frames, and the overlap-add ceil((n - hop) / 2 / hop) frames.
    """
    reach = (self.kernel_size - 1) // 2
    overlap = (self.n_fft - self.hop) // 2
    encoder = overlap + (self.encoder_blocks * reach + 2) * self.hop
    return encoder, self.decoder_blocks * reach + -(-overlap // self.hop)

  def macs_per_frame(self):
    """Multiply-accumulates per frame of the dense layers and convs: (encoder, decoder)."""
    bins, w, k = self.n_fft // 2 + 1, self.width, self.kernel_size
    block = k * w + 2 * self.mlp_ratio * w * w
    encoder = 3 * bins * w + self.encoder_blocks * block + w * self.latent_channels
    decoder = self.latent_channels * w + self.decoder_blocks * block + w * 2 * bins
    return encoder, decoder

  def setup(self):
    block = lambda i, bias: ConvNeXtBlock(self.mlp_ratio, self.kernel_size, bias, name=i)
    self.enc_in = nn.Dense(self.width, use_bias=False)
    self.enc_blocks = [block(f'enc_{i}', False) for i in range(self.encoder_blocks)]
    self.enc_out = nn.Dense(self.latent_channels, use_bias=False)
    self.dec_in = nn.Dense(self.width)
    self.dec_blocks = [block(f'dec_{i}', True) for i in range(self.decoder_blocks)]
    self.dec_norm = nn.LayerNorm()
    self.head = nn.Dense(2 * (self.n_fft // 2 + 1), bias_init=self._head_bias)
    lo, hi = (math.log(g) for g in self.gain_range)
    self.log_gain = self.param(
        'log_gain', lambda _, shape: jnp.broadcast_to(
            jnp.linspace(lo, hi, shape[0])[:, None], shape), (self.num_points,
                                                               self.latent_channels))
    self.hyperprior = self.make_hyperprior()

  @staticmethod
  def _head_bias(key, shape, dtype=jnp.float32):
    del key  # quiet at init (|X| = e^-3), zero phase
    bins = shape[0] // 2
    return jnp.concatenate([jnp.full((bins,), -3.0, dtype), jnp.zeros((bins,), dtype)])

  @nn.nowrap
  def make_hyperprior(self):
    """The (unbound) `HyperPrior`; its params are `params['hyperprior']`."""
    return hyperprior_lib.HyperPrior(
        self.latent_channels, self.side_channels, self.hyper_hidden, self.max_symbol,
        self.side_max_symbol, self.scale_min, self.scale_max, self.num_scales)

  @nn.nowrap
  def stream_coding(self):
    """How this family codes its symbols (`fmacomp.fmac.model_store`)."""
    return hyperprior_coder.StreamCoding(self.make_hyperprior(), 'hyperprior')

  def _gain(self, point, batch):
    """Per-example gains [B, 1, C] of operating point(s) `point` (int or int [B])."""
    point = jnp.broadcast_to(jnp.asarray(0 if point is None else point), (batch,))
    return jnp.exp(self.log_gain)[point][:, None]

  def encode(self, x):
    """Audio [B, T] -> continuous latent [B, ceil(T / hop), C] (before the gain)."""
    pad = self.frames(x.shape[-1]) * self.hop - x.shape[-1]
    h = self.enc_in(features(analysis(jnp.pad(x, ((0, 0), (0, pad))), self.n_fft, self.hop)))
    for block in self.enc_blocks:
      h = block(h)
    return self.enc_out(h)

  def decode(self, latent):
    """Dequantised latent [B, F, C] -> audio [B, F hop]."""
    h = self.dec_in(latent)
    for block in self.dec_blocks:
      h = block(h)
    out = self.head(self.dec_norm(h))
    bins = self.n_fft // 2 + 1
    mag = jnp.exp(jnp.minimum(out[..., :bins], MAX_LOG_MAG))
    spec = jax.lax.complex(mag * jnp.cos(out[..., bins:]), mag * jnp.sin(out[..., bins:]))
    return synthesis(spec, self.n_fft, self.hop)

  def _y(self, x, point):
    """Audio -> y in quantisation steps, clipped to the alphabet: [B, F, C]."""
    y = self.encode(x) * self._gain(point, x.shape[0])
    return jnp.clip(y, -self.max_symbol, self.max_symbol)

  def frame_energy(self, x):
    """Audio [B, T] -> float32 [B, ceil(T / hop)]: each frame's windowed energy sum |X|^2
    (a function of the frame's own samples, so chunked and whole-file coding agree)."""
    pad = self.frames(x.shape[-1]) * self.hop - x.shape[-1]
    spec = analysis(jnp.pad(x, ((0, 0), (0, pad))), self.n_fft, self.hop)
    return jnp.sum(jnp.real(spec)**2 + jnp.imag(spec)**2, -1)

  def to_symbols(self, x, point=None, keep=None):
    """Audio [B, T] -> int32 symbols [B, F, C + Cz]: y, then the side latent z.

    `keep` (float [B, F] of 0 or 1, optional) is an encoder decision: frames where it is 0 get
    y = 0 (and z computed from that y), which decodes like silence and costs what the hyperprior
    charges for silence; the decoder needs nothing to know about it.
    """
    y = self._y(x, point)
    if keep is not None:
      y = y * keep[..., None]
    symbols = jnp.round(y).astype(jnp.int32)
    return jnp.concatenate([symbols, self.hyperprior.side_symbols(y)], -1)

  def from_symbols(self, symbols, point=None):
    """int symbols [B, F, C + Cz] -> audio [B, F hop] (z is for the coder only)."""
    y = symbols[..., :self.latent_channels].astype(jnp.float32)
    return self.decode(y / self._gain(point, symbols.shape[0]))

  def __call__(self, x, train=False, point=None):
    """Audio [B, T] -> dict(prediction [B, T], target, latent, bits [B], point [B]).

    `point` (int or int [B]) picks each example's operating point; `bits` is the hyperprior's
    estimate (y + z). Training draws quantisation noise from the 'noise' rng stream and gives
    the decoder round(y) with a straight-through gradient, as `bottleneck.Bottleneck` does.
    """
    y = self._y(x, point)
    if train:
      noisy = y + jax.random.uniform(self.make_rng('noise'), y.shape, minval=-0.5, maxval=0.5)
      y_hat = y + jax.lax.stop_gradient(jnp.round(y) - y)
      _, bits = self.hyperprior(y, noisy, train)
    else:
      y_hat = jnp.round(y)
      _, bits = self.hyperprior(y, y_hat, train)
    latent = y_hat / self._gain(point, x.shape[0])
    prediction = self.decode(latent)[:, :x.shape[-1]]
    point = jnp.broadcast_to(jnp.asarray(0 if point is None else point), (x.shape[0],))
    return dict(prediction=prediction, target=x, latent=latent, bits=bits, point=point)
