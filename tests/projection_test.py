"""fmacomp.evaluation.projection: PCA recovers structure, t-SNE separates clusters, reproducibly."""

import numpy as np
import pytest

from fmacomp.evaluation import projection


def clusters(n_per=30, k=4, dims=12, spread=6.0, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(k), n_per)
  return rng.standard_normal((k, dims))[labels] * spread + rng.standard_normal(
      (k * n_per, dims)), labels


def test_pca_finds_the_dominant_direction_and_its_variance():
  rng = np.random.default_rng(1)
  direction = np.array([3.0, 4.0, 0.0]) / 5.0
  x = rng.standard_normal(200)[:, None] * 10 * direction + 0.1 * rng.standard_normal((200, 3))
  points, ratio = projection.pca(x)
  assert points.shape == (200, 2)
  assert ratio[0] > 0.99 and ratio[1] < 0.01
  # The first coordinate is the projection on the direction (up to the fixed sign).
  centred = x - x.mean(axis=0)
  np.testing.assert_allclose(np.abs(points[:, 0]), np.abs(centred @ direction), atol=0.05)
  again, _ = projection.pca(x)
  np.testing.assert_array_equal(points, again)


def test_pca_pads_when_there_are_fewer_features_than_dims():
  points, ratio = projection.pca(np.arange(10.0)[:, None])
  assert points.shape == (10, 2) and np.all(points[:, 1] == 0) and ratio[1] == 0


def test_tsne_separates_clusters_and_is_deterministic():
  x, labels = clusters()
  y = projection.tsne(x, iterations=400)
  assert y.shape == (len(labels), 2) and np.isfinite(y).all()
  assert projection.neighbour_agreement(y, labels) > 0.95
  np.testing.assert_array_equal(y, projection.tsne(x, iterations=400))
  # The same points with shuffled labels: agreement falls to chance (1/4).
  shuffled = np.random.default_rng(0).permutation(labels)
  assert projection.neighbour_agreement(y, shuffled) < 0.5


def test_tsne_handles_few_points_and_rejects_too_few():
  x, _ = clusters(n_per=2, k=3)
  assert np.isfinite(projection.tsne(x, iterations=50)).all()  # perplexity lowered to (N-1)/3
  with pytest.raises(ValueError):
    projection.tsne(x[:3])
