"""The hyperprior's symbols <-> one ANS stream, with integer tables only (`HyperPrior` documents
the model; `hyperprior.freeze_tables` the tables).

A stream holds one chunk of one audio channel: int symbols [T, C + Cz] (y, then z). Decoding
order: z's anchors channel by channel; z's levels in order, each grouped by table index; then y
grouped by table index. Within a group, symbols are in frame-major order. Each symbol's table
comes from symbols decoded before it through integer arithmetic (`side_indices`,
`scale_index`), so encoder and decoder agree bit for bit on any processor. Frames past the
chunk's ends count as z = 0 (the chunk is coded on its own); the symbols are the same as in a
whole-file stream, only their probabilities near a seam differ.
"""

import constriction
import numpy as np

from fmacomp import errors
from fmacomp.models import bottleneck
from fmacomp.models import hyperprior

KEYS = ('cdf', 'side_scale_cdf', 'side_index', 'scale_cdf', 'h_s_0', 'h_s_1', 'thresholds')


def _conv3(x, kernel):
  """int64 'same' conv of kernel 3 along time: x [T, I], kernel [3, I, O] -> [T, O]."""
  padded = np.pad(x, ((1, 1), (0, 0)))
  t = x.shape[0]
  return sum(padded[k:k + t] @ kernel[k] for k in range(3))


def scale_index(z, tables):
  """Ladder index of every y symbol from int z symbols [T, Cz]: int64 [T, C], integers only."""
  h = _conv3(np.asarray(z, np.int64), tables['h_s_0'])
  h = np.where(h >= 0, h, h >> 3)  # leaky ReLU of slope 1/8 (hyperprior.LEAK), floored
  o = _conv3(h, tables['h_s_1'])  # [T, C] at 2 FRACTION_BITS
  return np.searchsorted(tables['thresholds'], o, side='right')


def side_indices(z, tables):
  """(level [T], ladder index [T, Cz]) of z's frames; the index is -1 for anchors, and at level
  l it depends only on frames of lower levels."""
  levels, channels, contexts = np.shape(tables['side_index'])
  level, d = hyperprior.side_order(len(z), levels)
  context = hyperprior.side_context(np.abs(np.asarray(z, np.int64)), d, contexts)
  index = tables['side_index'][np.maximum(level, 0)[:, None], np.arange(channels), context]
  return level, np.where((level < 0)[:, None], -1, index)


def check_tables(tables):
  """Raises ValueError unless the tables are complete and every CDF row is valid."""
  missing = set(KEYS) - set(tables)
  if missing:
    raise ValueError(f'hyperprior tables lack {sorted(missing)}')
  for key in ('cdf', 'side_scale_cdf', 'scale_cdf'):
    bottleneck.check_tables({'cdf': tables[key]})
  if len(tables['thresholds']) != len(tables['scale_cdf']) - 1:
    raise ValueError('one threshold between each two ladder scales')
  if np.any(np.diff(tables['thresholds']) < 0):
    raise ValueError('ladder thresholds must not decrease')
  index = np.asarray(tables['side_index'])
  if index.ndim != 3 or index.min() < 0 or index.max() >= len(tables['side_scale_cdf']):
    raise ValueError('side_index must be [levels, Cz, contexts] indices into the ladder')


def _models(cdf):
  """One constriction model per CDF row, from its integer masses only (exact in float64)."""
  cdf = np.asarray(cdf, np.int64)
  return [constriction.stream.model.Categorical(p, perfect=False)
          for p in np.diff(cdf, axis=1) / float(cdf[0, -1])]


def _half(cdf):
  return (np.shape(cdf)[1] - 2) // 2


def _split(symbols, tables):
  """[T, C + Cz] -> (y [T, C], z [T, Cz]), checking shape, type and alphabets."""
  symbols = np.asarray(symbols)
  side, channels = len(tables['cdf']), tables['h_s_1'].shape[-1]
  if symbols.ndim != 2 or symbols.shape[1] != channels + side:
    raise ValueError(f'symbols {symbols.shape} do not match tables for {channels} + {side} '
                     'channels')
  if not np.issubdtype(symbols.dtype, np.integer):
    raise ValueError(f'symbols must be integers, got {symbols.dtype}')
  y, z = symbols[:, :channels], symbols[:, channels:]
  for part, limit in ((y, _half(tables['scale_cdf'])), (z, _half(tables['cdf']))):
    # Compare both ends (not abs): abs of the most negative int32 is still negative.
    if part.size and (part.min() < -limit or part.max() > limit):
      raise ValueError(f'symbols outside [-{limit}, {limit}]')
  return y, z


