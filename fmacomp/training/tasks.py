"""What each model is trained to do: its module, variables, loss and validation.

`make_task(config, builder)` returns a task with
  init_variables(rng) -> {'params': ..., other collections}
  loss(params, non_trainable, batch, rng) -> (loss, metrics)   pure; traced in train_step
  trainable_mask                                         None, or a bool pytree over params
  load_pretrained(state, shardings) -> state             e.g. a classifier's encoder
  evaluate(state, builder, mesh, config) -> {'loss': ..., ...} on the validation split

Autoencoders minimise MSE in their own domain (STFT for freq_ae, normalised audio for time_ae)
and report the seed spectral RMSE of their decoded audio; codecs minimise distortion + lambda x
estimated kbps (`configs/codec.py`) and report kbps and the pinned mel distance (a
rate-conditioned codec, `configs/stft_codec.py`, per operating point); the classifier
minimises cross-entropy and reports accuracy. Validation never touches the test split.
"""

import functools

import flax
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

from fmacomp import audio
from fmacomp.datasets import pipeline
from fmacomp import errors
from fmacomp import losses
from fmacomp import metrics as metrics_lib
from fmacomp import models
from fmacomp.models import classifier as classifier_lib
from fmacomp.training import checkpointing


def make_task(config, builder):
  name = config.model.name
  if name in models.AUTOENCODERS:
    return AutoencoderTask(config, builder)
  if name == 'classifier':
    return ClassifierTask(config, builder)
  if name in models.RATE_CONDITIONED:
    return RateConditionedCodecTask(config, builder)
  if name in models.CODECS:
    return CodecTask(config, builder)
  raise errors.InputError('config.model.name', f'unknown model {name!r}')


def model_kwargs(model_config):
  kwargs = dict(model_config)
  kwargs.pop('name')
  return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def freeze(tx, trainable_mask, config):
  """Zero updates for frozen params; after `config.unfreeze_step` (>= 0) they train too."""
  if config.get('unfreeze_step', -1) < 0:
    frozen = optax.set_to_zero()
  else:
    gate = lambda count: jnp.where(count >= config.unfreeze_step, 1.0, 0.0)
    frozen = optax.chain(tx, optax.scale_by_schedule(gate))
  labels = jax.tree.map(lambda t: 'train' if t else 'frozen', trainable_mask)
  return optax.multi_transform({'train': tx, 'frozen': frozen}, labels)


def _gather(x):
  """Per-example outputs of a sharded eval step, on every host."""
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _eval_batches(config, builder, mesh):
  """Validation batches as global arrays (segments of the crop length), at most N batches."""
  batches = pipeline.eval_batches(
      builder, split='validation', segment_s=config.crop_s, sample_rate=config.sample_rate,
      batch_size=config.batch_size // jax.process_count(),
      label_filter=config.get('label_filter') or None)
  sharding = jax.NamedSharding(mesh, jax.P('data'))
  for i, batch in enumerate(batches):
    if config.eval_batches and i >= config.eval_batches:
      break
    host = {k: batch[k] for k in ('audio', 'label', 'mask')}
    yield pipeline.to_global(host, sharding)


class AutoencoderTask:
  """freq_ae / time_ae: MSE in the model's domain; seed spectral RMSE on decoded audio."""

  trainable_mask = None

  def __init__(self, config, builder):
    self.config = config
    kwargs = model_kwargs(config.model)
    if config.model.name == 'time_ae':
      mean, std = pipeline.normalization_stats(builder, split='train',
                                               sample_rate=config.sample_rate)
      kwargs.update(norm_mean=float(mean), norm_std=float(std))
    self.model = models.get_model(config.model.name, **kwargs)
    self.crop_len = int(round(config.crop_s * config.sample_rate))
    self.loss = functools.partial(autoencoder_loss, self.model)
    self._eval_step = jax.jit(functools.partial(_autoencoder_eval, self.model))

  def init_variables(self, rng):
    variables = self.model.init(rng, jnp.zeros((1, self.crop_len), jnp.float32))
    return flax.core.unfreeze(variables)

  def load_pretrained(self, state, shardings):
    del shardings
    return state

  def evaluate(self, state, builder, mesh, config):
    sq_err, count, rmse = 0.0, 0, []
    for batch in _eval_batches(config, builder, mesh):
      err, audio_hat = self._eval_step({'params': state.params, **state.non_trainable}, batch)
      err, audio_hat = _gather(err), _gather(audio_hat)
      mask, audio = _gather(batch['mask']), _gather(batch['audio'])
      sq_err += float(err[mask].sum())
      count += int(mask.sum())
      rmse += [metrics_lib.seed_spectral_rmse(a, b, config.sample_rate)
               for a, b, m in zip(audio, audio_hat, mask) if m]
    return {'loss': sq_err / max(count, 1), 'seed_spectral_rmse': float(np.mean(rmse)),
            'examples': count}


