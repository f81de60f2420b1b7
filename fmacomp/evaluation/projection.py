"""2-D projections of latents for the report: PCA (numpy SVD) and an exact t-SNE (numpy).

The t-SNE is the textbook algorithm (van der Maaten & Hinton 2008) with the usual
optimisation tricks (early exaggeration, momentum, per-coordinate gains), computed exactly in
O(N^2): meant for the few hundred points of a test split, not for tens of thousands. It is
deterministic for a given seed, so the report's figures are reproducible.
"""

import numpy as np

_EXAGGERATION = 12.0
_EXAGGERATION_ITERS = 250


def pca(x, dims=2):
  """Principal components: x [N, D] -> (points [N, dims], explained variance ratio [dims]).

  The sign of each component is fixed (largest |loading| positive) so reruns agree.
  """
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(f'pca needs [N >= 2, D] points, got shape {x.shape}')
  centred = x - x.mean(axis=0)
  _, s, vt = np.linalg.svd(centred, full_matrices=False)  # vt [min(N, D), D]
  vt = vt[:dims]
  signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
  vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
  points = centred @ vt.T  # [N, k]
  variance = s**2
  ratio = variance[:dims] / max(variance.sum(), 1e-300)
  if points.shape[1] < dims:  # fewer features than dims: pad with zeros
    points = np.pad(points, ((0, 0), (0, dims - points.shape[1])))
    ratio = np.pad(ratio, (0, dims - ratio.shape[0]))
  return points, ratio


def _squared_distances(x):
  sq = np.sum(x * x, axis=1)
  return np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)  # [N, N]


def _conditional_p(distances, perplexity, tol=1e-5, max_steps=64):
  """Rows of P(j | i) whose entropy is log(perplexity), by bisection on each row's precision."""
  n = distances.shape[0]
  target = np.log(perplexity)
  p = np.zeros((n, n))
  for i in range(n):
    d = np.delete(distances[i], i)
    d = d - d.min()  # shift for stability: it cancels in the normalisation
    lo, hi, beta = 0.0, np.inf, 1.0
    for _ in range(max_steps):
      w = np.exp(-d * beta)
      total = max(w.sum(), 1e-300)
      entropy = np.log(total) + beta * np.sum(d * w) / total
      if abs(entropy - target) < tol:
        break
      if entropy > target:  # too flat: raise the precision
        lo, beta = beta, beta * 2 if hi == np.inf else (beta + hi) / 2
      else:
        hi, beta = beta, (beta + lo) / 2
    p[i, np.arange(n) != i] = w / total
  return p


def tsne(x, perplexity=30.0, iterations=750, seed=0):
  """Exact t-SNE: x [N, D] -> points [N, 2].

  Args:
    x: the points (e.g. latents averaged over frames), N >= 4.
    perplexity: effective neighbours; lowered to (N - 1) / 3 for small N.
    iterations: gradient steps (the first 250 with early exaggeration).
    seed: the initialisation's seed (PCA-shaped noise-free start, then jitter from the seed).

  Returns:
    float64 [N, 2].
  """
  x = np.asarray(x, np.float64)
  n = x.shape[0]
  if x.ndim != 2 or n < 4:
    raise ValueError(f'tsne needs [N >= 4, D] points, got shape {x.shape}')
  x = (x - x.mean(axis=0)) / max(x.std(), 1e-12)
  perplexity = min(perplexity, (n - 1) / 3)
  p = _conditional_p(_squared_distances(x), perplexity)
  p = np.maximum((p + p.T) / (2 * n), 1e-12)  # symmetric joint P [N, N]

  # Start from PCA scaled to a small spread (as scikit-learn's init='pca'), plus tiny jitter.
  y, _ = pca(x, 2)
  y = y / max(y[:, 0].std(), 1e-12) * 1e-4
  y += 1e-6 * np.random.default_rng(seed).standard_normal(y.shape)
  velocity, gains = np.zeros_like(y), np.ones_like(y)
  learning_rate = max(n / _EXAGGERATION / 4, 50.0)
  for it in range(iterations):
    exaggeration = _EXAGGERATION if it < _EXAGGERATION_ITERS else 1.0
    num = 1.0 / (1.0 + _squared_distances(y))  # Student-t kernel [N, N]
    np.fill_diagonal(num, 0.0)
    q = np.maximum(num / num.sum(), 1e-12)
    weights = (exaggeration * p - q) * num  # [N, N]
    grad = 4.0 * (weights.sum(axis=1)[:, None] * y - weights @ y)  # [N, 2]
    same = np.sign(grad) == np.sign(velocity)
    gains = np.maximum(np.where(same, gains * 0.8, gains + 0.2), 0.01)
    momentum = 0.5 if it < _EXAGGERATION_ITERS else 0.8
    velocity = momentum * velocity - learning_rate * gains * grad
    y = y + velocity
    y = y - y.mean(axis=0)
  return y


def neighbour_agreement(points, labels, k=5):
  """Fraction of each point's k nearest neighbours (in `points`) that share its label.

  A one-number summary of how well a projection (or a latent space) separates the classes.
  """
  points, labels = np.asarray(points, np.float64), np.asarray(labels)
  d = _squared_distances(points)
  np.fill_diagonal(d, np.inf)
  k = min(k, len(labels) - 1)
  nearest = np.argsort(d, axis=1)[:, :k]  # [N, k]
  return float(np.mean(labels[nearest] == labels[:, None]))
