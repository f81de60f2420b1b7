"""The reference study's genre classifier: a small conv head on an encoder's latent.

Input: audio [B, T] at the frontend's rate: the encoder's (time_ae: 44.1 kHz, 131,072-sample
crops = 2.97 s, so a [B, 511, 32] latent) or, with `frontend='logmel'`, `sample_rate`.

  frontend: 'latent' -> the autoencoder's `encode` (params under the submodule 'encoder'),
            frozen by `stop_gradient` while `freeze_encoder`;
            'logmel' -> log-mel spectrogram [B, frames, n_mels], the no-autoencoder baseline.
  head:     LayerNorm over frames x channels (as the reference's LayerNorm((32, 511)), with a
            scale and bias per element), two blocks Conv1d(32, k5, VALID)-ReLU-MaxPool(5),
            flatten (608 = 19 x 32 values for 511 frames), Dense 100, ReLU, Dense n_classes.

The head's sizes follow from the crop length (its LayerNorm and first Dense are shaped by the
frames), as in the reference. It needs at least 49 frames: a freq_ae latent at 8 kHz needs
crops of 3.3 s or more (2.97 s gives 44 frames).

train.py loads the encoder from the autoencoder's checkpoint with `load_encoder` and may also
freeze it in the optimiser with `encoder_param_mask` (e.g. `optax.masked`), which is what an
unfreeze step switches off without recompiling the model.
"""

from typing import Any, Optional

import flax.linen as nn
from flax import traverse_util
from flax.core import frozen_dict
import jax
import jax.numpy as jnp

from fmacomp import audio
from fmacomp import errors

ENCODER = 'encoder'  # the encoder's submodule name: its subtree in every collection


