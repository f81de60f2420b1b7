"""Quantised variants of the reference autoencoders: time_ae or freq_ae + the Bottleneck.

The reference study counted each float latent as 16 bits. `QuantisedAE` puts the same network's
latent through `Bottleneck` (scalar quantiser + factorised prior) and is fine-tuned from a
trained autoencoder with the rate term (`configs/quantised_ae.py`), so its bitrate is measured
in .fmac bytes like any codec's.

Geometry. The codec machinery (`fmacomp.fmac.compress`) wants W latent frames for W x hop samples,
frame j belonging to samples [j hop, (j + 1) hop). The reference models use VALID convolutions,
which give fewer frames than that, so the input is zero-padded on the right by `pad` samples
(time_ae: kernel - stride = 256; freq_ae: 8 STFT hops = 1024), in training as in coding, and
the output is cut back. `context()` bounds the receptive fields as ConvCodec's does:

  time_ae  frame j reads samples [j hop, j hop + kernel); sample n is written by frames
           floor(n / hop) - kernel / stride + 1 .. floor(n / hop)
  freq_ae  frame j reads STFT frames 4j .. 4j + 12 (two 5-wide stride-2 convs), each spanning
           n_fft samples around f x stft_hop; the decoder mirrors it, then overlap-adds

The loss's domain is the autoencoder's own (normalised audio, or the STFT image); `__call__`
returns it as `domain_prediction` / `domain_target` beside the audio prediction and target.
"""

import math
from typing import Any, Sequence

import flax.linen as nn
from flax.core import frozen_dict
import jax.numpy as jnp

from fmacomp.models import bottleneck as bottleneck_lib

BASES = ('time_ae', 'freq_ae')
# base -> (to its domain, domain -> latent, latent -> domain, domain -> audio)
_DOMAIN = {
    'time_ae': ('normalise', 'encode_normalised', 'decode_normalised', None),
    'freq_ae': ('spectrum', 'encode_spectrum', 'decode_spectrum', 'to_audio'),
}


class QuantisedAE(nn.Module):
  """An autoencoder of the registry with a quantised latent (see the module docstring).

  Attributes:
    base: 'time_ae' or 'freq_ae'.
    base_kwargs: the autoencoder's fields (its config's model block, without `name`).
    max_symbol: the bottleneck's L.
    prior_filters: hidden widths of the factorised prior's per-channel network.
    prior_init_scale: the prior's initial spread, in quantisation steps.
    sample_rate: the autoencoder's rate (documentation for callers).
  """
  base: str = 'time_ae'
  base_kwargs: Any = frozen_dict.FrozenDict()
  max_symbol: int = 15
  prior_filters: Sequence[int] = (3, 3, 3)
  prior_init_scale: float = 4.0
  sample_rate: int = 44100

  def _base_module(self, **extra):
    from fmacomp import models  # pylint: disable=g-import-not-at-top (models imports us)
    if self.base not in BASES:
      raise ValueError(f'base must be one of {BASES}, got {self.base!r}')
    kwargs = dict(self.base_kwargs)
    kwargs.pop('name', None)
    return models.get_model(self.base, **kwargs, **extra)

  @nn.nowrap
  def make_bottleneck(self):
    """The (unbound) `Bottleneck`; its params are `params['bottleneck']`."""
    return bottleneck_lib.Bottleneck(
        channels=self.latent_channels, max_symbol=self.max_symbol, filters=self.prior_filters,
        init_scale=self.prior_init_scale)

  def setup(self):
    self.ae = self._base_module()
    self.bottleneck = self.make_bottleneck()

  @property
  def latent_channels(self):
    return int(self.base_kwargs.get('latent_channels', 32 if self.base == 'time_ae' else 128))

  @property
  def _unbound(self):
    return self._base_module(parent=None)

  @property
  def hop(self):
    """Samples per latent frame."""
    ae = self._unbound
    if self.base == 'time_ae':
      return ae.stride
    return ae.hop * ae.stride ** len(ae.widths)

  @property
  def pad(self):
    """Right padding (samples) that makes W x hop samples give exactly W latent frames."""
    ae = self._unbound
    if self.base == 'time_ae':
      return ae.kernel_size - ae.stride
    frames = lambda length: ae.grid(length)[-1][1]
    for p in range(0, 64 * self.hop, ae.hop):
      if all(frames(w * self.hop + p) == w for w in (8, 9, 16)):
        return p
    raise ValueError(f'no padding aligns freq_ae frames with hop {self.hop}')

  def context(self):
    """(encoder_samples, decoder_frames): receptive-field radii (see the module docstring)."""
    ae = self._unbound
    if self.base == 'time_ae':
      return ae.kernel_size, math.ceil(ae.kernel_size / ae.stride) - 1
    span = 1 + (ae.kernel - 1) * sum(ae.stride ** i for i in range(len(ae.widths)))  # 13
    half = ae.n_fft // 2
    encoder = max(half, (span - 1) * ae.hop + half - self.hop)
    return encoder, math.ceil(((span - 1) * ae.hop + half) / self.hop)

  def _padded(self, x):
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, self.pad)])

  def encode(self, x):
    """Audio [B, W hop] -> continuous latent [B, W, C]."""
    return self.ae.encode(self._padded(x))

  def decode(self, z):
    """Latent [B, W, C] -> audio [B, W hop]."""
    length = z.shape[1] * self.hop
    return self.ae.decode(z, length + self.pad)[..., :length]

  def to_symbols(self, x):
    return self.bottleneck.to_symbols(self.encode(x))

  def from_symbols(self, symbols):
    return self.decode(self.bottleneck.from_symbols(symbols))

  def pmf(self):
    return self.bottleneck.pmf()

  def __call__(self, x, train=False):
    """Audio [B, T] (T a multiple of hop) -> dict(prediction, target, latent, bits,
    domain_prediction, domain_target): the autoencoder's loss domain beside audio."""
    to_domain, encode, decode, to_audio = (
        None if name is None else getattr(self.ae, name) for name in _DOMAIN[self.base])
    length = x.shape[-1]
    target = to_domain(x)
    z = encode(to_domain(self._padded(x)))
    z_hat, bits = self.bottleneck(z, train)
    domain = decode(z_hat, length + self.pad)
    if self.base == 'time_ae':
      prediction_domain = domain[..., :length]
      audio = prediction_domain * self.ae.std.value + self.ae.mean.value
    else:
      prediction_domain = domain[:, :, :target.shape[2]]  # [B, bins, frames, 2]
      audio = to_audio(domain, length + self.pad)[..., :length]
    return dict(prediction=audio, target=x, latent=z_hat, bits=bits,
                domain_prediction=prediction_domain, domain_target=target)
