"""Model registry: a config's `model.name` -> a Flax Linen module.

  'freq_ae'     STFT autoencoder (8 kHz input), `fmacomp.models.freq_ae.FreqAE`
  'time_ae'     waveform autoencoder (44.1 kHz input), `fmacomp.models.time_ae.TimeAE`
  'classifier'  genre head on an encoder's latent or on log-mel, `...classifier.Classifier`
  'conv_codec'  strided waveform codec, `...conv_codec.ConvCodec`
  'stft_codec'  full-band frame-rate codec with a hyperprior and several bitrates,
                `...stft_codec.StftCodec`

Every autoencoder (`AUTOENCODERS`) exposes `encode(x) -> z` (audio [B, T] -> latent
[B, frames, channels]), `decode(z, length=None) -> audio [B, T]` and `__call__(x, train)` ->
dict(prediction, target, latent), so a classifier or the codec can take any of them. Modules
are imported lazily, so importing this package is cheap.

`from_config(config.model, **fields)` builds the model a config describes: evaluation and the
model store reach it through `fmacomp.training.checkpointing.load_run`, which adds the fields a
config links to rather than holds (a classifier's encoder, read from its encoder's workdir).
"""

import importlib

from flax.core import frozen_dict

from fmacomp import errors

# name -> (module, class name)
_MODELS = {
    'freq_ae': ('fmacomp.models.freq_ae', 'FreqAE'),
    'time_ae': ('fmacomp.models.time_ae', 'TimeAE'),
    'classifier': ('fmacomp.models.classifier', 'Classifier'),
    'conv_codec': ('fmacomp.models.conv_codec', 'ConvCodec'),
    'quantised_ae': ('fmacomp.models.quantised_ae', 'QuantisedAE'),
    'stft_codec': ('fmacomp.models.stft_codec', 'StftCodec'),
}
AUTOENCODERS = ('freq_ae', 'time_ae')
# Models with a bottleneck and an entropy model: they train with a rate term and write .fmac.
CODECS = ('conv_codec', 'quantised_ae', 'stft_codec')
# Codecs with several operating points in one model (a `point` argument, `num_points` of them):
# a workdir holds them all; they code their own streams (`model.stream_coding()`).
RATE_CONDITIONED = ('stft_codec',)


def model_class(name):
  """The module class registered as `name`."""
  if name not in _MODELS:
    raise errors.InputError(name, f'unknown model (choose from {", ".join(sorted(_MODELS))})')
  module, cls = _MODELS[name]
  return getattr(importlib.import_module(module), cls)


def _hashable(value):
  """Config values -> module fields: lists become tuples and dicts FrozenDicts."""
  if isinstance(value, (list, tuple)):
    return tuple(_hashable(v) for v in value)
  if hasattr(value, 'items'):  # dict, ConfigDict, FrozenDict
    return frozen_dict.FrozenDict({k: _hashable(v) for k, v in value.items()})
  return value


def get_model(name, /, **kwargs):
  """Builds the model registered as `name` with fields `kwargs` (e.g. a config's model block).

  Args:
    name: 'freq_ae', 'time_ae' or 'classifier'.
    **kwargs: module fields; lists and mappings are made immutable. Flax's `name` and
      `parent` pass through.

  Raises:
    errors.InputError: an unknown name, or a field the model does not have.
  """
  cls = model_class(name)
  fields = set(cls.__dataclass_fields__)
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise errors.InputError(name, f'unknown model field(s) {", ".join(unknown)}')
  return cls(**{k: v if k in ('name', 'parent') else _hashable(v) for k, v in kwargs.items()})


def from_config(model_config, /, **fields):
  """Builds the model a config's model block describes (`config.model`, with its `name`).

  Args:
    model_config: a ConfigDict or mapping with `name` and the module's fields.
    **fields: fields to add or replace, those a config does not hold (e.g. a classifier's
      `n_classes`, which comes from the dataset).

  Raises:
    errors.InputError: an unknown name, or a field the model does not have.
  """
  kwargs = dict(model_config)
  name = kwargs.pop('name')
  return get_model(name, **{**kwargs, **fields})
