"""Tests for fmacomp.models.classifier and the registry: shapes, freezing, loading an encoder."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmacomp import errors
from fmacomp import models
from fmacomp.models import classifier
from fmacomp.models import time_ae

TINY_AE = dict(hidden_channels=8, latent_channels=4, kernel_size=64, stride=32)
TINY_HEAD = dict(n_classes=3, conv_channels=4, hidden=8)


def key(seed=0):
  return jax.random.key(seed, impl='rbg')  # threefry initialisers compile slowly on CPU


def shapes(model, length, batch=2):
  x = jax.ShapeDtypeStruct((batch, length), jnp.float32)
  variables = jax.eval_shape(model.init, key(), x)
  return variables, jax.eval_shape(model.apply, variables, x)


def flat(tree):
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree))


def test_reference_head_on_the_time_encoder():
  model = models.get_model('classifier', n_classes=8, encoder='time_ae')
  variables, logits = shapes(model, 131072)  # 2.97 s at 44.1 kHz -> a [B, 511, 32] latent
  assert logits.shape == (2, 8)
  params = variables['params']
  assert params['layer_norm']['scale'].shape == (511, 32)  # LayerNorm((32, 511))
  assert params['conv1']['kernel'].shape == (5, 32, 32)
  assert params['fc1']['kernel'].shape == (608, 100)  # 19 frames x 32 channels
  assert params['fc2']['kernel'].shape == (100, 8)
  assert params['encoder']['enc_conv']['kernel'].shape == (512, 1, 64)
  assert set(variables['norm']) == {'encoder'}  # the encoder's statistics travel with it


@pytest.mark.parametrize('channels', (512, 32))
def test_head_on_the_frequency_latent(channels):
  # The encoder can come from an autoencoder config's model block (its 'name' included).
  kwargs = flax.core.FrozenDict(name='freq_ae', latent_channels=channels)
  model = models.get_model('classifier', n_classes=8, encoder_kwargs=kwargs)
  variables, logits = shapes(model, 65536)  # 8.192 s at 8 kHz -> [B, 126, C]
  assert logits.shape == (2, 8)
  assert variables['params']['layer_norm']['scale'].shape == (126, channels)
  assert variables['params']['fc1']['kernel'].shape == (4 * 32, 100)
  with pytest.raises(ValueError, match='needs longer crops'):
    shapes(model, 23776)  # 2.97 s at 8 kHz: 44 latent frames are too few for the head


def test_logmel_baseline():
  model = models.get_model('classifier', n_classes=8, frontend='logmel', n_mels=128)
  variables, logits = shapes(model, 131072)
  assert logits.shape == (2, 8)
  assert variables['params']['layer_norm']['scale'].shape == (513, 128)
  assert 'encoder' not in variables['params'] and set(variables) == {'params'}


def test_configuration_errors():
  with pytest.raises(ValueError, match='autoencoder name'):
    shapes(classifier.Classifier(n_classes=2), 8192)
  clash = classifier.Classifier(n_classes=2, encoder='time_ae',
                                encoder_kwargs=flax.core.FrozenDict(name='freq_ae'))
  with pytest.raises(ValueError, match='encoder_kwargs name'):
    shapes(clash, 8192)
  with pytest.raises(ValueError, match='unknown frontend'):
    shapes(classifier.Classifier(n_classes=2, frontend='mfcc'), 8192)
  with pytest.raises(errors.InputError, match='unknown model'):
    models.get_model('vq_vae')
  with pytest.raises(errors.InputError, match='latent_size'):
    models.get_model('freq_ae', latent_size=3)


def test_registry_makes_config_values_immutable():
  model = models.get_model('freq_ae', widths=[4, 8])
  assert model.widths == (4, 8)
  head = models.get_model('classifier', n_classes=2, encoder_kwargs={'widths': [1, 2]})
  assert head.encoder_kwargs == flax.core.FrozenDict(widths=(1, 2))
  assert set(models.AUTOENCODERS) == {'freq_ae', 'time_ae'}


def test_encoder_mask_selects_exactly_the_encoder_params():
  model = models.get_model('classifier', **TINY_HEAD, encoder='time_ae',
                           encoder_kwargs=TINY_AE)
  params = shapes(model, 8192)[0]['params']
  mask = flat(classifier.encoder_param_mask(params))
  ae_params = shapes(time_ae.TimeAE(**TINY_AE), 8192)[0]['params']
  encoder_keys = {('encoder',) + k for k in flat(ae_params) if k[0].startswith('enc_')}
  assert {k for k, frozen in mask.items() if frozen} == encoder_keys
  assert len(mask) > len(encoder_keys)
  trainable = flat(classifier.trainable_mask(params))
  assert all(trainable[k] != mask[k] for k in mask)


@pytest.fixture(scope='module')
def tiny():
  """A trained-looking tiny autoencoder and a classifier on its encoder, both initialised."""
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8192)) * 0.1, jnp.float32)
  ae = time_ae.TimeAE(**TINY_AE, norm_mean=0.01, norm_std=0.2)
  ae_variables = jax.jit(ae.init)(key(1), x)
  model = classifier.Classifier(**TINY_HEAD, encoder='time_ae', encoder_kwargs=TINY_AE)
  variables = jax.jit(model.init)(key(2), x)
  return x, ae, ae_variables, model, variables


def test_load_encoder_copies_params_and_statistics(tiny):
  x, ae, ae_variables, model, variables = tiny
  loaded = classifier.load_encoder(variables, ae_variables)
  assert flat(loaded['params']).keys() == flat(variables['params']).keys()
  for name in ('enc_conv', 'enc_latent'):
    np.testing.assert_array_equal(loaded['params']['encoder'][name]['kernel'],
                                  ae_variables['params'][name]['kernel'])
  assert float(loaded['norm']['encoder']['std']) == pytest.approx(0.2)
  np.testing.assert_array_equal(loaded['params']['fc1']['kernel'],
                                variables['params']['fc1']['kernel'])
  encode = jax.jit(lambda v, x: ae.apply(v, x, method='encode'))
  subtree = {c: tree['encoder'] for c, tree in loaded.items() if 'encoder' in tree}
  np.testing.assert_allclose(encode(subtree, x), encode(ae_variables, x), atol=1e-6)
  logits = jax.jit(model.apply)
  assert not np.allclose(logits(loaded, x), logits(variables, x))  # the encoder is used
  params = dict(ae_variables['params'], enc_conv={'kernel': jnp.zeros((3, 1, 8)),
                                                  'bias': jnp.zeros(8)})
  with pytest.raises(errors.InputError, match=r'/tmp/ae: params/enc_conv/kernel has shape'):
    classifier.load_encoder(variables, dict(ae_variables, params=params), source='/tmp/ae')
  params = {'enc_conv': ae_variables['params']['enc_conv']}
  with pytest.raises(errors.InputError, match='no params/enc_latent/bias'):
    classifier.load_encoder(variables, dict(ae_variables, params=params))


@pytest.mark.parametrize('freeze', [True, False])
def test_frozen_encoder_gets_no_gradient(tiny, freeze):
  x, _, _, model, variables = tiny
  model = model.clone(freeze_encoder=freeze)
  labels = jnp.array([0, 2])

  @jax.jit
  def grads(params):
    def loss(params):
      logits = model.apply({**variables, 'params': params}, x, train=True)
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels])
    return jax.grad(loss)(params)

  g = flat(grads(variables['params']))
  mask = flat(classifier.encoder_param_mask(variables['params']))
  for k, leaf in g.items():
    moved = float(jnp.abs(leaf).max()) > 0
    assert np.all(np.isfinite(leaf)) and moved == (not (mask[k] and freeze)), k
