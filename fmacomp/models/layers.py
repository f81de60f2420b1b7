"""Layers the reference autoencoders share: exact-size transposed convs and fast strided convs.

Each layer here keeps the parameters of the Flax layer it replaces (tests compare them with
`nn.Conv` / `nn.ConvTranspose`), so checkpoints and the PyTorch-equivalence checks do not care
which form ran; the fast forms exist because XLA:CPU runs strided and full-height convolutions
generically (see each docstring).
"""

from typing import Sequence

import flax.linen as nn
from jax import lax
import jax.numpy as jnp
import numpy as np


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


def _split_phases(x, strides, blocks):
  """[B, *spatial, C] -> [B, *blocks, *strides, C]: step t of an axis is (block, phase) =
  divmod(t, stride); each axis is zero-padded or cropped to blocks * stride first."""
  nd = len(strides)
  pad, crop, shape = [(0, 0)], [slice(None)], [x.shape[0]]
  for n, s, m in zip(x.shape[1:-1], strides, blocks):
    pad.append((0, max(0, m * s - n)))
    crop.append(slice(0, m * s))
    shape += [m, s]
  x = jnp.pad(x, pad + [(0, 0)])[tuple(crop)].reshape(shape + [x.shape[-1]])
  return x.transpose([0] + [1 + 2 * i for i in range(nd)] + [2 + 2 * i for i in range(nd)] +
                     [1 + 2 * nd])


def _merge_phases(y):
  """[B, *blocks, *strides, D] -> [B, *(blocks * strides), D], the inverse of _split_phases."""
  nd = (y.ndim - 2) // 2
  perm = [0] + [j for i in range(nd) for j in (1 + i, 1 + nd + i)] + [y.ndim - 1]
  sizes = tuple(y.shape[1 + i] * y.shape[1 + nd + i] for i in range(nd))
  return y.transpose(perm).reshape((y.shape[0],) + sizes + (y.shape[-1],))


