"""The reference study's frequency-domain autoencoder: convolutions over an STFT image.

Input: mono audio at 8 kHz (the config sets `sample_rate`; the model does not resample).

  audio [B, T] -> STFT (n_fft 512, hop 128, Hann, centred) -> [B, 257, 513, 2]
                  (bins x frames x (re, im) for T = 65,536: an NHWC image, H = frequency)
  encoder: Conv 2->8->32 (5x5, stride 2, VALID, ReLU): 257x513 -> 127x255 -> 62x126,
           then a 62x1 VALID conv spanning the whole frequency axis -> [B, 1, 126, C]
  latent:  [B, 126, C] (the height-1 axis squeezed: frames x channels)
  decoder: the mirror image with transposed convs, landing exactly on 257x513 (PyTorch's
           `output_padding` where a stride-2 VALID conv dropped a row), then ISTFT -> [B, T].

The loss is MSE between the predicted and the true real/imag STFT (`__call__` returns both).
Every shape is computed from the crop length, n_fft and hop, never hard-coded, so `tiny`
configs with short crops and narrow layers have the same structure.

Latent activation: the reference's published code ends every encoder (its waveform model and
its earlier frequency models) with a ReLU on the bottleneck, so `latent_relu=True` keeps it.
"""

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from fmacomp import audio
from fmacomp.models import layers


class FreqAE(nn.Module):
  """STFT convolutional autoencoder (see the module docstring for the shapes).

  Attributes:
    latent_channels: C, the latent's channels (the reference swept 512/256/128/64/32).
    n_fft: STFT size (257 bins for 512).
    hop: STFT hop (513 frames for a 65,536-sample crop at 128).
    widths: encoder channels after each strided conv (the reference: 8, 32).
    kernel: the strided convs' square kernel.
    stride: their stride (both axes).
    latent_relu: ReLU on the latent (the reference's convention).
    crop_length: samples per example, the length `decode` returns by default; None: the
      length the latent's frames come from without remainders ((frames - 1) * hop samples).
    sample_rate: the rate the input must already have (documentation for callers).
  """
  latent_channels: int = 128
  n_fft: int = 512
  hop: int = 128
  widths: Sequence[int] = (8, 32)
  kernel: int = 5
  stride: int = 2
  latent_relu: bool = True
  crop_length: Optional[int] = None
  sample_rate: int = 8000

  def setup(self):
    k, s = (self.kernel, self.kernel), (self.stride, self.stride)
    # Stride-1 convs over stride phases, with nn.Conv's parameters: XLA:CPU computes a strided
    # conv's gradients as convs over zero-stuffed or stride-dilated operands.
    self.enc_convs = [layers.PhaseConv(w, k, s) for w in self.widths]
    height = self.n_fft // 2 + 1  # frequency rows left after the strided convs (62 for 512)
    for _ in self.widths:
      height = layers.valid_conv_out(height, self.kernel, self.stride)
    # Einsums and matmuls with nn.Conv / nn.ConvTranspose's parameters: XLA:CPU runs these
    # layers as generic or zero-stuffed convs, several times slower.
    self.enc_latent = layers.FullHeightConv(self.latent_channels, (height, 1))
    self.dec_latent = layers.FullHeightConvTranspose(self.widths[-1], (height, 1))
    outs = list(self.widths[:-1])[::-1] + [2]  # ... -> 8 -> (re, im)
    self.dec_convs = [layers.MatmulConvTranspose(w, k, s) for w in outs]

  def grid(self, length):
    """(bins, frames) of the STFT of `length` samples and after each strided conv."""
    sizes = [(self.n_fft // 2 + 1, length // self.hop + 1)]  # centred STFT
    for _ in self.widths:
      sizes.append(tuple(layers.valid_conv_out(n, self.kernel, self.stride) for n in sizes[-1]))
    if min(sizes[-1]) < 1:
      raise ValueError(f'{length} samples are too short for freq_ae (n_fft {self.n_fft}, '
                       f'hop {self.hop})')
    return sizes

  def default_length(self, frames):
    """`crop_length`, or else the length whose STFT maps onto `frames` latent frames exactly."""
    if self.crop_length:
      return self.crop_length
    for _ in self.widths:
      frames = (frames - 1) * self.stride + self.kernel
    return (frames - 1) * self.hop

  def spectrum(self, x):
    """Audio [B, T] -> the model's domain: STFT real/imag [B, bins, frames, 2]."""
    spec = audio.stft(x, self.n_fft, self.hop)  # complex [B, frames, bins]
    spec = jnp.stack([spec.real, spec.imag], axis=-1)  # [B, frames, bins, 2]
    return jnp.swapaxes(spec, 1, 2).astype(jnp.float32)

  def encode_spectrum(self, spec):
    """STFT image [B, bins, frames, 2] -> latent [B, frames', C]."""
    h = spec
    for conv in self.enc_convs:
      h = nn.relu(conv(h))
    z = self.enc_latent(h)  # [B, 1, frames', C]
    if self.latent_relu:
      z = nn.relu(z)
    return z[:, 0]

  def decode_spectrum(self, z, length=None):
    """Latent [B, frames', C] -> predicted STFT image [B, bins, frames, 2] for `length`.

    `length` (samples) fixes the output padding where a strided conv dropped a remainder;
    None means `default_length`.
    """
    length = length or self.default_length(z.shape[1])
    sizes = self.grid(length)
    if z.shape[1] != sizes[-1][1]:
      raise ValueError(f'a latent of {z.shape[1]} frames does not decode to {length} samples '
                       f'(expected {sizes[-1][1]} frames)')
    h = nn.relu(self.dec_latent(z[:, None]))  # [B, rows, frames', widths[-1]]
    for i, conv in enumerate(self.dec_convs):
      h = layers.conv_transpose_to(conv, h, sizes[-2 - i])
      if i < len(self.dec_convs) - 1:
        h = nn.relu(h)
    assert h.shape[1:] == sizes[0] + (2,), (h.shape, sizes[0])
    return h

  def to_audio(self, spec, length=None):
    """STFT image [B, bins, frames, 2] -> audio [B, length] by inverse STFT.

    `length` defaults to `crop_length`, else to (frames - 1) * hop.
    """
    spec = jnp.swapaxes(spec, 1, 2)  # [B, frames, bins, 2]
    return audio.istft(spec[..., 0] + 1j * spec[..., 1], self.n_fft, self.hop,
                       length or self.crop_length or (spec.shape[1] - 1) * self.hop)

  def encode(self, x):
    """Audio [B, T] at `sample_rate` -> latent [B, frames', C] ([B, 126, C] for 65,536)."""
    return self.encode_spectrum(self.spectrum(x))

  def decode(self, z, length=None):
    """Latent [B, frames', C] -> audio [B, length] (default: `default_length`)."""
    length = length or self.default_length(z.shape[1])
    return self.to_audio(self.decode_spectrum(z, length), length)

  def __call__(self, x, train=False):
    """Audio [B, T] -> dict(prediction, target, latent); loss = MSE(prediction, target).

    `train` is accepted for a uniform interface: the model has no dropout or batch statistics.
    """
    del train
    target = self.spectrum(x)  # [B, bins, frames, 2]
    z = self.encode_spectrum(target)
    return dict(prediction=self.decode_spectrum(z, x.shape[-1]), target=target, latent=z)
