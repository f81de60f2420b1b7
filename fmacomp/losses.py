"""Training losses on waveforms: sample-wise, multi-resolution STFT and multi-scale mel.

Every loss takes a target `x` and a prediction `y` of the same shape (..., T) (float audio in
[-1, 1]), returns a float32 scalar (mean over the leading axes), is 0 for y == x, and is jnp
throughout, so it traces inside a jitted step. Spectral losses are built on `fmacomp.audio`'s
STFT and mel frontends (periodic Hann, centred frames, reflect padding), so a loss and the
metric of the same name look at the same spectrogram.

Gradients stay finite on digital silence: magnitudes are sqrt(max(|X|^2, eps)), logs are
clamped, and the spectral-convergence denominator has a floor.

  multi_resolution_stft_loss  Parallel WaveGAN / HiFi-GAN style: spectral convergence
                              ||  |Y| - |X|  ||_F / ||X||_F plus mean |log |Y| - log |X||,
                              averaged over (n_fft, hop) pairs
  multiscale_mel_loss         DAC's mel loss: mean |log10 mel(y) - log10 mel(x)| summed over
                              windows 32..2048 with 5..320 Slaney mel bands (its evaluation
                              metric `metrics.mel_distance`, here at the model's rate)
"""

import jax.numpy as jnp

from fmacomp import audio

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop)
MEL_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
MEL_BANDS = (5, 10, 20, 40, 80, 160, 320)
_MAG_FLOOR = 1e-10  # |X|^2 floor: magnitude 1e-5, far below 16-bit quantisation noise
_LOG_FLOOR = 1e-5  # DAC's clamp_eps
_SC_FLOOR = 1.0  # spectral convergence's denominator floor (see stft_loss)


def waveform_l1(x, y):
  """mean |y - x| over every sample."""
  return jnp.mean(jnp.abs(y - x))


def waveform_mse(x, y):
  """mean (y - x)^2 over every sample."""
  return jnp.mean(jnp.square(y - x))


def _magnitude(x, n_fft, hop):
  """|STFT| (..., T) -> (..., frames, bins), floored so that sqrt has a finite gradient."""
  spec = audio.stft(x, n_fft, hop)
  return jnp.sqrt(jnp.maximum(jnp.real(spec)**2 + jnp.imag(spec)**2, _MAG_FLOOR))


def stft_loss(x, y, n_fft=1024, hop=256):
  """Spectral convergence + log-magnitude L1 at one resolution; (..., T) -> scalar.

  Spectral convergence is computed per example (its norm is over frames and bins) and then
  averaged, so a quiet example weighs as much as a loud one.
  """
  mag_x, mag_y = _magnitude(x, n_fft, hop), _magnitude(y, n_fft, hop)  # [..., F, bins]
  # sqrt has an infinite slope at 0: floor its argument (y == x must still give a gradient).
  diff = jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(mag_y - mag_x), axis=(-2, -1)), 1e-20))
  norm = jnp.sqrt(jnp.sum(jnp.square(mag_x), axis=(-2, -1)))
  # The floor makes a (near-)silent target cost the prediction's absolute energy instead of a
  # ratio that explodes: ||X||_F = 1 is about -70 dBFS over a 2-s crop. With a floor of 1e-3,
  # crops of a track's digital silence made this term 100x all others within 300 steps.
  convergence = jnp.mean(diff / jnp.maximum(norm, _SC_FLOOR))
  log_mag = jnp.mean(jnp.abs(jnp.log(mag_y) - jnp.log(mag_x)))
  return convergence + log_mag


def multi_resolution_stft_loss(x, y, resolutions=STFT_RESOLUTIONS):
  """Mean of `stft_loss` over `resolutions` ((n_fft, hop) pairs); (..., T) -> scalar.

  T must exceed n_fft // 2 for every resolution (reflect padding).
  """
  return sum(stft_loss(x, y, n_fft, hop) for n_fft, hop in resolutions) / len(resolutions)


def multiscale_mel_loss(x, y, sample_rate, windows=MEL_WINDOWS, bands=MEL_BANDS):
  """DAC's multi-scale log-mel L1: sum over (window, bands) of the mean log10 difference.

  Args:
    x: target audio (..., T) at `sample_rate`, T > max(windows) // 2.
    y: prediction, same shape.
    sample_rate: Hz (static): sets the mel filters.
    windows: STFT windows (hop = window / 4).
    bands: mel bands per window.

  Returns:
    A float32 scalar; 0 when y == x. At 44.1 kHz it is `metrics.mel_distance` for one pair.
  """
  total = 0.0
  for n_fft, n_mels in zip(windows, bands):
    kwargs = dict(sample_rate=int(sample_rate), n_fft=n_fft, hop=n_fft // 4, n_mels=n_mels)
    log_x = jnp.log10(jnp.maximum(audio.mel_spectrogram(x, **kwargs), _LOG_FLOOR))
    log_y = jnp.log10(jnp.maximum(audio.mel_spectrogram(y, **kwargs), _LOG_FLOOR))
    total = total + jnp.mean(jnp.abs(log_y - log_x))
  return total
