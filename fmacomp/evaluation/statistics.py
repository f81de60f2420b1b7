"""Statistics of rate-distortion comparisons: bootstrap intervals, paired win rates, BD-rate.

One module so that the evaluation (results.json) and benchmarks/rd_bench.py compute every
interval and summary the same way.

- `bootstrap_ci`: a percentile bootstrap 95 % interval of a mean over clips that resamples
  recordings, not clips: excerpts of one recording are not independent draws (they share its
  style, mix and source codec), so resampling them would make the interval too narrow.
- `paired_baseline` and `win_rate`: on how many clips a codec beats a baseline at the same
  bitrate, the baseline's value on each clip interpolated to the codec's measured bitrate.
- `bd_rate`: the Bjøntegaard delta rate, the average bitrate difference at equal quality.
- `rate_at_quality`: the bitrate a baseline needs for one quality (a single operating point's
  counterpart of BD-rate).
"""

import numpy as np
import scipy.interpolate

N_BOOTSTRAP = 2000


def bootstrap_ci(values, groups, *, level=0.95, n_boot=N_BOOTSTRAP, seed=0):
  """Percentile bootstrap interval of the mean of `values`, resampling whole groups.

  Each bootstrap sample draws as many groups as there are, with replacement, and takes the
  mean over all values of the drawn groups (a group drawn twice counts twice).

  Args:
    values: [N] numbers (one per clip).
    groups: [N] group ids (the clip's recording).
    level: the interval's coverage.
    n_boot: bootstrap samples.
    seed: the generator's seed (the same inputs always give the same interval).

  Returns:
    (low, high) floats; (mean, mean) when there is one group or all values are equal.
  """
  values = np.asarray(values, np.float64)
  ids, index = np.unique(np.asarray(groups), return_inverse=True)
  if values.shape[0] != index.shape[0] or values.shape[0] == 0:
    raise ValueError(f'{values.shape[0]} values for {index.shape[0]} groups')
  sums = np.bincount(index, weights=values, minlength=ids.size)  # [G]
  counts = np.bincount(index, minlength=ids.size).astype(np.float64)  # [G]
  rng = np.random.default_rng(seed)
  draws = rng.multinomial(ids.size, np.full(ids.size, 1.0 / ids.size), size=n_boot)  # [B, G]
  means = (draws @ sums) / (draws @ counts)  # [B]
  tail = (1 - level) / 2 * 100
  low, high = np.percentile(means, [tail, 100 - tail])
  # Guard float noise so that identical values give an interval of exactly zero width.
  mean = float(values.mean())
  return (mean, mean) if np.ptp(values) == 0 else (float(low), float(high))


def paired_baseline(kbps, baseline_kbps, baseline_values):
  """A baseline's value at `kbps`: linear in log kbps between its two nearest points.

  Below the baseline's lowest bitrate its lowest point is used (it gets more bits than the
  codec it is compared with, which can only favour it); above its highest there is no value.

  Args:
    kbps: the codec's measured bitrate.
    baseline_kbps: [K] the baseline's measured bitrates (its points on one clip).
    baseline_values: [K] its metric at those points.

  Returns:
    The value, or None above the baseline's range or without points.
  """
  points = sorted((k, v) for k, v in zip(baseline_kbps, baseline_values)
                  if k and v is not None and np.isfinite(v))
  if not points or kbps > points[-1][0]:
    return None
  xs, ys = zip(*points)
  return float(np.interp(np.log(kbps), np.log(xs), ys))


def win_rate(ours, theirs, higher_is_better):
  """(wins, n): clips on which `ours` is strictly better than `theirs` (None pairs skipped)."""
  pairs = [(a, b) for a, b in zip(ours, theirs) if a is not None and b is not None]
  wins = sum((a > b) if higher_is_better else (a < b) for a, b in pairs)
  return int(wins), len(pairs)


def frontier(rates, qualities, higher_is_better):
  """The points no other point beats on both bitrate and quality, by rising bitrate.

  Returns:
    ([rates], [qualities]) with the quality strictly better at each higher rate. A careful
    user never picks a dominated point (more bits for less quality), and a curve of log-rate
    against quality must be a function for BD-rate.
  """
  sign = 1.0 if higher_is_better else -1.0
  kept, best = [], -np.inf
  for rate, q in sorted(zip(rates, qualities)):
    if q is not None and np.isfinite(q) and sign * q > best:
      kept.append((rate, q))
      best = sign * q
  return [r for r, _ in kept], [q for _, q in kept]


def _log_rate_of_quality(rates, qualities, higher_is_better):
  """PCHIP of log(rate) as a function of quality (increasing) on a frontier's points."""
  sign = 1.0 if higher_is_better else -1.0
  q = sign * np.asarray(qualities, np.float64)
  order = np.argsort(q)
  return scipy.interpolate.PchipInterpolator(q[order], np.log(np.asarray(rates))[order]), sign


def bd_rate(anchor, test, higher_is_better, names=('the anchor', 'the codec')):
  """Bjøntegaard delta rate of `test` against `anchor`, in percent (negative: fewer bits).

  Each curve is reduced to its `frontier`; log-rate is a piecewise-cubic (PCHIP) function of
  quality on each; both are integrated over the quality range they share; the difference of
  the mean log-rates is the average bitrate ratio at equal quality: 100 (exp(diff) - 1). It is
  undefined, never extrapolated, where a frontier has a single point or the ranges do not
  overlap.

  Args:
    anchor: ([kbps], [quality]) of the reference codec (e.g. Opus).
    test: ([kbps], [quality]) of the codec judged.
    higher_is_better: whether higher quality values are better (ViSQOL) or lower (mel distance).
    names: how a reason names the two curves.

  Returns:
    (percent, None), or (None, reason) where it is undefined.
  """
  curves = [frontier(*c, higher_is_better) for c in (anchor, test)]
  for name, given, (rates, _) in zip(names, (anchor, test), curves):
    if len(given[0]) < 2:
      return None, f'{name} is a single operating point'
    if len(rates) < 2:
      return None, (f'{name} has {len(given[0])} points but 1 on its frontier (the others have '
                    'more bits and a worse score)')
  fits = [_log_rate_of_quality(*c, higher_is_better) for c in curves]
  sign = fits[0][1]
  spans = [(min(sign * np.asarray(q)), max(sign * np.asarray(q))) for _, q in curves]
  low, high = max(s[0] for s in spans), min(s[1] for s in spans)
  if high <= low:
    ranges = ' and '.join(f'{min(q):.3g}..{max(q):.3g}' for _, q in curves)
    return None, f'quality ranges do not overlap ({ranges})'
  means = [f.integrate(low, high) / (high - low) for f, _ in fits]
  return float(100 * (np.exp(means[1] - means[0]) - 1)), None


def rate_at_quality(anchor, quality, higher_is_better):
  """The bitrate `anchor`'s frontier needs for `quality` (PCHIP in log-rate), or None outside it.

  Returns:
    (kbps, None), or (None, reason).
  """
  rates, qualities = frontier(*anchor, higher_is_better)
  if len(rates) < 2:
    return None, 'the anchor has fewer than 2 operating points'
  if not min(qualities) <= quality <= max(qualities):
    return None, (f'{quality:.3g} is outside the anchor\'s quality range '
                  f'{min(qualities):.3g}..{max(qualities):.3g}')
  fit, sign = _log_rate_of_quality(rates, qualities, higher_is_better)
  return float(np.exp(fit(sign * quality))), None