def _group_taps(kernel, strides):
  """Kernel [*k, C, D] -> ([*groups, *strides, C, D], groups): tap j of an axis becomes
  (group, phase) = divmod(j, stride), the taps zero-padded to groups * stride."""
  nd = len(strides)
  taps = kernel.shape[:nd]
  groups = tuple(-(-k // s) for k, s in zip(taps, strides))
  kernel = jnp.pad(kernel, [(0, g * s - k) for g, s, k in zip(groups, strides, taps)] +
                   [(0, 0)] * 2)
  kernel = kernel.reshape([d for g, s in zip(groups, strides) for d in (g, s)] +
                          list(kernel.shape[-2:]))
  perm = [2 * i for i in range(nd)] + [2 * i + 1 for i in range(nd)] + [2 * nd, 2 * nd + 1]
  return kernel.transpose(perm), groups


def _matmul_2d(x, w):
  """[..., K] @ [K, N] -> [..., N] as one 2-D matmul over the flattened leading axes.

  The same product as `x @ w`, but its gradients stay 2-D matmuls too: with the leading axes
  kept, XLA:CPU computes the kernel gradient as a dot_general contracting two axes (batch and
  blocks) and time_ae's decoder gradient took 2x longer (6.0 against 2.9 ms per call).
  """
  return (x.reshape(-1, x.shape[-1]) @ w).reshape(x.shape[:-1] + (w.shape[-1],))


def _params(module, x, kernel_size, features):
  kernel = module.param('kernel', nn.initializers.lecun_normal(),
                        tuple(kernel_size) + (x.shape[-1], features))
  return kernel, module.param('bias', nn.initializers.zeros, (features,))


def _strided_conv_phases(module, x):
  """What a strided VALID conv over stride phases needs: its parameters, regrouped taps, the
  output size and the input cut into blocks of `stride` steps with the phases as channels.

  Returns:
    (kernel [*G, *S, C, D], bias [D], groups G, output sizes, blocks [B, *M, S * C]).
  """
  nd = len(module.kernel_size)
  kernel, bias = _params(module, x, module.kernel_size, module.features)
  out = [valid_conv_out(n, k, s) for n, k, s in zip(x.shape[1:-1], module.kernel_size,
                                                    module.strides)]
  kernel, groups = _group_taps(kernel, module.strides)
  blocks = _split_phases(x, module.strides, [n + g - 1 for n, g in zip(out, groups)])
  return kernel, bias, groups, out, blocks.reshape(blocks.shape[:1 + nd] + (-1,))


class MatmulConv(nn.Module):
  """`nn.Conv(features, kernel_size, strides, padding='VALID')` as one matmul over stride
  phases: the same parameters and output.

  XLA:CPU runs a strided conv generically and its kernel gradient as a conv dilated by the
  stride (time_ae's encoder: kernel 512, stride 256). Here each axis is cut into blocks of
  `stride` steps (a reshape: no zero stuffing), tap j becomes (group, phase) = divmod(j,
  stride), and every block is multiplied by the whole kernel at once ([blocks, strides * C] @
  [strides * C, groups * D]); output step t sums group g of block t + g. The gradients are the
  same matmul transposed and slices, so no stride-dilated conv appears. Best when the blocks
  are wide (strides * C >= D): the matmul's output has groups * D values per block.

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
    """[B, *spatial, C] -> [B, *((n - kernel) // stride + 1), D]."""
    nd = len(self.kernel_size)
    kernel, bias, groups, out, blocks = _strided_conv_phases(self, x)
    perm = list(range(nd, 2 * nd + 1)) + list(range(nd)) + [2 * nd + 1]
    kernel = kernel.transpose(perm).reshape(blocks.shape[-1], -1)  # [S * C, G * D]
    y = _matmul_2d(blocks, kernel).reshape(blocks.shape[:-1] + groups + (self.features,))
    total = bias
    for g in np.ndindex(*groups):  # output step t: group g of block t + g
      total = total + y[(slice(None),) + tuple(slice(i, i + n) for i, n in zip(g, out)) + g]
    return total


class PhaseConv(nn.Module):
  """`nn.Conv(features, kernel_size, strides, padding='VALID')` as a stride-1 conv over stride
  phases (space-to-depth): the same parameters and output.

  Each axis is cut into blocks of `stride` steps whose phases become channels (a reshape and
  transpose), and the kernel's taps are regrouped the same way (zero taps pad kernel_size to
  groups * stride), so the layer is a stride-1 VALID conv of `groups` taps over
  strides * C channels. Its gradients are stride-1 convs too: XLA:CPU computes the strided
  conv's input gradient over a zero-stuffed copy of the output gradient and its kernel
  gradient as a stride-dilated conv. Used where channels are too few for `MatmulConv`'s
  matmul (freq_ae's 2 -> 8 -> 32 encoder), at (groups * stride / kernel)**d the multiply-adds.

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
    """[B, *spatial, C] -> [B, *((n - kernel) // stride + 1), D]."""
    nd = len(self.kernel_size)
    kernel, bias, groups, out, blocks = _strided_conv_phases(self, x)
    spatial = 'DHW'[-nd:]  # 1-3 spatial axes
    y = lax.conv_general_dilated(blocks, kernel.reshape(groups + (-1, self.features)),
                                 (1,) * nd, 'VALID',
                                 dimension_numbers=(f'N{spatial}C', f'{spatial}IO',
                                                    f'N{spatial}C'))
    return y + bias


class MatmulConvTranspose(nn.Module):
  """`nn.ConvTranspose(..., padding='VALID')` as one matmul over stride phases: same params,
  same output.

  XLA:CPU runs a strided transposed conv as a conv over a stride-dilated (zero-stuffed)
  input, stride**d times the multiply-adds (256x for time_ae's decoder). Here the output is
  cut into blocks of `stride` steps: block m is the sum over tap groups g of input step m - g
  times group g's taps (tap j = (group, phase) = divmod(j, stride)), so gathering the `groups`
  input steps of every block (shifted copies, no zero stuffing) makes the layer one matmul
  ([blocks, groups * C] @ [groups * C, strides * D]) whose rows are whole output blocks. Its
  gradients are the transposed matmuls and slices. Flax's transposed conv does not flip the
  kernel into the conv it runs, so its taps land in reverse order (hence the flip).

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
    kernel, bias = _params(self, x, self.kernel_size, self.features)
    kernel, groups = _group_taps(kernel[(slice(None, None, -1),) * nd], self.strides)
    n = x.shape[1:-1]
    x = jnp.pad(x, [(0, 0)] + [(g - 1, g - 1) for g in groups] + [(0, 0)])
    patches = jnp.concatenate(  # [B, *M, G * C]: block m reads input step m - g for group g
        [x[(slice(None),) + tuple(slice(gmax - 1 - i, gmax - 1 - i + m + gmax - 1)
                                  for i, gmax, m in zip(g, groups, n))]
         for g in np.ndindex(*groups)], axis=-1)
    perm = list(range(nd)) + [2 * nd] + list(range(nd, 2 * nd)) + [2 * nd + 1]
    kernel = kernel.transpose(perm).reshape(patches.shape[-1], -1)  # [G * C, S * D]
    y = _matmul_2d(patches, kernel).reshape(patches.shape[:-1] + tuple(self.strides) +
                                            (self.features,))
    y = _merge_phases(y)  # [B, *((n + G - 1) * S), D]
    crop = tuple(slice(0, (m - 1) * s + k) for m, s, k in zip(n, self.strides,
                                                              self.kernel_size))
    return y[(slice(None),) + crop] + bias


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
