"""Evaluation metrics, pinned as in DESIGN.md "Metrics" (host-side numpy).

Every metric takes a reference and a degraded 1-D float signal in [-1, 1] and first resamples
both to its own pinned rate (seed RMSE 8 kHz; mel distance and LSD 44.1 kHz; ViSQOL 48 kHz), so
a codec that runs at 16 kHz is judged against the full-band original. The degraded signal may
come at another rate than the reference (`degraded_rate`); SI-SDR works at the reference's rate.
Signals are trimmed to the shorter length after resampling.

The STFT here is numpy (float64) with the same conventions as `audio.stft`: periodic Hann,
centred frames with reflect padding, unnormalised DFT.
"""

import functools

import numpy as np
import scipy.signal

from fmacomp import audio
from fmacomp import errors

SEED_RATE = 8000
MEL_RATE = 44100
LSD_RATE = 44100
VISQOL_RATE = 48000
# DAC's evaluation mel loss: window w with w / 4 hop and the paired number of mel bands.
MEL_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
MEL_BANDS = (5, 10, 20, 40, 80, 160, 320)
METRICS = ('seed_spectral_rmse', 'mel_distance', 'log_spectral_distance', 'si_sdr', 'visqol')
# Larger is better for these; smaller is better for the others.
HIGHER_IS_BETTER = ('si_sdr', 'visqol')


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


def _pair(reference, degraded, sample_rate, degraded_rate, rate):
  """Both signals as float32 [T] at `rate`, trimmed to the shorter length."""
  ref, deg = np.asarray(reference, np.float32), np.asarray(degraded, np.float32)
  if ref.ndim != 1 or deg.ndim != 1:
    raise ValueError(f'metrics take 1-D signals, got shapes {ref.shape} and {deg.shape}')
  ref = audio.resample(ref, sample_rate, rate)
  deg = audio.resample(deg, degraded_rate or sample_rate, rate)
  n = min(ref.shape[0], deg.shape[0])
  return ref[:n], deg[:n]


def seed_spectral_rmse(reference, degraded, sample_rate, degraded_rate=None):
  """The reference's spectral RMSE: phase-sensitive, on the 8 kHz STFT.

  sqrt(mean((S_ref - S_deg)^2)) over the real and imaginary parts of the unnormalised STFT
  (n_fft 512, hop 128, periodic Hann, centred, reflect padding) of both signals at 8 kHz.
  No delay is removed (as in the reference): a delayed copy scores badly.

  Args:
    reference: float [T] in [-1, 1] at `sample_rate`.
    degraded: float [T'] in [-1, 1] at `degraded_rate` (default `sample_rate`).
    sample_rate: the reference's rate.
    degraded_rate: the degraded signal's rate, when it differs.

  Returns:
    The RMSE as a float (0 for identical signals; lower is better).
  """
  ref, deg = _pair(reference, degraded, sample_rate, degraded_rate, SEED_RATE)
  diff = _stft(ref, 512, 128) - _stft(deg, 512, 128)  # [F, 257]
  return float(np.sqrt(np.mean(np.concatenate([diff.real, diff.imag]) ** 2)))


