"""StftCodec: exact lengths, an invertible frame transform, the symbol path equals the call path,
`context()` bounds the real receptive fields, digital silence gives all-zero symbols, operating
points differ, and the cost the docstring claims is the count of the real parameter shapes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmacomp.configs import stft_codec as stft_codec_config
from fmacomp import models
from fmacomp.models import stft_codec
from fmacomp.training import tasks

KEY = jax.random.key(0)
RATE = 16000


def small(**kw):
  fields = dict(sample_rate=RATE, n_fft=128, hop_samples=32, width=8, encoder_blocks=2,
                decoder_blocks=1, mlp_ratio=2, latent_channels=3, side_channels=2,
                hyper_hidden=4, max_symbol=15, side_max_symbol=7, num_scales=8, num_points=2)
  fields.update(kw)
  return models.get_model('stft_codec', **fields)


def music(length, batch=1, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(length) / RATE
  x = 0.3 * np.sin(2 * np.pi * 330 * t) * np.sin(2 * np.pi * 3 * t) + 0.05 * rng.standard_normal(
      (batch, length))
  return jnp.asarray(x, jnp.float32)


def random_variables(model, x, seed=0):
  """Generic weights drawn in numpy (XLA compiles each initialiser separately on CPU)."""
  shapes = jax.eval_shape(functools.partial(model.init, train=False), KEY, x)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype), shapes)


@pytest.fixture(scope='module')
def setup():
  model = small()
  x = music(32 * 60)
  return model, x, random_variables(model, x)


def test_every_length_comes_back_exactly(setup):
  model, _, variables = setup
  apply = jax.jit(model.apply, static_argnames='method')
  for length in (1, 80):  # 80 samples: 5 ms at 16 kHz
    x = music(length)
    out = apply(variables, x)
    assert out['prediction'].shape == x.shape, length
    assert out['latent'].shape == (1, max(1, -(-length // 32)), 3), length
  symbols = apply(variables, music(80), method='to_symbols')
  assert symbols.shape == (1, 3, model.symbol_channels)
  assert model.frames(1) == 1 and model.frames(64) == 2 and model.frames(65) == 3


def test_frames_are_exactly_invertible():
  for n_fft, hop in ((2048, 512), (256, 128)):  # 4x and 2x overlap
    x = music(hop * 40, batch=2)
    spec = stft_codec.analysis(x, n_fft, hop)
    assert spec.shape == (2, 40, n_fft // 2 + 1)
    np.testing.assert_allclose(stft_codec.synthesis(spec, n_fft, hop), x, atol=2e-6)


def test_symbol_path_is_the_evaluation_path_at_each_point(setup):
  model, x, variables = setup

  @jax.jit
  def paths(variables, x, point):
    out = model.apply(variables, x, train=False, point=point)
    symbols = model.apply(variables, x, point, method='to_symbols')
    return out, symbols, model.apply(variables, symbols, point, method='from_symbols')

  bits = []
  for point in range(model.num_points):
    out, symbols, audio = paths(variables, x, jnp.int32(point))
    assert symbols.dtype == jnp.int32
    assert int(jnp.abs(symbols[..., :3]).max()) <= model.max_symbol
    assert int(jnp.abs(symbols[..., 3:]).max()) <= model.side_max_symbol
    np.testing.assert_allclose(audio[:, :x.shape[-1]], out['prediction'], atol=1e-5)
    bits.append(float(out['bits'][0]))
  assert bits[0] != bits[1]  # each point has its own gains


def test_digital_silence_gives_all_zero_symbols_whatever_the_weights(setup):
  model, x, _ = setup
  for seed in range(3):
    variables = random_variables(model, x, seed)
    symbols = jax.jit(functools.partial(model.apply, method='to_symbols'))(
        variables, jnp.concatenate([jnp.zeros_like(x), x]))
    assert not np.asarray(symbols[0]).any() and np.asarray(symbols[1]).any()


def test_context_bounds_the_receptive_fields():
  model = small(kernel_size=5, encoder_blocks=2, decoder_blocks=2)
  encoder_samples, decoder_frames = model.context()
  frames = 2 * (encoder_samples // model.hop + decoder_frames) + 9
  x = music(model.hop * frames)
  variables = random_variables(model, x)
  mid = frames // 2

  def side(x):  # z's channels reach furthest: h_a spans 2 frames of y either side
    y = model.apply(variables, x, method='encode')
    return model.apply(variables, y, method=lambda m, y: m.hyperprior.side_latent(y))

  for fn in (lambda x: model.apply(variables, x, method='encode'), side):
    grad = jax.jit(jax.grad(lambda x, fn=fn: fn(x)[0, mid].sum()))(x)
    reach = np.nonzero(np.asarray(grad[0]))[0]
    assert mid * model.hop - reach.min() <= encoder_samples
    assert reach.max() - ((mid + 1) * model.hop - 1) <= encoder_samples
    if fn is side:  # the bound is tight: z reaches into the last frame it allows
      assert mid * model.hop - reach.min() > encoder_samples - model.hop
  z = model.apply(variables, x, method='encode')
  grad = jax.jit(jax.grad(lambda z: model.apply(variables, z, method='decode')[
      0, mid * model.hop:(mid + 1) * model.hop].sum()))(z)
  reach = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1))[0]
  assert mid - reach.min() <= decoder_frames and reach.max() - mid <= decoder_frames
  assert mid - reach.min() >= decoder_frames - 1


def _dense_macs(params, prefixes):
  """MACs per frame of the named layers, from their parameter shapes: a Dense kernel [i, o]
  costs i o, a depthwise kernel [k, w] k w."""
  total = 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    names = [getattr(p, 'key', '') for p in path]
    if names[0].startswith(prefixes) and names[-1] in ('kernel', 'depthwise'):
      total += int(np.prod(leaf.shape))
  return total


def test_the_full_model_costs_about_0_2_gmac_per_second_each_way():
  config = stft_codec_config.get_config('')
  model = models.get_model('stft_codec', **tasks.model_kwargs(config.model))
  x = jnp.zeros((1, 512 * 8), jnp.float32)
  params = jax.eval_shape(functools.partial(model.init, train=False), KEY, x)['params']
  encoder = _dense_macs(params, ('enc_',))
  decoder = _dense_macs(params, ('dec_', 'head'))
  assert (encoder, decoder) == model.macs_per_frame()
  frames_per_s = config.sample_rate / model.hop
  gmac = [m * frames_per_s / 1e9 for m in (encoder, decoder)]
  print(f'encode_gmac_per_s={gmac[0]:.3f} decode_gmac_per_s={gmac[1]:.3f}')
  assert all(0.15 < g < 0.25 for g in gmac), gmac


def test_configs_tie_points_to_lambdas():
  for arg in ('', 'quick', 'tiny'):
    config = stft_codec_config.get_config(arg)
    assert len(config.loss.lmbdas) == config.model.num_points, arg
    assert list(config.loss.lmbdas) == sorted(config.loss.lmbdas, reverse=True), arg
    hop = config.model.hop_samples
    assert round(config.crop_s * config.sample_rate) % hop == 0, arg
