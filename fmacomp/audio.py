"""Audio I/O and frontends: read, resample, segment, stream and write audio; STFT, ISTFT, mel.

File I/O is numpy (soundfile decodes, soxr resamples). Every reader raises
`errors.AudioError(path, reason)` for a file it cannot use, so callers (dataset builders,
launchers) never see a raw soundfile exception:

  missing file, 0-byte file, a file libsndfile does not recognise (e.g. text named `.mp3`), a file
  with no frames, data that fails to decode (libsndfile error mid-file, e.g. a cut FLAC), and a
  file that decodes to fewer frames than its header declares (a cut MP3 whose Xing header still
  counts the whole song: libsndfile would return the first part silently).

Truncation is caught only where the header knows the true length. A cut WAV (libsndfile sizes
it from the file), a cut Ogg stream (sized from its last complete page, when it opens at all)
and a cut MP3 without a Xing/Info header decode to their surviving prefix without an error:
that prefix is returned as is, and the dataset's `min_duration_s` decides whether it is long
enough. libsndfile also never decodes past an MP3's declared length, so a variable-bitrate MP3
without a Xing/Info header (rare: LAME writes one) can come back shorter than it is.

The frontends (`stft`, `istft`, `mel_spectrogram`, `log_mel`) are jnp, jitted with their sizes
static (so an eager call compiles once; inside a caller's jit they just trace) and
differentiable, with the shape contract in each docstring.
"""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf
import soxr

from fmacomp import errors
from fmacomp import files

_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError)  # LibsndfileError subclasses RuntimeError
# A decode may fall short of the declared length by encoder rounding, never by more than this.
_SHORTFALL_TOLERANCE = 0.01


@dataclasses.dataclass(frozen=True)
class AudioInfo:
  """What a file's header says. For MP3, `frames` is libsndfile's estimate from the header."""
  sample_rate: int
  channels: int
  frames: int
  duration_s: float
  format: str  # soundfile major format: 'WAV', 'FLAC', 'OGG', 'MP3', ...
  subtype: str  # 'PCM_16', 'VORBIS', 'OPUS', 'MPEG_LAYER_III', ...


def _open(path):
  """Opens `path` with soundfile, mapping every failure to an AudioError naming the file."""
  if not os.path.exists(path):
    raise errors.AudioError(path, 'no such file')
  if os.path.isdir(path):
    raise errors.AudioError(path, 'is a directory, not an audio file')
  if os.path.getsize(path) == 0:
    raise errors.AudioError(path, 'empty file (0 bytes)')
  try:
    f = sf.SoundFile(path)
  except _DECODE_ERRORS as e:
    raise errors.AudioError(path, f'not a readable audio file ({e})') from e
  if f.frames <= 0:
    f.close()
    raise errors.AudioError(path, 'no audio frames (empty or truncated stream)')
  return f


def _check_complete(path, got, expected):
  """Raises when a decode stopped well short of what the header promised (a cut file)."""
  if got < expected * (1 - _SHORTFALL_TOLERANCE):
    raise errors.AudioError(
        path, f'truncated or corrupt: header declares {expected} frames, decoded {got}')


def audio_info(path):
  """Returns the `AudioInfo` of `path`; raises `errors.AudioError` like `read_audio`."""
  path = os.fspath(path)
  with _open(path) as f:
    return AudioInfo(f.samplerate, f.channels, f.frames, f.frames / f.samplerate, f.format,
                     f.subtype)


def read_audio(path, *, sample_rate=None, mono=True, start_s=0.0, duration_s=None):
  """Reads an audio file as float32 in [-1, 1].

  Args:
    path: any file libsndfile decodes (wav, flac, ogg/vorbis, opus, mp3).
    sample_rate: resample to this rate (soxr 'HQ'); None keeps the file's rate.
    mono: downmix by the channel mean to [T]; False keeps channels as [T, C].
    start_s: offset into the file in seconds (sample-accurate, also for MP3).
    duration_s: how much to read in seconds; None reads to the end.

  Returns:
    (samples, rate): float32 [T] (mono) or [T, C], and the rate of `samples`.

  Raises:
    errors.AudioError: see the module docstring for every case.
  """
  path = os.fspath(path)
  with _open(path) as f:
    rate, declared = f.samplerate, f.frames
    start = int(round(start_s * rate))
    if start >= declared:
      raise errors.AudioError(path, f'start {start_s} s is past the end ({declared / rate} s)')
    wanted = declared - start
    if duration_s is not None:
      wanted = min(wanted, int(round(duration_s * rate)))
    try:
      f.seek(start)
      x = f.read(wanted, dtype='float32', always_2d=True)  # [T, C]
    except _DECODE_ERRORS as e:
      raise errors.AudioError(path, f'cannot decode audio data ({e})') from e
  _check_complete(path, len(x), wanted)
  if mono:
    x = to_mono(x)
  if sample_rate is not None and sample_rate != rate:
    x = resample(x, rate, sample_rate)
    rate = sample_rate
  return x, rate