def autoencoder_loss(model, params, non_trainable, batch, rng):
  out = model.apply({'params': params, **non_trainable}, batch['audio'], train=True,
                    rngs={'dropout': rng})
  loss = jnp.mean(jnp.square(out['prediction'] - out['target']))
  return loss, {}


def _autoencoder_eval(model, variables, batch):
  """Per-example domain MSE and decoded audio (what a user would hear)."""
  out = model.apply(variables, batch['audio'])
  err = jnp.mean(jnp.square(out['prediction'] - out['target']),
                 axis=tuple(range(1, out['target'].ndim)))
  audio_hat = model.apply(variables, out['latent'], method='decode')
  return err, audio_hat


class ClassifierTask:
  """Genre head on a (frozen) encoder's latent, or on log-mel; cross-entropy and accuracy."""

  def __init__(self, config, builder):
    self.config = config
    kwargs = model_kwargs(config.model)
    kwargs['n_classes'] = builder.info.features['label'].num_classes
    self.encoder_workdir = None
    if kwargs.get('frontend') == 'latent':
      if not config.encoder_workdir:
        raise errors.InputError('config.encoder_workdir',
                                'a latent classifier needs its encoder\'s workdir')
      self.encoder_workdir = config.encoder_workdir
      encoder_config = checkpointing.load_config(self.encoder_workdir)
      if encoder_config.sample_rate != config.sample_rate:
        raise errors.InputError(self.encoder_workdir, (
            f'encoder runs at {encoder_config.sample_rate} Hz, the classifier at '
            f'{config.sample_rate} Hz'))
      kwargs['encoder'] = encoder_config.model.name
      kwargs['encoder_kwargs'] = model_kwargs(encoder_config.model)
      # stop_gradient only when the encoder never trains; else the optimiser gates it.
      kwargs['freeze_encoder'] = config.unfreeze_step < 0
    self.model = models.get_model('classifier', **kwargs)
    self.crop_len = int(round(config.crop_s * config.sample_rate))
    self.loss = functools.partial(_classifier_loss, self.model)
    self._eval_step = jax.jit(functools.partial(_classifier_eval, self.model))
    self.trainable_mask = None
    if self.encoder_workdir:
      shapes = jax.eval_shape(self.init_variables, jax.random.key(0))
      self.trainable_mask = classifier_lib.trainable_mask(shapes['params'])

  def init_variables(self, rng):
    return flax.core.unfreeze(self.model.init(rng, jnp.zeros((1, self.crop_len), jnp.float32)))

  def load_pretrained(self, state, shardings):
    """Copies the encoder's best checkpoint (params and statistics) into the state."""
    if not self.encoder_workdir:
      return state
    encoder, _ = checkpointing.load_params(self.encoder_workdir)
    variables = {'params': jax.device_get(state.params), **jax.device_get(state.non_trainable)}
    variables = classifier_lib.load_encoder(variables, encoder, source=self.encoder_workdir)
    params = variables.pop('params')
    return jax.device_put(state.replace(params=params, non_trainable=variables), shardings)

  def evaluate(self, state, builder, mesh, config):
    nll, correct, count = 0.0, 0, 0
    for batch in _eval_batches(config, builder, mesh):
      loss, hit = self._eval_step({'params': state.params, **state.non_trainable}, batch)
      mask = _gather(batch['mask'])
      nll += float(_gather(loss)[mask].sum())
      correct += int(_gather(hit)[mask].sum())
      count += int(mask.sum())
    return {'loss': nll / max(count, 1), 'accuracy': correct / max(count, 1),
            'examples': count}


