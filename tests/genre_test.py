"""fmacomp.evaluation.genre: the song vote, the classification report, classifying latents."""

import jax
import jax.numpy as jnp
import numpy as np

from fmacomp.evaluation import genre
from fmacomp import models

LABELS = ('blues', 'folk', 'rock')


def test_song_vote_takes_the_majority_and_breaks_ties_by_summed_probability():
  probs = np.array([
      [0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1],  # track a: 2 votes for 0
      [0.5, 0.4, 0.1], [0.05, 0.9, 0.05],                 # track b: 1-1 tie, class 1 sums more
      [0.2, 0.2, 0.6],                                    # track c: one segment
  ])
  ids, predictions = genre.song_votes(probs, ['a', 'a', 'a', 'b', 'b', 'c'])
  assert ids == ['a', 'b', 'c']
  np.testing.assert_array_equal(predictions, [0, 1, 2])


def test_classification_report_counts_and_undefined_ratios():
  report = genre.classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 1], LABELS)
  assert report['n'] == 5 and report['accuracy'] == 3 / 5
  assert report['confusion'] == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
  blues, folk, rock = report['per_class']
  assert (blues['precision'], blues['recall'], blues['support']) == (1.0, 0.5, 2)
  assert (folk['precision'], folk['recall'], folk['predicted']) == (0.5, 1.0, 4)
  assert rock['precision'] is None and rock['recall'] == 0.0  # never predicted


def test_genre_report_votes_per_track():
  probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]])
  out = genre.genre_report({'probs': probs, 'labels': np.array([1, 1, 1, 2]),
                            'track_ids': ['x', 'x', 'x', 'y']}, LABELS)
  assert out['segment']['accuracy'] == 3 / 4 and out['segment']['n'] == 4
  assert out['song']['accuracy'] == 1.0 and out['song']['n'] == 2


def test_classify_latents_feeds_the_head_without_running_the_encoder():
  encoder = dict(hidden_channels=8, latent_channels=4, kernel_size=64, stride=32)
  model = models.get_model('classifier', n_classes=3, encoder='time_ae', conv_channels=4,
                           hidden=8, encoder_kwargs=encoder)
  length = 32 * 60 + 32  # 60 latent frames
  x = jax.random.normal(jax.random.key(1, impl='rbg'), (2, length)) * 0.1
  variables = model.init(jax.random.key(0, impl='rbg'), x)
  # The latents the classifier's encoder computes, from the autoencoder with the same weights.
  encoder_vars = {c: tree['encoder'] for c, tree in variables.items()}
  z = models.get_model('time_ae', **encoder).apply(encoder_vars, x, method='encode')  # [2, 60, 4]
  np.testing.assert_allclose(genre.classify_latents(model, variables, z, length),
                             model.apply(variables, x), rtol=1e-5, atol=1e-6)
  # Other latents give other logits: the head really reads what it is given.
  other = genre.classify_latents(model, variables, jnp.zeros_like(z), length)
  assert not np.allclose(other, model.apply(variables, x))
