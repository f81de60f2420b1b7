"""Audio file <-> .fmac file through a trained codec, in chunks, with bounded memory.

Encoding streams the input (`audio.stream_blocks`, original rate), turns stereo into mid/side
(M = (L + R) / 2, S = (L - R) / 2; other channel counts are coded independently), resamples to
the model's rate and codes the signal in chunks of `chunk_s` seconds. Decoding reverses each
step and writes exactly the original's sample rate, channels and number of samples.

Chunks are independent and their seams are invisible. The canonical signal is the input
extended by zeros on both sides (its latent likewise by zero frames); chunk k owns latent frames
[a, b) and stores the symbols of [a - c, b + c) (c = `Codec.decoder_frames`, the decoder's
receptive radius; not past the signal's ends), encoded from the audio of those frames plus
`Codec.encoder_frames` of context either side. So every stored symbol equals the whole-signal
encoder's, and every decoded sample sees the same symbols as a whole-signal decode: chunked and
whole coding agree up to float rounding, at a cost of 2c frames of symbols per seam (about 1 %
at 20 s chunks). Every chunk owns at least c frames, so the decoder needs no chunk size: the
first and last chunks have context on one side only, all others on both.

A chunk's symbols become one stream per channel through `Codec.encode_stream`: the model
family's own coder (a factorised prior's tables for conv_codec, byte for byte as before; a
hyperprior's side and main symbols in one ANS stream for stft_codec).

`encode_array` and `decode_bytes` do the same in memory (the Python API, `fmacomp.fmac.api`):
the bytes are those `encode_file` writes, and the audio what `decode_file` writes before its
output's quantisation.

Memory: one chunk of audio and its network activations, plus the compressed bytes (about 1 %
of the PCM). Network windows have a few fixed shapes, so a file compiles the codec once or twice.
"""

import dataclasses
import io
import os
import tempfile
import time

from absl import logging
import numpy as np
import soundfile as sf
import soxr

from fmacomp import audio
from fmacomp import errors
from fmacomp import files
from fmacomp.fmac import file_format as fmac
from fmacomp.fmac import model_store

CHUNK_S = 20.0  # seconds of audio per chunk (model rate)
MAX_CHUNK_S = 120.0  # the decoder refuses longer chunks (bounds its memory on forged files)
BLOCK_S = 5.0  # seconds read from the input at a time
SIDE_FLOOR_DB = 30.0  # stft_codec stereo: side frames this far below the mid are not coded
PROGRESS_S = 60.0  # log progress every minute of audio, for files longer than two


@dataclasses.dataclass(frozen=True)
class Result:
  """What a command reports: seconds of audio, bytes of the .fmac file, and their kbps."""
  duration_s: float
  bytes: int
  operating_point: int

  @property
  def kbps(self):
    return self.bytes * 8 / self.duration_s / 1000

  def summary(self):
    return f'duration_s={self.duration_s:.3f} bytes={self.bytes} kbps={self.kbps:.3f}'


