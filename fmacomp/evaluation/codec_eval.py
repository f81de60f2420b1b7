"""Codec operating points in the evaluation: real .fmac files through `fmacomp.fmac.compress`.

A codec run (a quantised model with an entropy model, `models.CODECS`) is evaluated
(`CodecEvaluator`) as a user would use it: each test clip is written to a WAV file, compressed
to a .fmac file and decompressed with the public API of `fmacomp.fmac.compress` (`encode_file`,
`decode_file`); its bitrate is the whole file's size (header included) x 8 / seconds. Runs
differing by seed are one row (mean and std over seeds); the group's first run gives the row's
listening audio. A rate-conditioned run (`models.RATE_CONDITIONED`: one network, several
bitrates, `stft_codec`) gives one row per operating point (`model_store.operating_points`), each
file coded at its point, with the point's index and validation bitrate beside its measured one.

`fmac_latents` reads a file's latent for classification from the compressed representation
(`fmacomp.evaluation.compressed_genre`): its symbols are entropy-decoded with the model's integer
tables and dequantised (`Bottleneck.from_symbols`), with no call to the decoder and no audio.
"""

import os
import tempfile

import numpy as np

from fmacomp import audio
from fmacomp.evaluation import common
from fmacomp.evaluation import rows as rows_lib
from fmacomp import models


def load(workdir):
  """The `model_store.Codec` of a codec run's best checkpoint."""
  from fmacomp.fmac import model_store  # pylint: disable=g-import-not-at-top (heavy: jax models)
  return model_store.load(workdir)


def roundtrip(codec, clip, directory):
  """Compresses and decompresses one clip through files: (decoded float32 [T], file bytes)."""
  from fmacomp.fmac import compress  # pylint: disable=g-import-not-at-top
  wav, fmac, out = (os.path.join(directory, n) for n in ('in.wav', 'clip.fmac', 'out.wav'))
  audio.write_audio(wav, clip.audio, clip.rate, subtype='FLOAT')  # lossless input
  result = compress.encode_file(wav, fmac, codec)
  # Float here; `rows.score` takes every codec's output as 16-bit PCM, this one's included.
  compress.decode_file(fmac, out, model=codec, subtype='FLOAT')
  decoded, _ = audio.read_audio(out)  # at the original's rate and length
  return decoded, result.bytes


def _codec_row(group, run, codec, clips, options, directory):
  """One operating point's row (of a loaded `model_store.Codec`) and its first decoded clips."""
  per_clip, n_bytes, decoded = [], 0, []
  for i, clip in enumerate(clips):
    y, size = roundtrip(codec, clip, directory)
    n_bytes += size
    per_clip.append(rows_lib.score(clip, y, clip.rate, i < options.visqol_clips))
    if i < options.listen_clips:
      decoded.append((y, clip.rate))
  seconds = sum(len(c.audio) / c.rate for c in clips)
  frames_per_s = codec.sample_rate / codec.hop
  setting = f'.fmac files, {codec.latent_channels} channels at {codec.sample_rate} Hz'
  fields = {}
  if _rate_conditioned(run):
    point, points = codec.point.index, int(run.config.model.num_points)
    setting = f'point {point} of {points}, {setting}'
    fields = dict(point=point, points=points, curve=group,
                  kbps_validation=_finite_or_none(codec.point.kbps))
  row = rows_lib.make_row(
      group, 'fmacomp', per_clip, kind='codec', model=run.config.model.name,
      base=run.config.model.get('base', run.config.model.name), runs=[run.name],
      seeds=[int(run.config.seed)], seed=int(run.config.seed),
      kbps_measured=8 * n_bytes / seconds / 1000,
      kbps_nominal=rows_lib.NOMINAL_BITS * codec.latent_channels * frames_per_s / 1000,
      latent_channels=int(codec.latent_channels), setting=setting, **fields)
  return row, decoded


def _rate_conditioned(run):
  return run.config.model.name in models.RATE_CONDITIONED


def _finite_or_none(value):
  return float(value) if np.isfinite(value) else None


def point_name(group, point):
  """A rate-conditioned run's row name at one operating point: 'codec@p2' (as rd_bench's)."""
  return f'{group}@p{point}'


def _points(run):
  """(point, Codec) of each operating point of a run: every point of a rate-conditioned run
  (lowest validation bitrate first), else (None, its one codec). Each is loaded when its turn
  comes, so one point's codec is held at a time."""
  if not _rate_conditioned(run):
    yield None, load(run.workdir)
    return
  from fmacomp.fmac import model_store  # pylint: disable=g-import-not-at-top
  for point in model_store.operating_points(run.workdir):
    yield point.index, model_store.Codec(point)


class CodecEvaluator:
  """Compression rows from real .fmac files of the test clips: one per codec group, or, for a
  rate-conditioned run (`models.RATE_CONDITIONED`: one network, several bitrates), one per
  operating point, named `point_name(group, point)` and carrying `point`, `points`, `curve`
  (the group: the rows of one network) and `kbps_validation` (the point's validation estimate,
  what `--kbps` chooses by) beside its measured kbps. Seeds of a group are combined per point."""
  name = 'codecs'

  def run(self, context):
    with tempfile.TemporaryDirectory() as directory:
      for group, members in context.groups('codec').items():
        per_point, listening = {}, {}  # point (None: a single-point run) -> per-seed rows
        for run in members:
          for point, codec in _points(run):
            row, decoded = _codec_row(group, run, codec, context.clips, context.options,
                                      directory)
            per_point.setdefault(point, []).append(row)
            if run is members[0]:
              listening[point] = tuple(decoded)
        for point, per_seed in per_point.items():
          name = group if point is None else point_name(group, point)
          row = rows_lib.name_latent_size(rows_lib.combine_seeds(name, per_seed))
          yield common.Result('compression.rows', row, listening.get(point, ()))


def fmac_latents(path, codec):
  """The dequantised latent of a mono .fmac file, float32 [frames, C], without decoding audio.

  `compress.read_symbols` entropy-decodes the symbols (each chunk's own frames, in order);
  the bottleneck's `from_symbols` dequantises them. The decoder never runs.
  """
  from fmacomp.fmac import compress  # pylint: disable=g-import-not-at-top
  symbols = compress.read_symbols(path, codec)  # int32 [channels, frames, C]
  if symbols.shape[0] != 1:
    raise ValueError(f'{path}: fmac_latents reads mono files, this one has {symbols.shape[0]}')
  symbols = symbols[0]
  return np.asarray(codec.model.apply(codec.variables, symbols,
                                      method=lambda m, s: m.bottleneck.from_symbols(s)))
