r"""The waveform codec: strided convolutional encoder/decoder + quantised latent + learned prior.

Loss = distortion + rate term, both per example and averaged over the batch:

  distortion = loss.mel x multi-scale log-mel L1 (DAC)  + loss.stft x multi-resolution STFT
             + loss.l1 x waveform L1                     + loss.mse x waveform MSE
  rate term  = loss.lmbda x max(kbps - loss.target_kbps, 0)

kbps is the prior's estimate of the example's bits / its seconds / 1000, so `lmbda` is in
distortion units per kbps: with the default weights a well-trained codec trades about 0.1-0.3
of distortion per kbps at a few kbps, so lambdas of 0.02-0.5 span the useful curve. With
`kbps=N` the term is a hinge: bits below N kbps are free, bits above cost `lmbda` (default 1,
steeper than the distortion's slope), so training settles near N kbps (never above, give or
take the estimate's noise). `lmbda=X` alone is the plain Lagrangian D + X x kbps.

  python launch/train.py --config=fmacomp/configs/codec.py:quick,kbps=6 --workdir=/tmp/codec
  python launch/sweep.py --config=fmacomp/configs/codec.py:quick --workdir=/tmp/codec_rd
  python launch/encode.py song.flac song.fmac --model=/tmp/codec

Variants: `tiny` (tests: 16 kHz, hop 32, two stages of a few channels, mel + L1 loss, trains in
seconds on synthetic_music/tiny), `quick` (16 kHz, hop 40, a few minutes here on
synthetic_music), full (44.1 kHz, strides 2-4-5-8 = hop 320, 137.8 latent frames/s; not trained
in CI). The shipped real-music codecs come from `codec_music.py`, a 22.05 kHz variant sized for a
CPU.

Arguments: `quick`, `tiny`, `kbps=N` (target bitrate), `lmbda=X` (rate weight), `seed=N`,
`data=NAME`.
"""

import functools
import math

from fmacomp.configs import common

DEFAULT_LMBDA = 0.1  # plain Lagrangian when neither kbps nor lmbda is given
HINGE_LMBDA = 1.0  # the rate weight above a `kbps=N` target
SWEEP_LMBDAS = (0.02, 0.05, 0.1, 0.2, 0.5)


def _frames_to_s(frames, strides, rate):
  return frames * math.prod(strides) / rate


def latent_crop_s(config, frames):
  """A crop of `frames` whole latent frames, in seconds, as a reference to assign to `crop_s`.

  The hop is the product of `config.model.strides` and the rate is `config.sample_rate`, both
  read when the crop is: a variant, sweep or flag that changes the strides or the rate moves
  the crop with them (the pipeline rounds it to samples).
  """
  return common.derived(functools.partial(_frames_to_s, frames),
                        config.model.get_ref('strides'), config.get_ref('sample_rate'))


def get_config(arg=None):
  args = common.parse_arg(arg, quick=False, tiny=False, seed=0, data='', kbps=0.0, lmbda=-1.0)
  size = common.variant(args)
  config = common.base_config(seed=args.seed)
  config.data.name = args.data or {'tiny': 'synthetic_music/tiny', 'quick': 'synthetic_music',
                                    'full': 'music_folder'}[size]

  # Audio constants: set once, referenced below; the crop follows the rate and the strides.
  config.sample_rate = 44100

  config.model = dict(
      name='conv_codec',
      sample_rate=config.get_ref('sample_rate'),
      strides=(2, 4, 5, 8),
      channels=32,
      latent_channels=64,
      dilations=(1, 3, 9),
      kernel_size=7,
      activation='snake',
      max_symbol=15,
      prior_filters=(3, 3, 3),
      prior_init_scale=4.0,
  )
  config.crop_s = latent_crop_s(config, 140)  # hop 320: 1.016 s
  if args.lmbda < 0:
    lmbda = HINGE_LMBDA if args.kbps > 0 else DEFAULT_LMBDA
  else:
    lmbda = args.lmbda
  config.loss = dict(mel=1.0, stft=1.0, l1=1.0, mse=0.0, lmbda=lmbda, target_kbps=args.kbps)

  config.steps = 200_000
  config.batch_size = 16
  config.eval_every = 2000
  config.checkpoint_every = 2000
  config.eval_batches = 16
  config.optimizer.lr = 3e-4
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 1000
  config.optimizer.grad_clip_norm = 1.0

  if size == 'quick':
    common.shrink(config, steps=400, batch_size=8, eval_every=200, eval_batches=4)
    config.sample_rate = 16000
    config.crop_s = latent_crop_s(config, 200)  # hop 40: 0.5 s
    config.model.update(strides=(2, 4, 5), channels=8, latent_channels=8)
    config.optimizer.update(lr=1e-3, warmup_steps=20)
  elif size == 'tiny':
    # Steps are cheap once compiled (~0.1 s); 120 of them take the mel distance from 3.4
    # (40 steps) to about 2.8.
    common.shrink(config, steps=120, batch_size=4, eval_every=60, log_every=30,
                  eval_batches=1)
    config.sample_rate = 16000
    config.crop_s = latent_crop_s(config, 128)  # hop 32: 0.256 s
    # Few layers: XLA on CPU compiles each parameter's initialiser separately (seconds here).
    config.model.update(strides=(4, 8), channels=4, latent_channels=4, dilations=(1,),
                        activation='elu', prior_filters=(3,), prior_init_scale=1.0)
    config.loss.update(stft=0.0)
    config.optimizer.update(lr=3e-3, warmup_steps=5)
  return config


def sweep():
  """A rate-distortion curve: one run per lambda (plain Lagrangian, no target)."""
  return [{'loss.lmbda': lmbda} for lmbda in SWEEP_LMBDAS]