def _bucket(frames):
  """Rounds up to 4 sizes per octave, so windows of any length share a few compiled shapes."""
  quantum = 1 << max((int(frames).bit_length() - 3), 0)
  return -(-frames // quantum) * quantum


def _tail_sizes(frames, chunk, context):
  """Own frames of the last chunks: at most `chunk` each, and at least `context` each."""
  sizes = [chunk] * ((frames - 1) // chunk) + [frames - chunk * ((frames - 1) // chunk)]
  if len(sizes) > 1 and sizes[-1] < context:
    sizes[-2] -= context - sizes[-1]
    sizes[-1] = context
  return sizes


class _Encoder:
  """Consumes [channels, t] blocks at the model rate and emits chunks as soon as they can."""

  def __init__(self, codec, channels, chunk_s, stereo=False):
    self.codec, self.hop, self.stereo = codec, codec.hop, stereo
    self.c, self.e = codec.decoder_frames, codec.encoder_frames
    # A chunk must own at least 2c frames (see `_tail_sizes`) and outgrow its context.
    self.chunk = max(int(round(chunk_s * codec.sample_rate / codec.hop)),
                     2 * self.c + self.e + 1)
    self.window = self.chunk + 2 * (self.c + self.e)  # frames per network call
    self.start = -(self.c + self.e) * self.hop  # signal index of buffer[:, 0]
    self.buffer = np.zeros((channels, -self.start), np.float32)  # the zeros before the signal
    self.total, self.next_frame, self.chunks = 0, 0, []

  def push(self, block):
    self.buffer = np.concatenate([self.buffer, block], axis=1)
    self.total += block.shape[1]
    # A chunk is coded once its window is read; then the next chunk owns >= c + e frames.
    while self.start + self.buffer.shape[1] >= (
        self.next_frame + self.chunk + self.c + self.e) * self.hop:
      self._code(self.next_frame, self.next_frame + self.chunk, self.window, last=False)
      self.next_frame += self.chunk
      drop = (self.next_frame - self.c - self.e) * self.hop - self.start
      self.buffer, self.start = self.buffer[:, drop:], self.start + drop

  def finish(self):
    """Codes the rest; returns (chunks, samples at the model rate, frames)."""
    frames = -(-self.total // self.hop)
    a = self.next_frame
    sizes = _tail_sizes(frames - a, self.chunk, self.c) if frames > a else []
    for size in sizes:
      # A file longer than a chunk keeps the streaming window: one compiled shape per model.
      window = self.window if frames > self.chunk else _bucket(size + 2 * (self.c + self.e))
      self._code(a, a + size, window, last=a + size == frames)
      a += size
    return self.chunks, self.total, frames

  def _code(self, a, b, window, last):
    """Stores symbols of frames [a - c, b + c) clipped to the signal, from one network call."""
    left = min(self.c, a)
    right = 0 if last else self.c
    lo = (a - self.c - self.e) * self.hop - self.start  # window start in the buffer
    x = self.buffer[:, lo:lo + window * self.hop]
    x = np.pad(x, ((0, 0), (0, window * self.hop - x.shape[1])))  # zeros past the end
    keep = side_frames(self.codec, x) if self.stereo and self.codec.masks_frames else None
    symbols = self.codec.to_symbols(x, keep)  # [channels, window, C]
    first = self.c + self.e - left
    symbols = symbols[:, first:first + left + (b - a) + right]
    streams = tuple(self.codec.encode_stream(s) for s in symbols)
    self.chunks.append(fmac.Chunk(symbols.shape[1], streams))


def side_frames(codec, x):
  """keep [2, frames] for mid/side audio x [2, frames * hop]: the mid's frames all, the side's
  where its energy is within SIDE_FLOOR_DB of the mid's.

  An encoder decision, as perceptual stereo coders make (the decoder is unchanged): a side
  channel that far below the mid is masked by it, and a frame left uncoded costs what the
  hyperprior charges for silence. This is what makes near-identical channels cheap: the codec's
  distortion is level-invariant (log-magnitude features and losses), so by itself it spends as
  many bits on a side channel 40 dB down as on the mid.
  """
  energy = codec.frame_energy(x)  # [2, frames]
  keep = np.ones_like(energy)
  keep[1] = energy[1] > energy[0] * 10 ** (-SIDE_FLOOR_DB / 10)
  return keep


def window_shapes(codec, channels, chunk_s=CHUNK_S):
  """The network inputs of a file longer than a chunk: (encoder audio [channels, samples],
  decoder symbols [channels, frames, C]) shapes; every call on such a file has these."""
  encoder = _Encoder(codec, 0, chunk_s)
  frames = _bucket(encoder.chunk + 2 * codec.decoder_frames)
  return (channels, encoder.window * codec.hop), (channels, frames, codec.latent_channels)


def _to_coded(x, stereo_mode):
  """[t, C] original channels -> [channels coded, t]."""
  if stereo_mode == 'mid_side':
    return np.stack([(x[:, 0] + x[:, 1]) / 2, (x[:, 0] - x[:, 1]) / 2])
  return np.ascontiguousarray(x.T)


def _from_coded(y, stereo_mode):
  """[channels coded, t] -> [t, C] original channels."""
  if stereo_mode == 'mid_side':
    return np.stack([y[0] + y[1], y[0] - y[1]], axis=1)
  return np.ascontiguousarray(y.T)


def _progress(verb, done_s, total_s, state):
  if total_s > 2 * PROGRESS_S and done_s >= state['next']:
    rate = done_s / max(time.time() - state['t0'], 1e-9)
    logging.info('%s %.0f / %.0f s (%.0f %%, %.1fx real time)', verb, done_s, total_s,
                 100 * done_s / total_s, rate)
    state['next'] += PROGRESS_S


def encode_file(in_path, out_path, codec, chunk_s=CHUNK_S):
  """Encodes any audio file with `codec` (a `model_store.Codec`); writes `out_path` atomically.

  Returns:
    `Result` (duration of the original, bytes of the file).

  Raises:
    errors.AudioError / InputError: unreadable or empty audio, audio shorter than the codec
      codes (`Codec.min_samples`: one frame for the older families), more channels than the
      format holds, an output path that is a directory.
  """
  in_path, out_path = os.fspath(in_path), os.fspath(out_path)
  if os.path.isdir(out_path):
    raise errors.InputError(out_path, 'is a directory')
  info = audio.audio_info(in_path)
  blocks = audio.stream_blocks(in_path, block_s=BLOCK_S, mono=False)
  header, chunks = _encode_blocks(blocks, info.sample_rate, info.channels, codec, in_path,
                                  info.duration_s, chunk_s)
  fmac.write_fmac(out_path, header, chunks)
  return Result(header.num_samples / header.sample_rate, os.path.getsize(out_path),
                codec.point.index)


def encode_array(x, sample_rate, codec, chunk_s=CHUNK_S, name='<array>'):
  """Encodes audio in memory: float32 [samples, channels] -> the bytes of an .fmac file.

  The bytes are exactly what `encode_file` writes for a float file holding `x`. Errors name
  `name`, as `encode_file`'s name the input file.
  """
  x = np.asarray(x, np.float32)
  block = max(1, int(round(BLOCK_S * sample_rate)))
  blocks = (x[i:i + block] for i in range(0, x.shape[0], block))
  header, chunks = _encode_blocks(blocks, sample_rate, x.shape[1], codec, name,
                                  x.shape[0] / sample_rate, chunk_s)
  with tempfile.TemporaryDirectory() as tmp:
    # file_format writes files only; a private temporary file keeps one writer of the format.
    path = os.path.join(tmp, 'audio.fmac')
    fmac.write_fmac(path, header, chunks)
    with open(path, 'rb') as f:
      return f.read()


def _encode_blocks(blocks, sample_rate, channels, codec, name, duration_s, chunk_s):
  """Codes [t, channels] float32 blocks at `sample_rate` -> (fmac.Header, [fmac.Chunk])."""
  if channels > fmac.MAX_CHANNELS:
    raise errors.InputError(name, f'{channels} channels; .fmac holds at most '
                                  f'{fmac.MAX_CHANNELS}')
  stereo_mode = 'mid_side' if channels == 2 else 'independent'
  resampler = None
  if sample_rate != codec.sample_rate:
    resampler = soxr.ResampleStream(sample_rate, codec.sample_rate, channels,
                                    dtype='float32', quality='HQ')
  encoder = _Encoder(codec, channels, chunk_s, stereo=stereo_mode == 'mid_side')
  samples, state = 0, {'next': PROGRESS_S, 't0': time.time()}
  for x, last in _with_last(blocks):
    samples += x.shape[0]
    if resampler is not None:
      x = resampler.resample_chunk(x, last=last)
    if x.shape[0]:
      encoder.push(_to_coded(x, stereo_mode))
    _progress('encoded', samples / sample_rate, duration_s, state)
  chunks, model_samples, frames = encoder.finish()
  if model_samples < codec.min_samples:
    raise errors.InputError(name, (
        f'too short: {samples} samples, less than one latent frame ({codec.hop} samples at '
        f'{codec.sample_rate} Hz)'))
  header = fmac.Header(model=codec.point.model, model_hash=codec.model_hash,
                       sample_rate=sample_rate, channels=channels, num_samples=samples,
                       latent_channels=codec.latent_channels, hop_samples=codec.hop,
                       stereo_mode=stereo_mode, operating_point=codec.point.index)
  fmac.check_coverage(header, frames, codec.sample_rate, name)
  return header, chunks


def _with_last(blocks):
  """Yields (block, is_last) pairs from an iterator (the resampler must know the last one)."""
  previous = None
  for block in blocks:
    if previous is not None:
      yield previous, False
    previous = block
  if previous is not None:
    yield previous, True


def read_header(in_path):
  """The header and chunks of an .fmac file (CRCs checked, symbols still coded)."""
  return fmac.read_fmac(os.fspath(in_path))


def codec_for(header, path, model=None):
  """The `Codec` that wrote a file: `model` (a Codec, a workdir or a shipped name) or, by
  default, the shipped model the header names; checks the model name and weights hash."""
  if isinstance(model, model_store.Codec):
    fmac.check_model(header, path, model.point.model, model.model_hash)
    return model
  if model is None:
    if header.model not in model_store.shipped_models():
      raise errors.InputError(path, f'encoded with model {header.model!r}, which is not a '
                                    'shipped model; pass --model=WORKDIR')
    model = header.model
  points = model_store.operating_points(model)
  fmac.check_model(header, path, points[0].model)
  # The header's operating point first; any other point with these weights will do.
  order = sorted(points, key=lambda p: p.index != header.operating_point)
  for point in order:
    codec = model_store.Codec(point)
    if codec.model_hash == header.model_hash:
      return codec
  fmac.check_model(header, path, expected_hash=codec.model_hash)  # raises: other weights
  return codec


def _layout(header, chunks, codec, path):
  """(own frames, left context) of each chunk; checks them against the model and the header."""
  if header.hop_samples != codec.hop or header.latent_channels != codec.latent_channels:
    raise errors.InputError(path, (
        f'header says hop {header.hop_samples} and {header.latent_channels} latent channels, '
        f'the model has {codec.hop} and {codec.latent_channels}'))
  c, n = codec.decoder_frames, len(chunks)
  limit = int(MAX_CHUNK_S * codec.sample_rate / codec.hop) + 2 * c
  layout = []
  for k, chunk in enumerate(chunks):
    left, right = (c if k > 0 else 0), (c if k < n - 1 else 0)
    own = chunk.frames - left - right
    if not 1 <= own or chunk.frames > limit:
      raise errors.InputError(path, f'chunk {k}: {chunk.frames} frames do not fit the model '
                                    f'(context {c}, at most {limit})')
    layout.append((own, left))
  fmac.check_coverage(header, sum(own for own, _ in layout), codec.sample_rate, path)
  return layout


def read_symbols(in_path, codec):
  """The symbols of an .fmac file without decoding audio: int32 [channels, frames, C].

  Each chunk's own frames, in order (its context frames are dropped): the whole signal's
  latent, as `Codec.model.bottleneck.from_symbols` would dequantise it. Checks as `decode_file`.
  """
  in_path = os.fspath(in_path)
  header, chunks = read_header(in_path)
  fmac.check_model(header, in_path, codec.point.model, codec.model_hash)
  parts = []
  for (own, left), chunk in zip(_layout(header, chunks, codec, in_path), chunks):
    parts.append(np.stack([codec.decode_stream(s, chunk.frames, in_path)[left:left + own]
                           for s in chunk.streams]))
  return np.concatenate(parts, axis=1)


def decode_chunks(header, chunks, codec, path):
  """Yields float32 [channels coded, t] audio at the model rate, chunk by chunk."""
  c = codec.decoder_frames
  layout = _layout(header, chunks, codec, path)
  window = _bucket(max(own for own, _ in layout) + 2 * c)  # one compiled shape per file
  for (own, left), chunk in zip(layout, chunks):
    symbols = np.zeros((header.channels, window, codec.latent_channels), np.int32)
    for i, stream in enumerate(chunk.streams):
      symbols[i, c - left:c - left + chunk.frames] = codec.decode_stream(stream, chunk.frames,
                                                                         path)
    yield codec.from_symbols(symbols)[:, c * codec.hop:(c + own) * codec.hop]


def output_format(path):
  """The soundfile format of an output path's extension ('WAV', 'FLAC', ...), or InputError."""
  ext = os.path.splitext(path)[1].lstrip('.').upper()
  if ext not in sf.available_formats():
    raise errors.InputError(path, f'unknown output format {ext.lower()!r} (use .wav or .flac)')
  return ext


def decode_file(in_path, out_path, model=None, subtype='PCM_16'):
  """Decodes an .fmac file to audio (16-bit WAV by default), atomically.

  Args:
    in_path: the .fmac file.
    out_path: `.wav` (or `.flac`, ...): the original rate, channels and length.
    model: a `model_store.Codec`, a workdir or a shipped name; None: the shipped model the
      header names.
    subtype: soundfile subtype of the output.

  Returns:
    `Result` of the .fmac file.

  Raises:
    errors.InputError: a truncated, corrupted or foreign file, or an unknown model.
  """
  in_path, out_path = os.fspath(in_path), os.fspath(out_path)
  fmt = output_format(out_path)
  header, chunks = read_header(in_path)
  codec = codec_for(header, in_path, model)
  with files.atomic_path(out_path) as tmp:
    with sf.SoundFile(tmp, 'w', samplerate=header.sample_rate, channels=header.channels,
                      subtype=subtype, format=fmt) as out:
      for x in _decoded_blocks(header, chunks, codec, in_path):
        out.write(x)
  return Result(header.num_samples / header.sample_rate, os.path.getsize(in_path),
                header.operating_point)


def decode_bytes(data, model=None, name='<bytes>'):
  """Decodes an .fmac file in memory, as `decode_file` would write it but unquantised.

  Args:
    data: the bytes of an .fmac file.
    model: as `decode_file`'s.
    name: what errors name.

  Returns:
    (float32 [samples, channels] in [-1, 1], the header's sample rate).
  """
  header, chunks = fmac.read_fmac(name, fileobj=io.BytesIO(bytes(data)))
  codec = codec_for(header, name, model)
  blocks = list(_decoded_blocks(header, chunks, codec, name))
  return np.concatenate(blocks, axis=0), header.sample_rate


def _decoded_blocks(header, chunks, codec, path):
  """Yields float32 [t, channels] blocks in [-1, 1] at the original rate, `num_samples` in all."""
  resampler = None
  if header.sample_rate != codec.sample_rate:
    resampler = soxr.ResampleStream(codec.sample_rate, header.sample_rate, header.channels,
                                    dtype='float32', quality='HQ')
  duration = header.num_samples / header.sample_rate
  written, state = 0, {'next': PROGRESS_S, 't0': time.time()}
  for y, last in _with_last(decode_chunks(header, chunks, codec, path)):
    x = _from_coded(y, header.stereo_mode)  # [t, C]
    if resampler is not None:
      x = resampler.resample_chunk(x, last=last)
    x = np.clip(x[:header.num_samples - written], -1.0, 1.0)
    yield x
    written += x.shape[0]
    _progress('decoded', written / header.sample_rate, duration, state)
  # Resampler rounding can leave the output a sample or two short: pad with silence.
  yield np.zeros((header.num_samples - written, header.channels), np.float32)
