"""Tests for fmacomp.metrics: ideal values, ordering of clean vs degraded, pinned definitions."""

import sys

import numpy as np
import pytest
import scipy.signal

from fmacomp import audio
from fmacomp.evaluation import baselines
from fmacomp import metrics

from tests import signals as test_signals

SR = 44100
CHEAP = ('seed_spectral_rmse', 'mel_distance', 'log_spectral_distance', 'si_sdr')


def _music(seconds=3.0, sr=SR, seed=0):
  return test_signals.plucked_notes(seconds, sr, seed)


def _noise(x, snr_db, seed=1):
  n = np.random.default_rng(seed).standard_normal(x.shape)
  n *= np.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr_db / 10))
  return (x + n).astype(np.float32)


def _lowpass(x, cutoff, sr=SR):
  sos = scipy.signal.butter(8, cutoff, fs=sr, output='sos')
  return scipy.signal.sosfilt(sos, x).astype(np.float32)


@pytest.fixture(scope='module')
def signals():
  x = _music()
  return {
      'ref': x,
      'clean': (np.round(x * 32767) / 32767).astype(np.float32),  # a 16-bit copy
      'noise': _noise(x, 15),
      'lowpass': _lowpass(x, 3000),
      'mp3_8k': baselines.mp3(x, SR, 8).decoded,
  }


def _better(name, a, b):
  return a > b if name in metrics.HIGHER_IS_BETTER else a < b


@pytest.mark.parametrize('name', CHEAP)
def test_identical_signals_score_ideal(name, signals):
  x = signals['ref']
  value = metrics.compute_all(x, x, SR, metrics=(name,))[name]
  if name == 'si_sdr':
    assert value > 100
  else:
    assert value == 0.0


@pytest.mark.parametrize('name', CHEAP)
@pytest.mark.parametrize('degradation', ['noise', 'lowpass', 'mp3_8k'])
def test_clean_copy_scores_better_than_degraded(name, degradation, signals):
  score = lambda key: metrics.compute_all(signals['ref'], signals[key], SR, metrics=(name,))[name]
  assert _better(name, score('clean'), score(degradation))


def test_visqol_prefers_clean_copy():
  x = _music(seconds=1.0)  # ViSQOL costs about 3 s of CPU per second of audio here
  clean = metrics.visqol(x, x, SR)
  degraded = metrics.visqol(x, _lowpass(x, 2000), SR)
  assert 4.0 < clean <= 5.0
  assert 1.0 <= degraded < clean - 0.5


def test_compute_all_skips_visqol_without_its_package(monkeypatch):
  monkeypatch.setitem(sys.modules, 'visqol', None)  # makes `import visqol` fail
  metrics._visqol_api.cache_clear()  # pylint: disable=protected-access
  x = _music(seconds=1.0)
  out = metrics.compute_all(x, x, SR, metrics=('mel_distance', 'visqol'))
  assert out['mel_distance'] == 0.0
  assert 'visqol' not in out
  assert 'visqol-python' in out['skipped']['visqol']


def test_compute_all_rejects_unknown_metric():
  x = _music(seconds=0.5)
  with pytest.raises(ValueError, match='unknown metrics'):
    metrics.compute_all(x, x, SR, metrics=('pesq',))


@pytest.mark.parametrize('lag', [1631, -400])
def test_align_finds_the_delay(lag, signals):
  x = signals['ref']
  delayed = np.roll(x, lag)  # lag > 0: the degraded signal comes later
  ref, deg, found = metrics.align(x, delayed, SR)
  assert found == lag
  assert ref.shape == deg.shape
  np.testing.assert_allclose(ref[:-abs(lag)], deg[:-abs(lag)], atol=1e-7)


def test_delayed_copy_scores_near_perfect_si_sdr(signals):
  x = signals['ref']
  delayed = np.concatenate([np.zeros(1631, np.float32), x])  # 37 ms, like a codec's delay
  assert metrics.si_sdr(x, delayed, SR) > 60
  assert metrics.si_sdr(x, signals['noise'], SR) < 20


def test_si_sdr_is_scale_invariant_and_measures_snr():
  x = _music(seconds=1.0)
  assert metrics.si_sdr(x, 0.3 * x, SR) > 100
  assert metrics.si_sdr(x, _noise(x, 20), SR) == pytest.approx(20.0, abs=0.5)


def test_seed_spectral_rmse_matches_scipy_stft():
  rng = np.random.default_rng(3)
  x = (0.3 * rng.standard_normal(8000)).astype(np.float32)  # 1 s at 8 kHz: no resampling
  window = scipy.signal.get_window('hann', 512)  # periodic
  _, _, z = scipy.signal.stft(x.astype(np.float64), window=window, nperseg=512, noverlap=384,
                              boundary='even', padded=False)  # 'even' = reflect padding
  z = z * window.sum()  # undo scipy's scaling: unnormalised DFT
  expected = np.sqrt(np.mean(np.abs(z) ** 2) / 2)  # real and imaginary parts pooled
  assert metrics.seed_spectral_rmse(x, np.zeros_like(x), 8000) == pytest.approx(expected,
                                                                                  rel=1e-6)


def test_mel_distance_definition_on_a_gain_change():
  # Halving the amplitude moves every non-empty mel band by log10(2) (power 1, log10) unless a
  # band is clamped at 1e-5 (empty filters, and a few nearly empty ones: hence rel=5e-3, which
  # still tells power 1 from 2, log10 from ln, and a sum over 7 scales from a mean).
  x = (0.3 * np.random.default_rng(4).standard_normal(SR)).astype(np.float32)
  expected = sum(np.log10(2) * np.mean(audio.mel_filterbank(SR, w, m).any(axis=0))
                 for w, m in zip(metrics.MEL_WINDOWS, metrics.MEL_BANDS))
  assert metrics.mel_distance(x, 0.5 * x, SR) == pytest.approx(expected, rel=5e-3)


def test_log_spectral_distance_of_a_gain_change_is_its_decibels():
  x = (0.3 * np.random.default_rng(5).standard_normal(SR)).astype(np.float32)
  assert metrics.log_spectral_distance(x, 0.5 * x, SR) == pytest.approx(20 * np.log10(2),
                                                                       rel=1e-4)


def test_metric_rates_are_pinned(signals):
  x = signals['ref']  # 44.1 kHz, full band
  codec16 = audio.resample(x, SR, 16000)  # what a 16 kHz codec would give back at best
  # Judged against the 44.1 kHz original, the missing band above 8 kHz costs...
  full = metrics.mel_distance(x, codec16, SR, degraded_rate=16000)
  assert full == pytest.approx(metrics.mel_distance(x, audio.resample(codec16, 16000, SR), SR),
                               rel=1e-3)
  # ...whereas at the codec's own rate it would look perfect.
  assert metrics.mel_distance(codec16, codec16, 16000) == 0.0
  assert full > 0.5
  # Inputs at 16 kHz are resampled to 44.1 kHz for the mel distance, not scored at 16 kHz.
  noisy16 = _noise(codec16, 20)
  assert metrics.mel_distance(codec16, noisy16, 16000) == pytest.approx(
      metrics.mel_distance(audio.resample(codec16, 16000, SR),
                           audio.resample(noisy16, 16000, SR), SR), rel=1e-3)
  # The seed RMSE works at 8 kHz whatever the input rate.
  assert metrics.seed_spectral_rmse(x, codec16, SR, degraded_rate=16000) < 1e-2 * (
      metrics.seed_spectral_rmse(x, np.zeros_like(x), SR))