def to_mono(x):
  """[T] or [T, C] -> float32 [T], the channel mean."""
  x = np.asarray(x, np.float32)
  return x if x.ndim == 1 else x.mean(axis=1, dtype=np.float32)


def resample(x, from_rate, to_rate):
  """Resamples float [T] or [T, C] with soxr 'HQ'; T becomes about T * to_rate / from_rate."""
  x = np.asarray(x, np.float32)
  if from_rate == to_rate:
    return x
  return soxr.resample(x, from_rate, to_rate, quality='HQ').astype(np.float32, copy=False)


def stream_blocks(path, *, block_s=10.0, sample_rate=None, mono=True):
  """Yields a long file as consecutive float32 blocks, holding one block in memory at a time.

  The concatenation of the blocks equals `read_audio(path, sample_rate=..., mono=...)` (soxr's
  streaming resampler gives the same samples as the one-shot call). Blocks are about
  `block_s` seconds long (the resampler's delay shifts a few samples between blocks); empty
  blocks are not yielded.

  Yields:
    float32 [t] (mono) or [t, C] at `sample_rate` (or the file's rate when None).

  Raises:
    errors.AudioError: as `read_audio`; a decode failure mid-file raises after the blocks
      before it were yielded.
  """
  path = os.fspath(path)
  with _open(path) as f:
    rate, declared = f.samplerate, f.frames
    stream = None
    if sample_rate is not None and sample_rate != rate:
      stream = soxr.ResampleStream(rate, sample_rate, 1 if mono else f.channels,
                                   dtype='float32', quality='HQ')
    block, got = max(1, int(round(block_s * rate))), 0
    while True:
      try:
        x = f.read(block, dtype='float32', always_2d=True)  # [t, C]
      except _DECODE_ERRORS as e:
        raise errors.AudioError(path, f'cannot decode audio data ({e})') from e
      got += len(x)
      last = len(x) < block
      if last:
        _check_complete(path, got, declared)
      x = to_mono(x) if mono else x
      if stream is not None:
        x = stream.resample_chunk(x, last=last)
      if len(x):
        yield x
      if last:
        return


def write_audio(path, x, sample_rate, subtype=None):
  """Writes float [T] or [T, C] audio atomically; the format comes from the extension.

  Args:
    path: output file; `.wav`, `.flac`, `.ogg` (Vorbis), `.opus` (Ogg/Opus), `.mp3`, ...
    x: float samples in [-1, 1]; clipped to that range for integer subtypes.
    sample_rate: rate in Hz.
    subtype: soundfile subtype; None uses the format's default ('PCM_16' for WAV and FLAC).
  """
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower().lstrip('.')
  fmt = 'OGG' if ext == 'opus' else ext.upper()
  if subtype is None:
    subtype = 'OPUS' if ext == 'opus' else sf.default_subtype(fmt)
  x = np.asarray(x, np.float32)
  if not subtype.startswith(('FLOAT', 'DOUBLE')):
    x = np.clip(x, -1.0, 1.0)  # integer PCM would wrap around instead of clipping
  with files.atomic_path(path) as tmp:
    sf.write(tmp, x, sample_rate, subtype=subtype, format=fmt)


def segment(x, length, hop, *, last='pad'):
  """Cuts deterministic fixed-length segments from the start of `x`.

  Segment i starts at i * hop. Policy for the tail that no full segment covers:
    'pad': one more segment starting at the next hop, zero-padded to `length`; its valid length
      says how much is real. A signal shorter than `length` gives one padded segment.
    'drop': the tail is dropped; a signal shorter than `length` gives no segment.
  An empty signal gives no segment under either policy.

  Args:
    x: [T] or [T, C] samples.
    length: segment length in samples.
    hop: distance between segment starts in samples.
    last: 'pad' or 'drop'.

  Returns:
    (segments, valid): [N, length] (or [N, length, C]) of x's dtype, and int64 [N] valid lengths.
  """
  if last not in ('pad', 'drop'):
    raise ValueError(f"last must be 'pad' or 'drop', got {last!r}")
  if length <= 0 or hop <= 0:
    raise ValueError(f'length and hop must be positive, got {length}, {hop}')
  x = np.asarray(x)
  total = x.shape[0]
  n_full = 0 if total < length else 1 + (total - length) // hop
  covered = (n_full - 1) * hop + length if n_full else 0
  n = n_full + (1 if last == 'pad' and total > covered else 0)
  starts = np.arange(n) * hop
  valid = np.minimum(length, total - starts).astype(np.int64)  # [N]
  segments = np.zeros((n, length) + x.shape[1:], x.dtype)  # [N, length(, C)]
  for i, (start, v) in enumerate(zip(starts, valid)):
    segments[i, :v] = x[start:start + v]
  return segments, valid


