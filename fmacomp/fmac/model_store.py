"""Trained codecs by name or workdir: operating points, weights hash, frozen CDF tables.

`--model` names a shipped model (a folder `fmacomp/shipped/<name>/`, laid out like a training
workdir) or any training workdir. A model has one or more operating points: a workdir is one;
a sweep workdir (`sweep/<run>/`, `fmacomp.training.sweep`) has one per finished run, ordered by
bitrate.
Each operating point is a best checkpoint; `load(point)` returns a `Codec` ready to code. A
rate-conditioned model (`models.RATE_CONDITIONED`: one network, `num_points` bitrates) has one
operating point per point of its model, all in one workdir; its index is the model's `point`.

How symbols become stream bytes belongs to the model family: a model with `stream_coding()`
(e.g. the hyperprior of `stft_codec`) brings its own tables and coder; any other codec codes with
its bottleneck's factorised tables (`BottleneckCoding`), byte for byte as it always has.

Integer CDF tables (DESIGN.md: the checkpoint carries everything decoding needs) live in the
checkpoint's step folder, `checkpoints/best/<step>/cdf_tables.npz`, with the params checksum they
were frozen from. `export_tables` writes them (atomically; the first encode of a workdir does it
if training did not); from then on encoder and decoder read the same integers and never
recompute them from floats. A shipped model ships its tables.
"""

import dataclasses
import functools
import json
import os

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from fmacomp import errors
from fmacomp import files
from fmacomp.fmac import file_format as fmac
from fmacomp import models
from fmacomp.models import bottleneck
from fmacomp.training import checkpointing

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'shipped')
TABLES_FILE = 'cdf_tables.npz'
# What encoding uses without --model (README, DESIGN.md); `--kbps` picks among its points only
# (older shipped models by name only), and without `--kbps` the point nearest DEFAULT_KBPS.
DEFAULT_MODEL = 'music-fullband-v1'
DEFAULT_KBPS = 6.0


def shipped_models():
  """Names of the shipped models: the sub-folders of `SHIPPED_DIR` that hold a config.json."""
  if not os.path.isdir(SHIPPED_DIR):
    return []
  return sorted(n for n in os.listdir(SHIPPED_DIR)
                if os.path.isfile(os.path.join(SHIPPED_DIR, n, 'config.json')))


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
  """One trained codec of a model: its workdir and its validation bitrate (kbps)."""
  model: str  # the name files carry: a shipped name, or the config's model name
  index: int
  workdir: str
  kbps: float


def _best_kbps(workdir, key='kbps_estimated'):
  """`key` of the validation record at the best (lowest loss) evaluation; nan if none."""
  best = None
  path = os.path.join(workdir, 'metrics.jsonl')
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        record = json.loads(line)
        if record.get('split') == 'validation' and (best is None or
                                                     record['loss'] <= best['loss']):
          best = record
  return float(best.get(key, 'nan')) if best else float('nan')


def operating_points(spec):
  """The operating points of a shipped model name or a workdir, lowest bitrate first.

  Raises:
    errors.InputError(spec, reason): neither a shipped name nor a codec workdir.
  """
  if spec in shipped_models():
    root, name = os.path.join(SHIPPED_DIR, spec), spec
  elif os.path.isfile(os.path.join(spec, 'config.json')):
    root, name = os.path.abspath(spec), None
  else:
    shipped = ', '.join(shipped_models()) or 'none yet'
    raise errors.InputError(spec, f'unknown model: not a training workdir and not a shipped '
                                  f'model (shipped: {shipped})')
  sweep_dir = os.path.join(root, 'sweep')
  runs = [os.path.join(sweep_dir, r) for r in sorted(os.listdir(sweep_dir))] if os.path.isdir(
      sweep_dir) else []
  runs = [r for r in runs if os.path.isdir(checkpointing.checkpoint_dir(r, checkpointing.BEST))]
  workdirs = runs or [root]
  config = checkpointing.load_config(workdirs[0])
  if config.model.name not in models.CODECS:
    raise errors.InputError(spec, f'model {config.model.name!r} is not a codec '
                                  f'(codecs: {", ".join(models.CODECS)})')
  name = name or config.model.name
  if config.model.name in models.RATE_CONDITIONED:  # every point of one network (no sweeps)
    points = [OperatingPoint(name, i, root, _best_kbps(root, f'kbps_estimated_p{i}'))
              for i in range(config.model.num_points)]
    return sorted(points, key=lambda p: (np.nan_to_num(p.kbps), p.index))
  points = sorted(((_best_kbps(w), w) for w in workdirs), key=lambda p: (np.nan_to_num(p[0]), p[1]))
  return [OperatingPoint(name, i, w, kbps) for i, (kbps, w) in enumerate(points)]