class Classifier(nn.Module):
  """Genre logits from audio (see the module docstring).

  Attributes:
    n_classes: number of genres.
    frontend: 'latent' (an autoencoder's encoder) or 'logmel'.
    encoder: the autoencoder's registry name ('time_ae', 'freq_ae'); may instead come from
      `encoder_kwargs['name']` (an autoencoder config's model block).
    encoder_kwargs: the autoencoder's fields (its config's model block).
    freeze_encoder: no gradient reaches the encoder (`stop_gradient` on the latent).
    sample_rate: input rate for the log-mel frontend.
    n_mels: log-mel bands.
    mel_window_s: log-mel FFT window, in seconds (1024 samples at 44.1 kHz).
    mel_hop_s: log-mel hop, in seconds (256 samples at 44.1 kHz: 513 frames per 2.97 s).
    conv_channels: channels of the head's convs (32).
    kernel_size: their kernel (5).
    pool: max-pool size and stride (5).
    hidden: width of the hidden Dense layer (100).
    dropout: dropout rate before each Dense layer when training (the reference: none).
  """
  n_classes: int
  frontend: str = 'latent'
  encoder: Optional[str] = None
  encoder_kwargs: Any = frozen_dict.FrozenDict()
  freeze_encoder: bool = True
  sample_rate: int = 44100
  n_mels: int = 64
  mel_window_s: float = 1024 / 44100
  mel_hop_s: float = 256 / 44100
  conv_channels: int = 32
  kernel_size: int = 5
  pool: int = 5
  hidden: int = 100
  dropout: float = 0.0

  def _encoder_module(self):
    """The autoencoder whose `encode` is the frontend, named 'encoder' (inside __call__)."""
    from fmacomp import models  # pylint: disable=g-import-not-at-top (models imports us)
    kwargs = dict(self.encoder_kwargs or {})
    name = kwargs.pop('name', None)
    if self.encoder and name and self.encoder != name:
      raise ValueError(f'encoder {self.encoder!r} but encoder_kwargs name {name!r}')
    name = self.encoder or name
    if name not in models.AUTOENCODERS:
      raise ValueError(f'frontend "latent" needs an autoencoder name, got {name!r} '
                       f'(choose from {", ".join(models.AUTOENCODERS)})')
    return models.get_model(name, name=ENCODER, **kwargs)

  def _features(self, x):
    """Audio [B, T] -> the frontend's [B, frames, channels] (inside __call__)."""
    if self.frontend == 'logmel':
      window = 2 * int(round(self.mel_window_s * self.sample_rate / 2))  # stft needs it even
      hop = int(round(self.mel_hop_s * self.sample_rate))
      return audio.log_mel(x, self.sample_rate, window, hop, self.n_mels)
    if self.frontend != 'latent':
      raise ValueError(f'unknown frontend {self.frontend!r} (choose latent or logmel)')
    z = self._encoder_module().encode(x)
    return jax.lax.stop_gradient(z) if self.freeze_encoder else z

  def _check_frames(self, frames, need):
    if frames < need:
      raise ValueError(f'the classifier head needs longer crops: {frames} frames left where '
                       f'{need} are needed (kernel {self.kernel_size}, pool {self.pool})')

  @nn.compact
  def __call__(self, x, train=False):
    """Audio [B, T] -> logits [B, n_classes]. Dropout (if any) needs the 'dropout' rng."""
    h = self._features(x)  # [B, frames, channels]
    h = nn.LayerNorm(epsilon=1e-5, reduction_axes=(-2, -1), feature_axes=(-2, -1),
                     name='layer_norm')(h)
    for i in (1, 2):
      self._check_frames(h.shape[1], self.kernel_size + self.pool - 1)
      conv = nn.Conv(self.conv_channels, (self.kernel_size,), padding='VALID', name=f'conv{i}')
      h = nn.max_pool(nn.relu(conv(h)), (self.pool,), strides=(self.pool,), padding='VALID')
    h = h.reshape(h.shape[0], -1)  # [B, frames'' * conv_channels]
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = nn.relu(nn.Dense(self.hidden, name='fc1')(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return nn.Dense(self.n_classes, name='fc2')(h)


def encoder_param_mask(params):
  """A tree like `params` (the 'params' collection) that is True exactly on the encoder's leaves.

  Use it to freeze the encoder in the optimiser, e.g.
  `optax.chain(optax.masked(optax.set_to_zero(), mask), ...)`, or `optax.multi_transform`.
  """
  return traverse_util.path_aware_map(lambda path, _: path[0] == ENCODER, params)


def trainable_mask(params):
  """The complement of `encoder_param_mask`: True on the head's leaves (optax labels)."""
  return jax.tree.map(lambda frozen: not frozen, encoder_param_mask(params))


def load_encoder(variables, ae_variables, source='encoder checkpoint'):
  """Returns `variables` with every collection's 'encoder' subtree taken from an autoencoder.

  Args:
    variables: the classifier's variables ({'params': ..., 'norm': ...}).
    ae_variables: the trained autoencoder's variables (its checkpoint), whose top level of each
      collection holds the layers the classifier's encoder uses (plus the decoder's, ignored).
    source: what to name in an error (the checkpoint's path).

  Raises:
    errors.InputError: a layer is missing from the autoencoder or has another shape.
  """
  out = {}
  for collection, tree in variables.items():
    tree = dict(tree)
    if ENCODER in tree:
      ours = traverse_util.flatten_dict(frozen_dict.unfreeze(tree[ENCODER]))
      theirs = traverse_util.flatten_dict(frozen_dict.unfreeze(ae_variables.get(collection, {})))
      for key, leaf in ours.items():
        if key not in theirs:
          raise errors.InputError(source, f'no {collection}/{"/".join(key)} for the encoder')
        if jnp.shape(theirs[key]) != jnp.shape(leaf):
          raise errors.InputError(source, f'{collection}/{"/".join(key)} has shape '
                                  f'{jnp.shape(theirs[key])}, the encoder needs {jnp.shape(leaf)}')
        ours[key] = jnp.asarray(theirs[key], jnp.result_type(leaf))
      tree[ENCODER] = traverse_util.unflatten_dict(ours)
    out[collection] = tree
  return out