def mel_distance(reference, degraded, sample_rate, degraded_rate=None):
  """DAC's multi-scale log-mel L1 distance at 44.1 kHz (lower is better).

  For each window w in 32..2048 with 5..320 Slaney mel bands: magnitude STFT (n_fft w, hop
  w / 4, centred, reflect padding), mel filters, log10(max(mel, 1e-5)), mean absolute difference;
  the 7 means are summed. This is DAC's MelSpectrogramLoss as configured for its evaluation
  (pow 1, mag_weight 0, clamp_eps 1e-5).

  Args: as for `seed_spectral_rmse`.

  Returns:
    The distance as a float (0 for identical signals).
  """
  ref, deg = _pair(reference, degraded, sample_rate, degraded_rate, MEL_RATE)
  total = 0.0
  for n_fft, n_mels in zip(MEL_WINDOWS, MEL_BANDS):
    fb = audio.mel_filterbank(MEL_RATE, n_fft, n_mels)  # [bins, mels]
    logs = [np.log10(np.maximum(np.abs(_stft(x, n_fft, n_fft // 4)) @ fb, 1e-5))
            for x in (ref, deg)]  # 2 x [F, mels]
    total += float(np.mean(np.abs(logs[0] - logs[1])))
  return total


def log_spectral_distance(reference, degraded, sample_rate, degraded_rate=None):
  """Log-spectral distance in dB at 44.1 kHz (lower is better).

  Mean over frames of sqrt(mean over bins of (10 log10(|X|^2 + 1e-10) - 10 log10(|Y|^2 +
  1e-10))^2), STFT n_fft 2048, hop 512 (centred, reflect padding, periodic Hann).

  Args: as for `seed_spectral_rmse`.

  Returns:
    The distance in dB as a float (0 for identical signals).
  """
  ref, deg = _pair(reference, degraded, sample_rate, degraded_rate, LSD_RATE)
  db = [10 * np.log10(np.abs(_stft(x, 2048, 512)) ** 2 + 1e-10) for x in (ref, deg)]
  return float(np.mean(np.sqrt(np.mean((db[0] - db[1]) ** 2, axis=-1))))


def align(reference, degraded, sample_rate, max_lag_s=0.1):
  """Removes the degraded signal's delay by cross-correlation.

  Args:
    reference: float [T].
    degraded: float [T'] at the same rate.
    sample_rate: their rate.
    max_lag_s: the largest delay searched, either way, in seconds.

  Returns:
    (reference, degraded, lag): both float32 [N], cut so that sample i of one matches sample i
    of the other; lag > 0 when `degraded` lagged behind `reference` by that many samples.
  """
  ref, deg = np.asarray(reference, np.float32), np.asarray(degraded, np.float32)
  n = min(ref.shape[0], deg.shape[0])
  max_lag = min(int(round(max_lag_s * sample_rate)), n - 1)
  xcorr = scipy.signal.correlate(deg[:n].astype(np.float64), ref[:n].astype(np.float64),
                                 mode='full', method='fft')  # [2n - 1], lag -(n-1)..n-1
  window = xcorr[n - 1 - max_lag:n + max_lag]  # lags -max_lag..max_lag
  lag = int(np.argmax(window)) - max_lag
  if lag >= 0:
    deg = deg[lag:]
  else:
    ref = ref[-lag:]
  m = min(ref.shape[0], deg.shape[0])
  return ref[:m], deg[:m], lag


def si_sdr(reference, degraded, sample_rate, degraded_rate=None, max_lag_s=0.1):
  """Scale-invariant SDR in dB after removing codec delay (higher is better).

  Both signals are taken at the reference's rate, aligned by `align`, and made zero-mean; then
  SI-SDR = 10 log10(|a s|^2 / |a s - d|^2) with a = <d, s> / <s, s>. Identical signals give
  about 10 log10(|s|^2 / 1e-20) (finite, very high). Meaningful for waveform models only.

  Args: as for `seed_spectral_rmse`, plus `max_lag_s` for `align`.

  Returns:
    SI-SDR in dB as a float.
  """
  ref, deg = _pair(reference, degraded, sample_rate, degraded_rate, sample_rate)
  ref, deg, _ = align(ref, deg, sample_rate, max_lag_s)
  s = ref.astype(np.float64) - ref.mean(dtype=np.float64)
  d = deg.astype(np.float64) - deg.mean(dtype=np.float64)
  scale = np.dot(d, s) / max(np.dot(s, s), 1e-20)
  target = scale * s
  noise = d - target
  return float(10 * np.log10(max(np.dot(target, target), 1e-20) /
                             max(np.dot(noise, noise), 1e-20)))


def visqol(reference, degraded, sample_rate, degraded_rate=None):
  """ViSQOL v3 audio mode, MOS-LQO in [1, 5] at 48 kHz (higher is better).

  Computed by the `visqol-python` package (a Python port of Google's ViSQOL 3.3, with its
  bundled SVR model); it aligns the signals itself. About 1 s of CPU per second of audio.

  Args: as for `seed_spectral_rmse`.

  Returns:
    MOS-LQO as a float.

  Raises:
    errors.RunError: `visqol-python` is not installed.
  """
  ref, deg = _pair(reference, degraded, sample_rate, degraded_rate, VISQOL_RATE)
  result = _visqol_api().measure_from_arrays(ref.astype(np.float64), deg.astype(np.float64),
                                             VISQOL_RATE)
  return float(result.moslqo)


@functools.lru_cache(maxsize=1)
def _visqol_api():
  """A ViSQOL audio-mode instance, built once (it loads its SVR model) on first use."""
  try:
    from visqol import VisqolApi  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.RunError('visqol', 'needs the visqol-python package '
                          '(pip install visqol-python)') from e
  api = VisqolApi()
  api.create(mode='audio')
  return api


def compute_all(reference, degraded, sample_rate, *, degraded_rate=None, metrics=METRICS):
  """Computes the named metrics of one degraded signal against its reference.

  Args:
    reference: float [T] in [-1, 1] at `sample_rate` (the source after downmix, at its rate).
    degraded: float [T'] in [-1, 1] at `degraded_rate` (default `sample_rate`).
    sample_rate: the reference's rate.
    degraded_rate: the degraded signal's rate, when it differs.
    metrics: names from `METRICS`.

  Returns:
    {name: float} for each metric computed, and, only when some metric could not run (ViSQOL
    without its package), 'skipped': {name: reason}.
  """
  unknown = set(metrics) - set(METRICS)
  if unknown:
    raise ValueError(f'unknown metrics {sorted(unknown)}; known: {METRICS}')
  out, skipped = {}, {}
  for name in metrics:
    try:
      out[name] = _FUNCTIONS[name](reference, degraded, sample_rate, degraded_rate)
    except errors.RunError as e:
      skipped[name] = e.reason
  if skipped:
    out['skipped'] = skipped
  return out


_FUNCTIONS = {
    'seed_spectral_rmse': seed_spectral_rmse,
    'mel_distance': mel_distance,
    'log_spectral_distance': log_spectral_distance,
    'si_sdr': si_sdr,
    'visqol': visqol,
}