def _classifier_loss(model, params, non_trainable, batch, rng):
  logits = model.apply({'params': params, **non_trainable}, batch['audio'], train=True,
                       rngs={'dropout': rng})
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
  return loss, {'accuracy': accuracy}


def _classifier_eval(model, variables, batch):
  logits = model.apply(variables, batch['audio'])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
  return loss, jnp.argmax(logits, -1) == batch['label']


class CodecTask:
  """Quantised codecs: distortion + lambda x estimated kbps (`configs/codec.py`,
  `configs/quantised_ae.py`; the latter fine-tunes from a trained autoencoder's workdir).

  Training draws the quantisation noise from the 'noise' rng stream, keyed by train_step's
  per-step key. Validation runs the coder's own path (rounded symbols, bits from the prior) and
  reports the total loss, its parts, `kbps_estimated` and the pinned `mel_distance` (44.1 kHz)
  of the decoded audio. The integer CDF tables are frozen from the best checkpoint's params by
  `fmacomp.fmac.model_store.export_tables` (deterministic: the same params give the same tables).
  """

  trainable_mask = None

  def __init__(self, config, builder):
    del builder
    self.config = config
    self.model = models.get_model(config.model.name, **model_kwargs(config.model))
    self.crop_len = int(round(config.crop_s * config.sample_rate))
    self.loss = functools.partial(_codec_loss, self.model, config.loss, config.sample_rate)
    self._eval_step = jax.jit(functools.partial(_codec_eval, self.model, config.loss,
                                                config.sample_rate))

  def init_variables(self, rng):
    variables = self.model.init(rng, jnp.zeros((1, self.crop_len), jnp.float32), train=False)
    return flax.core.unfreeze(variables)

  def load_pretrained(self, state, shardings):
    """A quantised autoencoder starts from its trained autoencoder (`config.ae_workdir`)."""
    workdir = self.config.get('ae_workdir')
    if not workdir:
      return state
    ae_config = checkpointing.load_config(workdir)
    if ae_config.model.name != self.config.model.base:
      raise errors.InputError(workdir, f'holds a {ae_config.model.name}, not the '
                                       f'{self.config.model.base} this config quantises')
    trained, _ = checkpointing.load_params(workdir)
    params, non_trainable = jax.device_get(state.params), jax.device_get(state.non_trainable)
    for collection, tree in trained.items():
      target = params if collection == 'params' else non_trainable.setdefault(collection, {})
      if jax.tree.map(np.shape, target.get('ae')) != jax.tree.map(np.shape, tree):
        raise errors.InputError(workdir, f'its {collection} do not fit the model (another '
                                         'variant of the autoencoder?)')
      target['ae'] = tree
    return jax.device_put(state.replace(params=params, non_trainable=non_trainable), shardings)

  def evaluate(self, state, builder, mesh, config):
    totals, count, mel = {}, 0, []
    for batch in _eval_batches(config, builder, mesh):
      parts, audio_hat = self._eval_step({'params': state.params, **state.non_trainable}, batch)
      mask, audio = _gather(batch['mask']), _gather(batch['audio'])
      for k, v in parts.items():
        totals[k] = totals.get(k, 0.0) + float(_gather(v)[mask].sum())
      count += int(mask.sum())
      mel += [metrics_lib.mel_distance(a, b, config.sample_rate)
              for a, b, m in zip(audio, _gather(audio_hat), mask) if m]
    result = {k: v / max(count, 1) for k, v in totals.items()}
    result.update(mel_distance=float(np.mean(mel)) if mel else float('nan'), examples=count)
    return result


