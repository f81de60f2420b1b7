"""Tests for fmacomp.evaluation.statistics: known intervals, win rates and BD-rates."""

import numpy as np
import pytest

from fmacomp.evaluation import statistics

# An Opus-like curve: mel distance (lower is better) against kbps.
RATES = [6.0, 8.0, 12.0, 16.0, 24.0, 32.0]
MEL = [3.8, 3.5, 2.1, 1.2, 0.9, 0.8]


def test_bootstrap_of_identical_values_has_zero_width():
  assert statistics.bootstrap_ci([2.5] * 12, ['a', 'b', 'c'] * 4) == (2.5, 2.5)


def test_bootstrap_is_seeded_and_brackets_the_mean():
  rng = np.random.default_rng(1)
  values, groups = rng.normal(size=40), np.repeat(np.arange(10), 4)
  low, high = statistics.bootstrap_ci(values, groups)
  assert low < values.mean() < high
  assert statistics.bootstrap_ci(values, groups) == (low, high)
  assert statistics.bootstrap_ci(values, groups, seed=1) != (low, high)


def test_bootstrap_resamples_recordings_not_clips():
  # 99 clips of one recording at 0 and one clip of another at 1. Resampling recordings, the
  # second one is drawn twice in a quarter of the samples, so the mean reaches 1 within the
  # 95 % interval; resampling clips it would stay near 0.01 (about 0.03 at most).
  values, groups = [0.0] * 99 + [1.0], ['a'] * 99 + ['b']
  low, high = statistics.bootstrap_ci(values, groups)
  assert low == 0.0 and high == pytest.approx(1.0)
  low, high = statistics.bootstrap_ci(values, range(100))  # every clip its own group
  assert high < 0.05


def test_bd_rate_of_a_curve_shifted_in_rate():
  # The same qualities at 80 % of the bits: 20 % saved, whatever the metric's direction.
  shifted = [0.8 * r for r in RATES]
  value, reason = statistics.bd_rate((RATES, MEL), (shifted, MEL), higher_is_better=False)
  assert reason is None and value == pytest.approx(-20.0)
  visqol = [1.8, 1.9, 2.3, 4.2, 4.3, 4.4]
  value, _ = statistics.bd_rate((RATES, visqol), ([1.5 * r for r in RATES], visqol), True)
  assert value == pytest.approx(50.0)
  assert statistics.bd_rate((RATES, MEL), (RATES, MEL), False)[0] == pytest.approx(0.0)


def test_bd_rate_integrates_only_the_shared_quality_range():
  # Log-rate linear in quality (PCHIP reproduces lines exactly). The test curve covers
  # qualities 2..3 only, where it needs half the bits: -50 %; outside that range it is 4x
  # cheaper at its own end points' extension, which must not count.
  quality = [1.0, 2.0, 3.0, 4.0, 5.0]
  anchor = ([2.0 ** q for q in quality], quality)
  test = ([2.0 ** q / 2 for q in (2.0, 3.0)], [2.0, 3.0])
  assert statistics.bd_rate(anchor, test, True)[0] == pytest.approx(-50.0)


def test_bd_rate_is_undefined_for_one_point_or_disjoint_ranges():
  value, reason = statistics.bd_rate((RATES, MEL), ([6.0], [2.8]), False)
  assert value is None and 'single operating point' in reason
  # Dominated points do not make a curve: more bits for a worse score.
  value, reason = statistics.bd_rate((RATES, MEL), ([6.0, 9.0, 12.0], [2.8, 3.0, 2.9]), False)
  assert value is None and '1 on its frontier' in reason
  value, reason = statistics.bd_rate((RATES, MEL), ([2.0, 3.0], [6.0, 5.0]), False)
  assert value is None and 'do not overlap' in reason


def test_rate_at_quality_inverts_the_curve():
  assert statistics.rate_at_quality((RATES, MEL), 2.1, False)[0] == pytest.approx(12.0)
  kbps, _ = statistics.rate_at_quality((RATES, MEL), 2.8, False)
  assert 8.0 < kbps < 12.0
  assert statistics.rate_at_quality((RATES, MEL), 5.0, False)[0] is None


def test_paired_baseline_interpolates_in_log_rate_and_never_above_its_range():
  assert statistics.paired_baseline(np.sqrt(8 * 32), [8, 32], [4.0, 2.0]) == pytest.approx(3.0)
  assert statistics.paired_baseline(6.0, [8, 32], [4.0, 2.0]) == 4.0  # its lowest point
  assert statistics.paired_baseline(40.0, [8, 32], [4.0, 2.0]) is None


def test_win_rate_counts_strict_wins_in_the_metric_direction():
  assert statistics.win_rate([1.0, 2.0, 3.0, None], [2.0, 2.0, 1.0, 0.0], False) == (1, 3)
  assert statistics.win_rate([1.0, 2.0, 3.0], [2.0, 2.0, 1.0], True) == (1, 3)