def nearest(points, kbps):
  """The operating point whose bitrate is nearest `kbps` on a log scale (None: the first)."""
  if kbps is None:
    return points[0]
  if kbps <= 0:
    raise errors.InputError('--kbps', f'must be positive, got {kbps}')
  known = [p for p in points if np.isfinite(p.kbps) and p.kbps > 0] or points[:1]
  return min(known, key=lambda p: abs(np.log(max(p.kbps, 1e-9) / kbps)))


def _step_dir(workdir, step):
  for which in (checkpointing.BEST, checkpointing.LATEST):
    path = os.path.join(checkpointing.checkpoint_dir(workdir, which), str(step))
    if os.path.isdir(path):
      return path
  raise errors.InputError(workdir, f'checkpoint step {step} has no folder')


class BottleneckCoding:
  """The stream coder of codecs with a factorised `Bottleneck` (conv_codec, quantised_ae):
  one ANS stream of int symbols [frames, C] under integer tables {'cdf': int32 [C, 2L + 2]}."""

  def __init__(self, model):
    self.model = model

  def freeze(self, variables):
    return bottleneck.cdf_tables(self.model.make_bottleneck(),
                                 {'params': variables['params']['bottleneck']})

  check = staticmethod(bottleneck.check_tables)
  encode = staticmethod(bottleneck.encode_symbols)
  decode = staticmethod(bottleneck.decode_symbols)
  bits = staticmethod(bottleneck.table_bits)


def stream_coding(model):
  """The model family's stream coder: freeze(variables) -> tables, check(tables),
  encode(symbols, tables) -> bytes, decode(bytes, tables, shape, path), bits(symbols, tables)."""
  if hasattr(model, 'stream_coding'):
    return model.stream_coding()
  return BottleneckCoding(model)


def _freeze_tables(model, variables):
  return stream_coding(model).freeze(variables)


def export_tables(workdir):
  """Freezes the best checkpoint's prior into integer tables beside it; returns their path."""
  model, variables, step = _restore(workdir)
  path = os.path.join(_step_dir(workdir, step), TABLES_FILE)
  tables = _freeze_tables(model, variables)
  with files.atomic_path(path) as tmp:
    with open(tmp, 'wb') as f:
      np.savez(f, **tables, params_checksum=checkpointing.params_checksum(variables['params']))
  return path


def _restore(workdir):
  """(model, variables, step) of a workdir's best checkpoint (`checkpointing.load_run`)."""
  run = checkpointing.load_run(workdir)
  return run.model, run.variables, run.step


def _tables(workdir, step, model, variables, checksum):
  """The stored tables of this checkpoint; frozen and stored on first use."""
  path = os.path.join(_step_dir(workdir, step), TABLES_FILE)
  if not os.path.exists(path):
    try:
      export_tables(workdir)
    except OSError as e:  # a read-only model folder: code with tables made now, say so
      logging.warning('%s: cannot store CDF tables (%s); using tables frozen in memory', path, e)
      return _freeze_tables(model, variables)
  with np.load(path) as stored:
    if str(stored['params_checksum']) != checksum:
      raise errors.InputError(path, 'CDF tables were frozen from other weights')
    tables = {k: stored[k] for k in stored.files if k != 'params_checksum'}
  try:
    stream_coding(model).check(tables)
  except ValueError as e:
    raise errors.InputError(path, str(e)) from None
  return tables


