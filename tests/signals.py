"""Deterministic test signals that sound like music rather than noise or tones."""

import numpy as np


def plucked_notes(seconds, sr, seed=0):
  """Plucked harmonic notes, four a second, over a little noise: float32 [T], peak 0.8."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * sr)) / sr
  x = 0.01 * rng.standard_normal(t.shape)
  for start in np.arange(0.0, seconds, 0.25):
    f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
    note = slice(int(start * sr), int((start + 2.0) * sr))  # the decay is -35 dB after 2 s
    tn = t[note] - start
    for k in range(1, 12):
      if k * f0 < sr / 2:
        x[note] += np.exp(-4.0 * tn) * 0.15 / k * np.sin(2 * np.pi * k * f0 * tn +
                                                           rng.uniform(0, 2 * np.pi))
  return (0.8 * x / np.abs(x).max()).astype(np.float32)