def _codec_terms(loss_config, sample_rate, out, length):
  """Per-example loss parts [B] of a codec output: distortion, rate and their total."""
  x, y = out['target'], out['prediction']
  terms = {'mel_loss': (loss_config.mel,
                        lambda a, b: losses.multiscale_mel_loss(a, b, sample_rate)),
           'stft_loss': (loss_config.stft, losses.multi_resolution_stft_loss),
           'l1_loss': (loss_config.l1, losses.waveform_l1),
           'mse_loss': (loss_config.mse, losses.waveform_mse)}
  # A term weighted 0 is not computed (its spectrograms cost compile and run time).
  parts = {k: jax.vmap(fn)(x, y) for k, (weight, fn) in terms.items() if weight}
  if loss_config.get('domain_mse'):  # a quantised autoencoder's own loss, in its own domain
    terms['domain_mse'] = (loss_config.domain_mse, None)
    err = jnp.square(out['domain_prediction'] - out['domain_target'])
    parts['domain_mse'] = jnp.mean(err, axis=tuple(range(1, err.ndim)))
  distortion = sum(terms[k][0] * v for k, v in parts.items())
  kbps = out['bits'] * sample_rate / length / 1000  # [B]
  rate = loss_config.lmbda * jnp.maximum(kbps - loss_config.target_kbps, 0.0)
  symbols = out['latent'].shape[1] * out['latent'].shape[2]
  parts.update(distortion=distortion, kbps_estimated=kbps, bits_per_symbol=out['bits'] / symbols,
               loss=distortion + rate)
  return parts


def _codec_loss(model, loss_config, sample_rate, params, non_trainable, batch, rng):
  out = model.apply({'params': params, **non_trainable}, batch['audio'], train=True,
                    rngs={'noise': rng})
  parts = _codec_terms(loss_config, sample_rate, out, batch['audio'].shape[-1])
  parts = {k: jnp.mean(v) for k, v in parts.items()}
  return parts.pop('loss'), parts


def _codec_eval(model, loss_config, sample_rate, variables, batch):
  """Per-example loss parts and the decoded audio, through rounded symbols (the coder's path)."""
  out = model.apply(variables, batch['audio'], train=False)
  return _codec_terms(loss_config, sample_rate, out, batch['audio'].shape[-1]), out['prediction']


def complex_stft_loss(x, y, n_fft, hop, power=0.3):
  """mean |c(Y) - c(X)|^2 with c(X) = |X|^power e^(i arg X) (the compressed complex spectrum of
  MP-SENet and APCodec): phase counts, weighted by a compressed magnitude. (..., T) -> scalar."""
  def compress(spec):
    scale = (jnp.real(spec)**2 + jnp.imag(spec)**2 + 1e-12)**((power - 1) / 2)
    return jnp.real(spec) * scale, jnp.imag(spec) * scale
  (xr, xi), (yr, yi) = compress(audio.stft(x, n_fft, hop)), compress(audio.stft(y, n_fft, hop))
  return jnp.mean(jnp.square(yr - xr) + jnp.square(yi - xi))


class RateConditionedCodecTask(CodecTask):
  """One codec, several bitrates (`configs/stft_codec.py`): each example trains at an operating
  point p drawn uniformly, with rate weight `loss.lmbdas[p]`, on crops `augment`ed by
  `config.augment`; validation runs every point
  through rounded symbols and reports `<part>_p<p>`, `kbps_estimated_p<p>`, `mel_distance_p<p>`
  and, as `loss`, the mean over points of distortion + lmbdas[p] x kbps."""

  def __init__(self, config, builder):
    del builder
    self.config = config
    self.model = models.get_model(config.model.name, **model_kwargs(config.model))
    if len(config.loss.lmbdas) != self.model.num_points:
      raise errors.InputError('config.loss.lmbdas', f'{len(config.loss.lmbdas)} values for '
                                                    f'{self.model.num_points} operating points')
    self.crop_len = int(round(config.crop_s * config.sample_rate))
    self.loss = functools.partial(_rate_codec_loss, self.model, config.loss, config.augment,
                                  config.sample_rate)
    self._eval_step = jax.jit(functools.partial(_rate_codec_eval, self.model, config.loss,
                                                config.sample_rate))

  def load_pretrained(self, state, shardings):
    del shardings
    return state

  def evaluate(self, state, builder, mesh, config):
    variables = {'params': state.params, **state.non_trainable}
    totals, count, mel = {}, 0, {}
    for batch in _eval_batches(config, builder, mesh):
      mask, audio_np = _gather(batch['mask']), _gather(batch['audio'])
      count += int(mask.sum())
      for p in range(self.model.num_points):
        parts, audio_hat = self._eval_step(variables, batch, jnp.int32(p))
        for k, v in parts.items():
          totals[f'{k}_p{p}'] = totals.get(f'{k}_p{p}', 0.0) + float(_gather(v)[mask].sum())
        mel.setdefault(p, []).extend(metrics_lib.mel_distance(a, b, config.sample_rate) for a, b, m
                                     in zip(audio_np, _gather(audio_hat), mask) if m)
    result = {k: v / max(count, 1) for k, v in totals.items()}
    for p in range(self.model.num_points):
      result[f'mel_distance_p{p}'] = float(np.mean(mel[p])) if mel.get(p) else float('nan')
    points = range(self.model.num_points)
    result.update(loss=float(np.mean([result.get(f'loss_p{p}', np.nan) for p in points])),
                  examples=count)
    return result