def evenly_spaced_starts(total, length, n):
  """Starts of `n` segments of `length` spread evenly over `total` samples.

  Segment i is centred in the i-th of n equal spans of the possible starts [0, total - length]:
  start_i = round((i + 0.5) * (total - length) / n); one segment is the middle one. A signal
  shorter than `length` gives n starts at 0 (the caller pads). Returns int64 [n].
  """
  span = max(total - length, 0)
  return np.round((np.arange(n) + 0.5) * span / n).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Frontends (jnp). Periodic Hann window, centred frames, reflect padding, unnormalised DFT.


@functools.lru_cache(maxsize=None)
def _hann(n_fft):
  """Periodic Hann window, float32 [n_fft] (torch.hann_window's default)."""
  return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def _check_fft(n_fft, hop):
  if n_fft % 2 or not 0 < hop <= n_fft // 2:
    raise ValueError(f'need an even n_fft and 0 < hop <= n_fft / 2, got {n_fft}, {hop}')


def _frame_index(n_fft, hop, frames):
  """int [frames, n_fft]: sample f * hop + i of the signal is sample i of frame f."""
  return np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]


def overlap_add(frames, hop):
  """[..., F, n_fft] -> [..., (F - 1) * hop + n_fft], the sum of frames placed hop apart.

  Used by `istft` and by the models' matmul form of strided transposed convs.
  """
  f, n_fft = frames.shape[-2:]
  batch = frames.shape[:-2]
  # Frames k, k + r, k + 2r, ... (r = ceil(n_fft / hop)) do not overlap, so each such group,
  # zero-padded to r * hop per frame, is one contiguous run: r slice-adds instead of a
  # scatter-add of every sample, about twice as fast on CPU.
  r = -(-n_fft // hop)
  frames = jnp.pad(frames, [(0, 0)] * (len(batch) + 1) + [(0, r * hop - n_fft)])
  out = jnp.zeros(batch + ((f + r - 1) * hop,), frames.dtype)
  for k in range(min(r, f)):
    run = frames[..., k::r, :].reshape(batch + (-1,))
    out = out.at[..., k * hop:k * hop + run.shape[-1]].add(run)
  return out[..., :(f - 1) * hop + n_fft]


@functools.lru_cache(maxsize=None)
def _window_sum(n_fft, hop, frames):
  """float32 [(frames - 1) * hop + n_fft], the overlap-added squared window."""
  wsum = np.zeros((frames - 1) * hop + n_fft, np.float64)  # zero only where no sample is kept
  idx = _frame_index(n_fft, hop, frames)
  np.add.at(wsum, idx, np.broadcast_to(_hann(n_fft).astype(np.float64)**2, idx.shape))
  return wsum.astype(np.float32)


@functools.partial(jax.jit, static_argnames=('n_fft', 'hop'))
def stft(x, n_fft=512, hop=128):
  """Centred short-time Fourier transform: (..., T) -> complex64 (..., frames, bins).

  The signal is reflect-padded by n_fft // 2 on both sides (as torch.stft(center=True,
  pad_mode='reflect')), so frame f is centred on sample f * hop; frames = 1 + T // hop and
  bins = n_fft // 2 + 1 (T = 65536, n_fft 512, hop 128: 513 frames x 257 bins). Each frame is
  multiplied by a periodic Hann window and transformed with an unnormalised real DFT. `istft`
  inverts it exactly.

  Args:
    x: float [..., T], T > n_fft // 2 (reflect padding needs that much signal).
    n_fft: frame (and window) length, even.
    hop: frame step, at most n_fft // 2 so that the window overlap-adds without gaps.

  Returns:
    complex64 [..., 1 + T // hop, n_fft // 2 + 1].
  """
  _check_fft(n_fft, hop)
  x = jnp.asarray(x, jnp.float32)
  t, pad = x.shape[-1], n_fft // 2
  if t <= pad:
    raise ValueError(f'stft needs more than n_fft // 2 = {pad} samples, got {t}')
  x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode='reflect')  # [..., T + n_fft]
  frames = x[..., _frame_index(n_fft, hop, 1 + t // hop)] * _hann(n_fft)  # [..., F, n_fft]
  return jnp.fft.rfft(frames, axis=-1).astype(jnp.complex64)


@functools.partial(jax.jit, static_argnames=('n_fft', 'hop', 'length'))
def istft(spec, n_fft=512, hop=128, length=None):
  """Inverse of `stft`: complex (..., frames, bins) -> float32 (..., length).

  Each frame is inverse-transformed, windowed again and overlap-added; the sum is divided by the
  overlap-added squared window (the least-squares inverse), and the n_fft // 2 samples of
  padding are cut from the start. `istft(stft(x), n_fft, hop, x.shape[-1])` returns x.

  Args:
    spec: complex [..., F, n_fft // 2 + 1] (any spectrogram, e.g. a model's prediction).
    n_fft: as for `stft`.
    hop: as for `stft`.
    length: output samples, at most (F - 1) * hop + n_fft // 2; pass the original T to undo
      `stft` (T is not recoverable from F, since T // hop rounds). None gives (F - 1) * hop.

  Returns:
    float32 [..., length].
  """
  _check_fft(n_fft, hop)
  f, pad = spec.shape[-2], n_fft // 2
  length = (f - 1) * hop if length is None else length
  if not 0 < length <= (f - 1) * hop + pad:
    raise ValueError(f'length {length} does not fit {f} frames of hop {hop}')
  window = _hann(n_fft)
  frames = jnp.fft.irfft(spec, n=n_fft, axis=-1) * window  # [..., F, n_fft]
  y = overlap_add(frames.astype(jnp.float32), hop)
  wsum = _window_sum(n_fft, hop, f)[pad:pad + length]  # numpy at trace time: a constant
  return y[..., pad:pad + length] / wsum


@functools.lru_cache(maxsize=None)
def _mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax):
  hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)  # [bins] bin centre frequencies
  mel_edges = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
  edges = _mel_to_hz(mel_edges)  # [n_mels + 2] Hz
  widths = np.diff(edges)  # [n_mels + 1]
  ramps = edges[:, None] - hz[None, :]  # [n_mels + 2, bins]
  rising = -ramps[:-2] / widths[:-1, None]
  falling = ramps[2:] / widths[1:, None]
  weights = np.maximum(0, np.minimum(rising, falling))  # [n_mels, bins] triangles
  weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # 'slaney' norm: each area = 1
  fb = weights.T.astype(np.float32)  # [bins, n_mels]
  fb.flags.writeable = False  # cached: shared by every caller
  return fb


