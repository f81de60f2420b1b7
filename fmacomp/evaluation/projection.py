"""2-D projections of latents for the report: PCA (numpy SVD) and an exact t-SNE (numpy).

The t-SNE is the textbook algorithm (van der Maaten & Hinton 2008) with the usual
optimisation tricks (early exaggeration, momentum, per-coordinate gains), computed exactly in
O(N^2): meant for the few hundred points of a test split, not for tens of thousands. It is
deterministic for a given seed, so the report's figures are reproducible.

`LatentEvaluator` projects each autoencoder group's test latents (its first run's), each
segment's latent averaged over frames, and scores how well each projection separates genres.
"""

import numpy as np

from fmacomp.datasets import pipeline
from fmacomp.evaluation import common
from fmacomp.evaluation import rate_distortion
from fmacomp.training import checkpointing

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


def test_latents(run, builder, num_segments, max_points):
  """Latents of test segments averaged over frames: (float [N, C], labels int [N]).

  Args:
    run: a restored autoencoder (`checkpointing.TrainedRun`).
    builder: its dataset.
    num_segments: evenly spaced segments (of the run's crop length) per test track.
    max_points: at most this many, evenly spread over the segments in order.
  """
  feats, labels = [], []
  for batch in pipeline.eval_batches(
      builder, split='test', segment_s=run.config.crop_s, sample_rate=run.config.sample_rate,
      batch_size=8, num_segments=num_segments, label_filter='Unknown', process_index=0,
      process_count=1):
    mask = batch['mask']
    if mask.any():
      z = rate_distortion.encode_latents(run.model, run.variables, batch['audio'][mask])
      feats.append(z.mean(axis=1))  # [b, frames, C] -> [b, C]
      labels.append(batch['label'][mask])
  if not feats:
    return np.zeros((0, 0)), np.zeros(0, np.int64)
  feats, labels = np.concatenate(feats), np.concatenate(labels)
  if len(labels) > max_points:
    keep = np.unique(np.round(np.linspace(0, len(labels) - 1, max_points)).astype(int))
    feats, labels = feats[keep], labels[keep]
  return feats, labels


class LatentEvaluator:
  """PCA and t-SNE of each autoencoder group's (first run's) test latents."""
  name = 'latents'

  def run(self, context):
    options = context.options
    for group, members in context.groups('autoencoder').items():
      run = checkpointing.load_run(members[0].workdir)
      z, labels = test_latents(run, context.builder, options.genre_segments,
                               options.projection_points)
      if len(labels) < 4:  # t-SNE needs a few points
        continue
      entry = {'name': group, 'run': members[0].name, 'split': 'test', 'n': int(len(labels)),
               'labels': labels.tolist(), 'label_names': context.label_names,
               'features': 'latent averaged over frames'}
      for method, points in (('pca', pca(z)[0]), ('tsne', tsne(z))):
        entry[method] = {'points': points.round(5).tolist(),
                         'neighbour_agreement': neighbour_agreement(points, labels)}
      yield common.Result('latent.projections', entry)
