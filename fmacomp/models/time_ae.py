"""The reference study's time-domain autoencoder: strided 1-D convolutions on the waveform.

Input: mono audio at 44.1 kHz (the config sets `sample_rate`; the model does not resample).

  audio [B, T] -> normalise with the training split's mean/std -> [B, T, 1]
  encoder: Conv1d 1->64 (kernel 512, stride 256, VALID), ReLU, Conv1d 64->32 (kernel 1), ReLU
  latent:  [B, 255, 32] for T = 65,536 (frames x channels; 8x fewer values than samples)
  decoder: ConvTranspose1d 32->64 (kernel 1), ReLU, ConvTranspose1d 64->1 (kernel 512,
           stride 256), landing exactly on T samples, then de-normalise.

The loss is MSE on normalised audio: `__call__` returns the normalised prediction and target.
The statistics live in the non-trainable collection 'norm' ({'mean', 'std'} float32 scalars),
initialised from the `norm_mean` and `norm_std` fields, so they are saved in the checkpoint and
a decoder never needs the training data (train.py computes them on the training split only).
"""

from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from fmacomp.models import layers


class TimeAE(nn.Module):
  """Waveform convolutional autoencoder (see the module docstring for the shapes).

  Attributes:
    hidden_channels: channels of the strided conv (the reference: 64).
    latent_channels: channels of the latent (the reference: 32).
    kernel_size: the strided conv's kernel (512).
    stride: its stride (256); the latent has (T - kernel) // stride + 1 frames.
    crop_length: samples per example, the length `decode` returns by default; None: the
      length the latent's frames come from without remainders ((frames - 1) * stride + kernel).
    norm_mean: initial value of the 'norm' collection's mean (training-split statistic).
    norm_std: initial value of its std.
    sample_rate: the rate the input must already have (documentation for callers).
  """
  hidden_channels: int = 64
  latent_channels: int = 32
  kernel_size: int = 512
  stride: int = 256
  crop_length: Optional[int] = None
  norm_mean: float = 0.0
  norm_std: float = 1.0
  sample_rate: int = 44100

  def setup(self):
    self.mean = self.variable('norm', 'mean', lambda: jnp.float32(self.norm_mean))
    self.std = self.variable('norm', 'std', lambda: jnp.float32(self.norm_std))
    # Matmuls over stride phases with nn.Conv / nn.ConvTranspose's parameters: XLA:CPU runs
    # the strided conv's kernel gradient as a stride-dilated conv and the strided transposed
    # conv over a zero-stuffed input (`stride` times the work); the 1x1 layers' kernel
    # gradients as convs with a 255-step window.
    self.enc_conv = layers.MatmulConv(self.hidden_channels, (self.kernel_size,), (self.stride,))
    self.enc_latent = layers.MatmulConv(self.latent_channels, (1,), (1,))
    self.dec_latent = layers.MatmulConvTranspose(self.hidden_channels, (1,), (1,))
    self.dec_conv = layers.MatmulConvTranspose(1, (self.kernel_size,), (self.stride,))

  def frames(self, length):
    """Latent frames for `length` samples (255 for 65,536)."""
    n = layers.valid_conv_out(length, self.kernel_size, self.stride)
    if n < 1:
      raise ValueError(f'{length} samples are too short for time_ae (kernel {self.kernel_size})')
    return n

  def default_length(self, frames):
    """`crop_length`, or else the length that maps onto `frames` latent frames exactly."""
    return self.crop_length or (frames - 1) * self.stride + self.kernel_size

  def normalise(self, x):
    """Audio [B, T] -> the model's domain: (x - mean) / std."""
    return (x - self.mean.value) / self.std.value

  def encode_normalised(self, xn):
    """Normalised audio [B, T] -> latent [B, frames, latent_channels]."""
    h = nn.relu(self.enc_conv(xn[..., None]))  # [B, frames, hidden]
    return nn.relu(self.enc_latent(h))

  def decode_normalised(self, z, length=None):
    """Latent [B, frames, C] -> normalised audio [B, length] (default: `default_length`)."""
    length = length or self.default_length(z.shape[1])
    if z.shape[1] != self.frames(length):
      raise ValueError(f'a latent of {z.shape[1]} frames does not decode to {length} samples '
                       f'(expected {self.frames(length)} frames)')
    h = nn.relu(self.dec_latent(z))  # [B, frames, hidden]
    y = layers.conv_transpose_to(self.dec_conv, h, (length,))  # [B, length, 1]
    assert y.shape[1:] == (length, 1), y.shape
    return y[..., 0]

  def encode(self, x):
    """Audio [B, T] at `sample_rate` -> latent [B, frames, C] ([B, 255, 32] for 65,536)."""
    return self.encode_normalised(self.normalise(x))

  def decode(self, z, length=None):
    """Latent [B, frames, C] -> audio [B, length] (de-normalised)."""
    return self.decode_normalised(z, length) * self.std.value + self.mean.value

  def __call__(self, x, train=False):
    """Audio [B, T] -> dict(prediction, target, latent), both normalised; loss = their MSE.

    `train` is accepted for a uniform interface: the model has no dropout or batch statistics.
    """
    del train
    target = self.normalise(x)
    z = self.encode_normalised(target)
    return dict(prediction=self.decode_normalised(z, x.shape[-1]), target=target, latent=z)