def _rate_codec_terms(loss_config, sample_rate, model, out, length):
  """Per-example loss parts [B] at each example's operating point `out['point']`."""
  x, y = out['target'], out['prediction']
  terms = {'mel_loss': (loss_config.mel,
                        lambda a, b: losses.multiscale_mel_loss(a, b, sample_rate)),
           'stft_loss': (loss_config.stft, losses.multi_resolution_stft_loss),
           'complex_loss': (loss_config.complex,
                            lambda a, b: complex_stft_loss(a, b, model.n_fft, model.hop))}
  parts = {k: jax.vmap(fn)(x, y) for k, (weight, fn) in terms.items() if weight}
  distortion = sum(terms[k][0] * v for k, v in parts.items())
  kbps = out['bits'] * sample_rate / length / 1000  # [B]
  lmbda = jnp.asarray(loss_config.lmbdas, jnp.float32)[out['point']]
  parts.update(distortion=distortion, kbps_estimated=kbps, loss=distortion + lmbda * kbps)
  return parts


def augment(x, rng, config):
  """Training crops x [B, T] -> crops the codec learns to code (and to reproduce).

  With probability `config.mix` a crop is mixed with its batch neighbour's; each is scaled by a
  gain uniform in `config.gain_db` dB, its polarity flipped with probability 1/2 if
  `config.polarity`, and with probability `config.silence` replaced by digital silence (so the
  rate model sees quiet and silent frames, which real training music seldom has); then clipped
  to [-1, 1].
  """
  mix_key, gain_key, sign_key, silence_key = jax.random.split(rng, 4)
  shape = x.shape[:1] + (1,) * (x.ndim - 1)  # one draw per crop
  x = x + jax.random.bernoulli(mix_key, config.mix, shape) * jnp.roll(x, 1, axis=0)
  low, high = config.gain_db
  x = x * 10 ** (jax.random.uniform(gain_key, shape, minval=low, maxval=high) / 20)
  if config.polarity:
    x = jnp.where(jax.random.bernoulli(sign_key, 0.5, shape), -x, x)
  x = jnp.where(jax.random.bernoulli(silence_key, config.silence, shape), 0.0, x)
  return jnp.clip(x, -1.0, 1.0)


def _rate_codec_loss(model, loss_config, augment_config, sample_rate, params, non_trainable,
                     batch, rng):
  noise, draw, augment_key = jax.random.split(rng, 3)
  x = augment(batch['audio'], augment_key, augment_config)
  point = jax.random.randint(draw, x.shape[:1], 0, model.num_points)
  out = model.apply({'params': params, **non_trainable}, x, train=True, point=point,
                    rngs={'noise': noise})
  parts = _rate_codec_terms(loss_config, sample_rate, model, out, x.shape[-1])
  parts = {k: jnp.mean(v) for k, v in parts.items()}
  return parts.pop('loss'), parts


def _rate_codec_eval(model, loss_config, sample_rate, variables, batch, point):
  """Per-example loss parts and decoded audio at operating point `point`, rounded symbols."""
  out = model.apply(variables, batch['audio'], train=False, point=point)
  parts = _rate_codec_terms(loss_config, sample_rate, model, out, batch['audio'].shape[-1])
  return parts, out['prediction']