def _push_groups(coder, values, index, models, offset):
  """Pushes values [n, ...] grouped by table index, for `_pull_groups` to read in order."""
  for k in reversed(range(len(models))):
    group = values[index == k]
    if group.size:
      coder.encode_reverse((group + offset).astype(np.int32), models[k])


def _pull_groups(coder, out, mask, index, models, offset):
  """Fills out[mask] (index[mask] its tables) in `_push_groups`' order."""
  for k, model in enumerate(models):
    where = mask & (index == k)
    count = int(np.count_nonzero(where))
    if count:
      out[where] = coder.decode(model, count) - offset


def encode_symbols(symbols, tables):
  """int symbols [T, C + Cz] (y, then z) -> bytes: one ANS stream (little-endian u32 words)."""
  y, z = _split(symbols, tables)
  coder = constriction.stream.stack.AnsCoder()
  # ANS is last-in first-out: push in the reverse of the decoding order.
  _push_groups(coder, y, scale_index(z, tables), _models(tables['scale_cdf']),
               _half(tables['scale_cdf']))
  level, index = side_indices(z, tables)
  side_models, lz = _models(tables['side_scale_cdf']), _half(tables['cdf'])
  for lv in reversed(range(len(tables['side_index']))):
    rows = level == lv
    _push_groups(coder, z[rows], index[rows], side_models, lz)
  anchors = _models(tables['cdf'])
  for c in reversed(range(z.shape[1])):
    coder.encode_reverse((z[level < 0, c] + lz).astype(np.int32), anchors[c])
  return coder.get_compressed().astype('<u4').tobytes()


def decode_symbols(data, tables, shape, path='payload'):
  """bytes from `encode_symbols` -> int32 symbols [T, C + Cz] (`shape`).

  Raises:
    errors.InputError(path, reason): data that is not a whole stream of this shape.
  """
  frames, total = shape
  _split(np.zeros((0, total), np.int32), tables)  # checks the shape against the tables
  if len(data) % 4:
    raise errors.InputError(path, 'corrupt payload: not a whole number of 32-bit words')
  side, lz = len(tables['cdf']), _half(tables['cdf'])
  z = np.zeros((frames, side), np.int32)
  y = np.zeros((frames, total - side), np.int32)
  levels = len(tables['side_index'])
  level, _ = hyperprior.side_order(frames, levels)
  try:
    coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, '<u4').astype(np.uint32))
    for c, model in enumerate(_models(tables['cdf'])):
      z[level < 0, c] = coder.decode(model, int(np.count_nonzero(level < 0))) - lz
    side_models = _models(tables['side_scale_cdf'])
    for lv in range(levels):
      _, index = side_indices(z, tables)  # level lv's contexts are decoded by now
      _pull_groups(coder, z, (level == lv)[:, None], index, side_models, lz)
    _pull_groups(coder, y, np.ones(y.shape, bool), scale_index(z, tables),
                 _models(tables['scale_cdf']), _half(tables['scale_cdf']))
  except (ValueError, RuntimeError) as e:
    raise errors.InputError(path, f'corrupt payload: {e}') from None
  if not coder.is_empty():
    raise errors.InputError(path, 'corrupt payload: data left after the last symbol')
  return np.concatenate([y, z], axis=1)


def frame_bits(symbols, tables):
  """Ideal code length in bits of each frame of int symbols [T, C + Cz]: float64 [T]."""
  y, z = _split(symbols, tables)

  def bits(cdf, index, values):  # [T, channels]
    cdf = np.asarray(cdf, np.int64)
    return -np.log2(np.diff(cdf, axis=1)[index, values + _half(cdf)] / cdf[0, -1])

  level, index = side_indices(z, tables)
  side = np.where(level[:, None] < 0,
                  bits(tables['cdf'], np.arange(z.shape[1]), z),
                  bits(tables['side_scale_cdf'], np.maximum(index, 0), z))
  return bits(tables['scale_cdf'], scale_index(z, tables), y).sum(1) + side.sum(1)


def table_bits(symbols, tables):
  """Ideal code length in bits of int symbols [T, C + Cz] under the integer tables."""
  return float(frame_bits(symbols, tables).sum())


class StreamCoding:
  """The hyperprior family's stream coder, as `fmacomp.fmac.model_store` drives a family.

  Attributes:
    module: the (unbound) `hyperprior.HyperPrior`.
    name: its params subtree in the model's variables.
  """

  def __init__(self, module, name):
    self.module, self.name = module, name

  def freeze(self, variables):
    """The model's variables -> `hyperprior.freeze_tables` of its hyperprior."""
    return hyperprior.freeze_tables(self.module, {'params': variables['params'][self.name]})

  check = staticmethod(check_tables)
  encode = staticmethod(encode_symbols)
  decode = staticmethod(decode_symbols)
  bits = staticmethod(table_bits)
