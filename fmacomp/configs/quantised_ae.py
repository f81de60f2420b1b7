r"""A reference autoencoder with a quantised latent, fine-tuned from its trained workdir.

The study's table, redone with measured bytes: the autoencoder of `configs/{time_ae,freq_ae}.py`
(same variant, rate, crop and data) gets the Bottleneck on its latent and trains on its own
loss (MSE in its domain) + lambda x estimated kbps, starting from `ae_workdir`'s best
checkpoint; a sweep over lambdas gives its rate-distortion curve in real .fmac bytes.

  python launch/train.py --config=fmacomp/configs/time_ae.py:quick --workdir=/tmp/tae
  python launch/sweep.py --config=fmacomp/configs/quantised_ae.py:quick,ae=time_ae,\
ae_workdir=/tmp/tae --workdir=/tmp/tae_rd
  python launch/encode.py song.wav song.fmac --model=/tmp/tae_rd --kbps=8

lambda is in domain-MSE units per kbps (time_ae: normalised audio, typically 0.01-0.1 after
training; freq_ae: the STFT image, ~0.5): the sweep spans 1e-4 to 1e-1 to cover both.

Arguments: `ae=time_ae|freq_ae`, `ae_workdir=DIR` (empty: train from scratch), `quick`, `tiny`,
`latent=C` (freq_ae), `lmbda=X`, `kbps=N` (hinge target as in configs/codec.py), `seed=N`,
`data=NAME`.
"""

from fmacomp.configs import codec as codec_config
from fmacomp.configs import common
from fmacomp.configs import freq_ae
from fmacomp.configs import time_ae

SWEEP_LMBDAS = (1e-4, 1e-3, 1e-2, 1e-1)


def get_config(arg=None):
  args = common.parse_arg(arg, ae='time_ae', ae_workdir='', quick=False, tiny=False, latent=128,
                          seed=0, data='synthetic_music', lmbda=-1.0, kbps=0.0)
  size = common.variant(args)
  variant = '' if size == 'full' else size
  base_args = f'{variant},seed={args.seed},data={args.data}'
  if args.ae == 'time_ae':
    config = time_ae.get_config(base_args)
  elif args.ae == 'freq_ae':
    config = freq_ae.get_config(f'{base_args},latent={args.latent}')
  else:
    raise ValueError(f'ae must be time_ae or freq_ae, got {args.ae!r}')

  base_kwargs = config.model
  config.model = dict(
      name='quantised_ae',
      base=args.ae,
      sample_rate=config.get_ref('sample_rate'),
      max_symbol=15,
      prior_filters=(3, 3, 3),
      prior_init_scale=4.0,
  )
  config.model.base_kwargs = base_kwargs  # the autoencoder's block, references intact
  if args.lmbda < 0:
    lmbda = codec_config.HINGE_LMBDA if args.kbps > 0 else 1e-3
  else:
    lmbda = args.lmbda
  config.loss = dict(mel=0.0, stft=0.0, l1=0.0, mse=0.0, domain_mse=1.0, lmbda=lmbda,
                     target_kbps=args.kbps)
  config.ae_workdir = args.ae_workdir
  # Fine-tuning: a tenth of the autoencoders' learning rate and steps.
  config.optimizer.lr = 1e-4 if args.ae_workdir else config.optimizer.lr
  if size == 'full':
    config.steps = 2000
    config.eval_every = config.checkpoint_every = 500
  return config


def sweep():
  """One run per lambda: the rate-distortion curve."""
  return [{'loss.lmbda': lmbda} for lmbda in SWEEP_LMBDAS]