def _hz_to_mel(hz):
  """Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
  hz = np.asarray(hz, np.float64)
  mel = hz * 3.0 / 200.0
  log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
  return np.where(hz >= 1000.0, log_part, mel)


def _mel_to_hz(mel):
  mel = np.asarray(mel, np.float64)
  return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)),
                  mel * 200.0 / 3.0)


def mel_filterbank(sample_rate, n_fft, n_mels, fmin=0.0, fmax=None):
  """Slaney-style mel filters (librosa.filters.mel's defaults), float32 [bins, n_mels].

  Triangles on Slaney's mel scale between fmin and fmax (default sample_rate / 2), each scaled
  to unit area in Hz (norm='slaney'), so `|stft| @ fb` gives [..., frames, n_mels].
  The array is cached and read-only.
  """
  fmax = sample_rate / 2 if fmax is None else fmax
  return _mel_filterbank(int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax))


@functools.partial(jax.jit, static_argnames=('sample_rate', 'n_fft', 'hop', 'n_mels', 'power',
                                             'fmin', 'fmax'))
def mel_spectrogram(x, sample_rate, n_fft, hop, n_mels, power=1.0, fmin=0.0, fmax=None):
  """Mel spectrogram: (..., T) -> float32 (..., 1 + T // hop, n_mels).

  `stft(x, n_fft, hop)` magnitudes raised to `power` (1: magnitude, 2: power) times
  `mel_filterbank`. The magnitude is sqrt(max(|X|^2, 1e-20)), which differs from |X| only
  below 1e-10 and keeps gradients finite at silent bins.
  """
  spec = stft(x, n_fft, hop)
  mag2 = jnp.real(spec)**2 + jnp.imag(spec)**2  # [..., frames, bins]
  mag = jnp.maximum(mag2, 1e-20)**(power / 2)
  return mag @ mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)


@functools.partial(jax.jit, static_argnames=('sample_rate', 'n_fft', 'hop', 'n_mels', 'power',
                                             'fmin', 'fmax'))
def log_mel(x, sample_rate, n_fft, hop, n_mels, power=1.0, fmin=0.0, fmax=None):
  """log10(max(mel_spectrogram(...), 1e-5)): (..., T) -> (..., 1 + T // hop, n_mels)."""
  mel = mel_spectrogram(x, sample_rate, n_fft, hop, n_mels, power, fmin, fmax)
  return jnp.log10(jnp.maximum(mel, 1e-5))
