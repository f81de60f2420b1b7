"""Evaluation metrics, pinned as in DESIGN.md "Metrics" (host-side numpy).

Every metric takes 1-D float signals in [-1, 1] and the rate they share, and first resamples
both to its own pinned rate, so a codec that runs at 16 kHz is judged against the full-band
original.
"""

import numpy as np

from fmacomp import audio

SEED_RATE = 8000


def _stft(x, n_fft, hop):
  """Unnormalised STFT with a periodic Hann window, centred with reflect padding.

  Args:
    x: float [T].
    n_fft: window and FFT length.
    hop: frame step.

  Returns:
    complex128 [1 + T // hop, n_fft // 2 + 1] (frames, bins).
  """
  x = np.asarray(x, np.float64)
  pad = n_fft // 2
  # Reflect padding needs more than `pad` samples; shorter signals fall back to zeros.
  mode = 'reflect' if x.shape[0] > pad else 'constant'
  x = np.pad(x, (pad, pad), mode=mode)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
  frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]  # [F, n_fft]
  return np.fft.rfft(frames * window, axis=-1)


def _trim(a, b):
  """Trims two 1-D signals to the shorter length."""
  n = min(a.shape[0], b.shape[0])
  return a[:n], b[:n]


def seed_spectral_rmse(reference, degraded, sample_rate):
  """The reference's spectral RMSE: phase-sensitive, on the 8 kHz STFT.

  sqrt(mean((S_ref - S_deg)^2)) over the real and imaginary parts of the unnormalised STFT
  (n_fft 512, hop 128, periodic Hann, centred, reflect padding) of both signals at 8 kHz.

  Args:
    reference: float [T] in [-1, 1].
    degraded: float [T'] in [-1, 1]; both are trimmed to the shorter length.
    sample_rate: the rate of both signals.

  Returns:
    The RMSE as a float (0 for identical signals).
  """
  ref = audio.resample(np.asarray(reference, np.float32), sample_rate, SEED_RATE)
  deg = audio.resample(np.asarray(degraded, np.float32), sample_rate, SEED_RATE)
  ref, deg = _trim(ref, deg)
  diff = _stft(ref, 512, 128) - _stft(deg, 512, 128)  # [F, 257]
  return float(np.sqrt(np.mean(np.concatenate([diff.real, diff.imag]) ** 2)))
