"""Audio I/O and signal frontends: read, resample, segment, stream, write; STFT and mel.

Every reader here raises `errors.AudioError(path, reason)` for a file it cannot decode, so that
callers (dataset builders, launchers) never see a raw soundfile exception.
"""

import os

import numpy as np
import soundfile as sf
import soxr

from fmacomp import errors


def _open(path):
  """Opens `path` with soundfile, mapping every failure to an AudioError naming the file."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise errors.AudioError(path, 'no such file')
  if os.path.getsize(path) == 0:
    raise errors.AudioError(path, 'empty file (0 bytes)')
  try:
    f = sf.SoundFile(path)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise errors.AudioError(path, f'not a readable audio file ({e})') from e
  if f.frames == 0:
    f.close()
    raise errors.AudioError(path, 'no audio frames')
  return f


def read_audio(path, *, sample_rate=None, mono=True, start_s=0.0, duration_s=None):
  """Reads an audio file as float32 in [-1, 1].

  Args:
    path: any file libsndfile decodes (wav, flac, ogg/vorbis, opus, mp3).
    sample_rate: resample to this rate (soxr, high quality); None keeps the file's rate.
    mono: downmix by the channel mean to [T]; False keeps channels as [T, C].
    start_s: offset into the file, in seconds at the file's rate.
    duration_s: how much to read; None reads to the end.

  Returns:
    (samples, rate): float32 [T] (mono) or [T, C], and the rate of `samples`.

  Raises:
    errors.AudioError: missing, empty, not audio, no frames, or undecodable data.
  """
  path = os.fspath(path)
  with _open(path) as f:
    rate = f.samplerate
    start = int(round(start_s * rate))
    frames = -1 if duration_s is None else int(round(duration_s * rate))
    try:
      f.seek(min(start, f.frames))
      x = f.read(frames, dtype='float32', always_2d=True)  # [T, C]
    except (sf.LibsndfileError, RuntimeError) as e:
      raise errors.AudioError(path, f'cannot decode audio data ({e})') from e
  if x.shape[0] == 0:
    raise errors.AudioError(path, 'no audio frames in the requested range')
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
  """Resamples [T] or [T, C] from `from_rate` to `to_rate` with soxr 'HQ'."""
  x = np.asarray(x, np.float32)
  if from_rate == to_rate:
    return x
  return soxr.resample(x, from_rate, to_rate, quality='HQ').astype(np.float32, copy=False)
