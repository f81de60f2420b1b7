"""ConvCodec: shapes, the symbol path equals the call path, and `context()` bounds the real
receptive fields (measured with gradients), which chunked coding relies on."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmacomp.configs import codec as codec_config
from fmacomp import losses
from fmacomp import models
from fmacomp.training import tasks

from tests.models import model_checks

KEY = jax.random.key(0)


def small(**kw):
  fields = dict(sample_rate=16000, strides=(2, 4), channels=4, latent_channels=3,
                dilations=(1, 3), activation='snake')
  fields.update(kw)
  return models.get_model('conv_codec', **fields)


def music(length, batch=1, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(length) / 16000
  x = 0.3 * np.sin(2 * np.pi * 330 * t) * np.sin(2 * np.pi * 3 * t) + 0.05 * rng.standard_normal(
      (batch, length))
  return jnp.asarray(x, jnp.float32)


def random_variables(model, x, seed=0):
  """Parameters of the model's shapes drawn in numpy: XLA on CPU takes tens of seconds to
  compile an initialiser per parameter, and these tests need any generic weights."""
  shapes = jax.eval_shape(functools.partial(model.init, train=False), KEY, x)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype), shapes)


@pytest.fixture(scope='module')
def trained_shape():
  model = small()
  x = music(8 * 100)
  return model, x, random_variables(model, x)


def test_shapes_and_hop(trained_shape):
  model, x, variables = trained_shape
  assert model.hop == 8 and model.frames(801) == 101
  out = jax.jit(functools.partial(model.apply, train=True))(variables, x, rngs={'noise': KEY})
  assert set(variables['params']) == {'encoder', 'decoder', 'bottleneck'}
  assert out['prediction'].shape == x.shape and out['target'] is not None
  assert out['latent'].shape == (1, 100, 3) and out['bits'].shape == (1,)
  assert float(out['bits'][0]) > 0
  # A length that is not a whole number of frames is padded, then trimmed back.
  odd = music(8 * 100 - 3)
  assert model.apply(variables, odd)['prediction'].shape == odd.shape
  assert model.apply(variables, odd, method='encode').shape == (1, 100, 3)


def test_symbol_path_is_the_evaluation_path(trained_shape):
  model, x, variables = trained_shape
  out = model.apply(variables, x, train=False)
  symbols = model.apply(variables, x, method='to_symbols')
  assert symbols.dtype == jnp.int32 and int(jnp.abs(symbols).max()) <= model.max_symbol
  audio = model.apply(variables, symbols, method='from_symbols')
  np.testing.assert_allclose(audio, out['prediction'], atol=1e-5)
  np.testing.assert_allclose(model.apply(variables, model.apply(variables, x, method='encode'),
                                         method='quantise'), out['latent'], atol=1e-6)


@pytest.mark.parametrize('fields', [
    dict(strides=(4, 2, 2), dilations=(1,), activation='elu'),
    dict(strides=(2, 4, 5, 8), channels=2, latent_channels=2, dilations=(1, 3, 9)),
])
def test_context_bounds_the_receptive_fields(fields):
  model = small(**fields)
  frames = 2 * sum(model.context()) // model.hop + 2 * model.context()[1] + 9
  x = music(model.hop * frames)
  variables = random_variables(model, x)
  decoder_reach = model_checks.assert_context_bounds_receptive_fields(model, variables, x, frames)
  # The bound is not wildly loose: the decoder's context is paid for in bits.
  assert model.context()[1] <= decoder_reach + 3


def test_tables_come_from_the_bottleneck_params(trained_shape):
  from fmacomp.models import bottleneck  # pylint: disable=g-import-not-at-top
  model, _, variables = trained_shape
  tables = bottleneck.cdf_tables(model.make_bottleneck(),
                                 {'params': variables['params']['bottleneck']})
  assert tables['cdf'].shape == (3, 2 * model.max_symbol + 2)
  pmf = np.asarray(model.apply(variables, method='pmf'))
  np.testing.assert_allclose(np.diff(tables['cdf'], axis=1) / 2**16, pmf, atol=2e-3)


def test_configs_share_a_structure_and_parse_rate_arguments():
  full, tiny, quick = (codec_config.get_config(a) for a in ('', 'tiny', 'quick'))
  assert set(full.to_dict()) == set(tiny.to_dict()) == set(quick.to_dict())
  assert set(full.model) == set(tiny.model) and set(full.loss) == set(tiny.loss)
  assert full.data.name == 'music_folder' and tiny.data.name == 'synthetic_music/tiny'
  assert full.model.sample_rate == 44100 and tiny.model.sample_rate == 16000  # get_ref
  for config in (full, tiny, quick):
    model = models.get_model('conv_codec', **tasks.model_kwargs(config.model))
    crop = round(config.crop_s * config.sample_rate)
    assert crop % model.hop == 0, (crop, model.hop)
    assert crop > max(losses.MEL_WINDOWS + tuple(n for n, _ in losses.STFT_RESOLUTIONS)) // 2
  target = codec_config.get_config('tiny,kbps=6')
  assert target.loss.target_kbps == 6.0 and target.loss.lmbda == codec_config.HINGE_LMBDA
  assert codec_config.get_config('lmbda=0.3').loss.lmbda == 0.3
  assert [s['loss.lmbda'] for s in codec_config.sweep()] == list(codec_config.SWEEP_LMBDAS)
