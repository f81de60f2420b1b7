"""Layers the reference autoencoders share: exact-size transposed convs and their fast forms.

Each layer here keeps the parameters of the Flax layer it replaces (tests compare them with
`nn.Conv` / `nn.ConvTranspose`), so checkpoints and the PyTorch-equivalence checks do not care
which form ran; the fast forms exist because XLA:CPU runs strided and full-height convolutions
generically (see each docstring).
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from fmacomp import audio


def valid_conv_out(n, kernel, stride):
  """Length of a VALID convolution's output along one axis."""
  return (n - kernel) // stride + 1


def conv_transpose_to(layer, x, out_sizes):
  """Applies a VALID transposed conv `layer` and lands exactly on spatial `out_sizes`.

  A VALID transposed conv gives (n - 1) * stride + kernel positions; when the forward conv
  dropped a remainder r < stride, PyTorch's `output_padding=r` appends r positions that no
  kernel tap reaches (they hold the bias only). Appending one zero input step and cropping
  computes exactly that, without a custom layer, so the parameters keep Flax's layout.

  Args:
    layer: an `nn.ConvTranspose` with padding 'VALID'.
    x: [B, *spatial, C] input.
    out_sizes: the wanted output length of each spatial axis.

  Returns:
    [B, *out_sizes, features].
  """
  spatial = x.shape[1:-1]
  pad, crop = [(0, 0)], [slice(None)]
  for n, k, s, want in zip(spatial, layer.kernel_size, layer.strides or (1,) * len(spatial),
                           out_sizes):
    extra = want - ((n - 1) * s + k)
    if not 0 <= extra < s:
      raise ValueError(f'a transposed conv (kernel {k}, stride {s}) cannot map {n} steps '
                       f'onto {want}')
    pad.append((0, 1 if extra else 0))
    crop.append(slice(0, want))
  y = layer(jnp.pad(x, pad + [(0, 0)]))
  return y[tuple(crop) + (slice(None),)]


class MatmulConvTranspose(nn.Module):
  """`nn.ConvTranspose(..., padding='VALID')` as one matmul + overlap-add: same params, output.

  XLA:CPU runs a strided transposed conv as a conv over a stride-dilated (zero-stuffed)
  input, stride**d times the multiply-adds (256x for time_ae's decoder). Here every input step
  is multiplied by the whole kernel at once ([N, C] @ [C, taps * D]) and the per-step outputs
  are overlap-added `stride` apart along each spatial axis. Flax's transposed conv does not
  flip the kernel into the conv it runs, so its taps land in reverse order (hence the flip).

  Attributes:
    features: output channels D.
    kernel_size: taps per spatial axis.
    strides: stride per spatial axis.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int]

  @nn.compact
  def __call__(self, x):
    """[B, *spatial, C] -> [B, *((n - 1) * stride + kernel), D]."""
    nd = len(self.kernel_size)
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        tuple(self.kernel_size) + (x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    kernel = kernel[(slice(None, None, -1),) * nd]
    y = jnp.tensordot(x, kernel, axes=[[x.ndim - 1], [nd]])  # [B, *spatial, *kernel, D]
    for i, stride in enumerate(self.strides):
      # Layout [B, *done, *spatial[i:], *kernel[i:], D]: overlap-add spatial i with its taps.
      y = jnp.moveaxis(y, (1 + i, 1 + nd), (-2, -1))
      y = jnp.moveaxis(audio.overlap_add(y, stride), -1, 1 + i)
    return y + bias


class FullHeightConv(nn.Module):
  """`nn.Conv(features, (H, 1), padding='VALID')` of an input of height H, as an einsum.

  [B, H, W, C] -> [B, 1, W, D]; the same parameters (XLA:CPU runs the conv generically, slowly).
  """
  features: int
  kernel_size: Sequence[int]

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        tuple(self.kernel_size) + (x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    assert x.shape[1] == kernel.shape[0], (x.shape, kernel.shape)
    return (jnp.einsum('bhwc,hcd->bwd', x, kernel[:, 0]) + bias)[:, None]


class FullHeightConvTranspose(nn.Module):
  """`nn.ConvTranspose(features, (H, 1), padding='VALID')` of a height-1 input, as an einsum.

  [B, 1, W, C] -> [B, H, W, D]; the same parameters (the taps land in reverse order).
  """
  features: int
  kernel_size: Sequence[int]

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        tuple(self.kernel_size) + (x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    return jnp.einsum('bwc,hcd->bhwd', x[:, 0], kernel[::-1, 0]) + bias
