"""Codec operating points in the evaluation: real .fmac files through `fmacomp.compress`.

A codec run (a quantised model with an entropy model, `model.name` in `CODECS`) is evaluated
as a user would use it: each test clip is written to a WAV file, compressed to a .fmac file and
decompressed with the public API of `fmacomp.compress` (`encode_file`, `decode_file`); its
bitrate is the whole file's size (header included) x 8 / seconds.

Classification from the compressed representation (`fmac_latents`): a file's symbols are
entropy-decoded with the model's integer tables and dequantised (`Bottleneck.from_symbols`),
with no call to the decoder and no audio reconstructed; a classifier head then reads them
(`fmacomp.genre.classify_latents`). That needs a classifier trained on a codec's latent, which
`fmacomp.models.classifier` cannot build yet (its encoders are the float autoencoders), so the
accuracy-against-bitrate table is reported as pending until one exists.
"""

import os
import tempfile

import numpy as np

from fmacomp import audio
from fmacomp import rate_distortion as rd
from fmacomp.models import bottleneck

CODECS = ('conv_codec',)
PENDING_GENRE = ('no classifier reads a codec\'s latent: fmacomp.models.classifier takes the '
                 'float autoencoders\' encoders only, so accuracy against measured bitrate '
                 '(entropy-decode, dequantise, classify) waits for a codec-latent classifier')


def is_codec(config):
  return config.model.name in CODECS


def _load(workdir):
  from fmacomp import model_store  # pylint: disable=g-import-not-at-top (heavy: jax models)
  return model_store.load(workdir)


def roundtrip(codec, clip, directory):
  """Compresses and decompresses one clip through files: (decoded float32 [T], file bytes)."""
  from fmacomp import compress  # pylint: disable=g-import-not-at-top
  wav, fmac, out = (os.path.join(directory, n) for n in ('in.wav', 'clip.fmac', 'out.wav'))
  audio.write_audio(wav, clip.audio, clip.rate, subtype='FLOAT')  # lossless input
  result = compress.encode_file(wav, fmac, codec)
  compress.decode_file(fmac, out, model=codec, subtype='FLOAT')
  decoded, _ = audio.read_audio(out)  # at the original's rate and length
  return decoded, result.bytes


def _codec_row(group, run, clips, options, directory):
  """One operating point's row and its first decoded clips."""
  codec = _load(run.workdir)
  per_clip, n_bytes, decoded = [], 0, []
  for i, clip in enumerate(clips):
    y, size = roundtrip(codec, clip, directory)
    n_bytes += size
    per_clip.append(rd.score(clip, y, clip.rate, i < options.visqol_clips))
    if i < options.listen_clips:
      decoded.append((y, clip.rate))
  seconds = sum(len(c.audio) / c.rate for c in clips)
  frames_per_s = codec.sample_rate / codec.hop
  row = rd.make_row(
      group, 'fmacomp', per_clip, kind='codec', model=run.config.model.name, runs=[run.name],
      seeds=[int(run.config.seed)], seed=int(run.config.seed),
      kbps_measured=8 * n_bytes / seconds / 1000,
      kbps_nominal=rd.NOMINAL_BITS * codec.latent_channels * frames_per_s / 1000,
      latent_channels=int(codec.latent_channels),
      setting=f'.fmac files, {codec.latent_channels} channels at {codec.sample_rate} Hz')
  return row, decoded


def codec_rows(groups, clips, options, kept, offset):
  """Rows of codec groups (mean and std over seeds where a group has several runs).

  Decoded listening clips of each group's first run go to `kept[offset + row index]`.
  """
  rows = []
  with tempfile.TemporaryDirectory() as directory:
    for group, members in groups.items():
      per_seed = []
      for run in members:
        row, decoded = _codec_row(group, run, clips, options, directory)
        per_seed.append(row)
        if run is members[0]:
          kept[offset + len(rows)] = decoded
      rows.append(rd.combine_seeds(group, per_seed))
  return rows


def fmac_latents(path, codec):
  """The dequantised latent of a mono .fmac file, float32 [frames, C], without decoding audio.

  Chunk k stores the symbols of its own frames plus `codec.decoder_frames` of context on each
  side it has a neighbour (`fmacomp.compress`); the own frames, in order, are the latent.
  """
  from fmacomp import compress  # pylint: disable=g-import-not-at-top
  header, chunks = compress.read_header(path)
  if header.channels != 1:
    raise ValueError(f'{path}: fmac_latents reads mono files, this one has {header.channels}')
  c, parts = codec.decoder_frames, []
  for k, chunk in enumerate(chunks):
    left, right = (c if k > 0 else 0), (c if k < len(chunks) - 1 else 0)
    symbols = bottleneck.decode_symbols(chunk.streams[0], codec.tables,
                                        (chunk.frames, codec.latent_channels), path)
    parts.append(symbols[left:chunk.frames - right])
  symbols = np.concatenate(parts)  # int32 [frames, C]
  return np.asarray(codec.model.apply(codec.variables, symbols,
                                      method=lambda m, s: m.bottleneck.from_symbols(s)))


def compressed_genre(runs, builder, options):
  """Accuracy against bitrate from compressed files, or why it is pending."""
  del builder, options
  codec_dirs = {r.workdir for r in runs if r.kind == 'codec'}
  readers = [r for r in runs if r.kind == 'classifier' and
             os.path.abspath(r.config.get('encoder_workdir') or '') in codec_dirs]
  if not readers:
    return {'status': 'pending', 'reason': PENDING_GENRE, 'rows': []}
  # A classifier on a codec's latent cannot be built yet (see the module docstring).
  names = ', '.join(r.name for r in readers)
  return {'status': 'pending', 'rows': [], 'reason': (
      f'{names} name a codec as encoder, which fmacomp.models.classifier does not build yet')}