class Codec:
  """A loaded operating point: the network, its weights, hash and integer tables.

  Attributes:
    point: the `OperatingPoint`.
    model: the codec module (`ConvCodec`, `StftCodec`, ...).
    sample_rate, hop: the model's.
    latent_channels: symbols per frame as stored (the model's `symbol_channels` if it has
      them: a hyperprior's side symbols are stored beside the latent's).
    min_samples: the shortest audio it codes (a rate-conditioned family: any length; older
      families keep their refusal of less than one frame).
    encoder_frames: context the encoder needs either side of a chunk, in frames.
    decoder_frames: context the decoder needs (symbols stored twice at chunk boundaries).
    model_hash: the 16 bytes a header carries (`codec.weights_hash` of the params checksum).
    tables: the family's integer tables ({'cdf': int32 [C, 2L + 2]} for a factorised prior).
  """

  def __init__(self, point):
    self.point = point
    self.model, self.variables, step = _restore(point.workdir)
    checksum = checkpointing.params_checksum(self.variables['params'])
    self.model_hash = fmac.weights_hash(checksum)
    self.tables = _tables(point.workdir, step, self.model, self.variables, checksum)
    self.coding = stream_coding(self.model)
    self.sample_rate, self.hop = int(self.model.sample_rate), self.model.hop
    self.latent_channels = getattr(self.model, 'symbol_channels', self.model.latent_channels)
    self.min_samples = 1 if hasattr(self.model, 'stream_coding') else self.hop
    # A rate-conditioned model codes at its point: the index the header carries.
    self._point = {'point': point.index} if hasattr(self.model, 'num_points') else {}
    encoder_samples, self.decoder_frames = self.model.context()
    self.encoder_frames = -(-encoder_samples // self.hop)
    self._variables = jax.device_put(self.variables)

  @functools.partial(jax.jit, static_argnums=0)
  def _to_symbols(self, variables, x, keep=None):
    extra = {} if keep is None else {'keep': keep}
    return self.model.apply(variables, x, method='to_symbols', **self._point, **extra)

  @functools.partial(jax.jit, static_argnums=0)
  def _frame_energy(self, variables, x):
    return self.model.apply(variables, x, method='frame_energy')

  @property
  def masks_frames(self):
    """Whether the encoder may leave frames uncoded (`to_symbols(x, keep)`; stft_codec)."""
    return hasattr(self.model, 'frame_energy')

  def frame_energy(self, x):
    """Audio [B, frames * hop] -> float32 [B, frames]: each frame's energy (numpy)."""
    return np.asarray(self._frame_energy(self._variables, jnp.asarray(x, jnp.float32)))

  @functools.partial(jax.jit, static_argnums=0)
  def _from_symbols(self, variables, symbols):
    return self.model.apply(variables, symbols, method='from_symbols', **self._point)

  def to_symbols(self, x, keep=None):
    """Audio [B, frames * hop] at the model rate -> int32 symbols [B, frames, C] (numpy);
    `keep` [B, frames] (0/1) leaves frames uncoded where `masks_frames`."""
    keep = None if keep is None else jnp.asarray(keep, jnp.float32)
    return np.asarray(self._to_symbols(self._variables, jnp.asarray(x, jnp.float32), keep))

  def from_symbols(self, symbols):
    """int symbols [B, frames, C] -> float32 audio [B, frames * hop] (numpy)."""
    return np.asarray(self._from_symbols(self._variables, jnp.asarray(symbols, jnp.int32)))

  def encode_stream(self, symbols):
    """int symbols [frames, latent_channels] -> the bytes of one stream."""
    return self.coding.encode(symbols, self.tables)

  def decode_stream(self, data, frames, path='payload'):
    """bytes of one stream -> int32 symbols [frames, latent_channels]; InputError if corrupt."""
    return self.coding.decode(data, self.tables, (frames, self.latent_channels), path)

  def estimated_bits(self, symbols):
    """The float prior's bits for int symbols [..., C] (what training called the rate); a
    family with its own coder: its integer tables' bits, per [frames, C] stream."""
    if hasattr(self.model, 'stream_coding'):
      streams = np.asarray(symbols).reshape((-1,) + np.shape(symbols)[-2:])
      return sum(self.coding.bits(s, self.tables) for s in streams)
    y = jnp.asarray(symbols, jnp.float32)[None]
    bits = self.model.apply(self.variables, y, method=lambda m, v: m.bottleneck.bits(v))
    return float(bits[0])


def load(spec, kbps=None):
  """The `Codec` of a shipped name or workdir, at the operating point nearest `kbps`."""
  point = nearest(operating_points(spec), kbps)
  return Codec(point)
