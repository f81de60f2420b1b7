r"""Frequency-domain (STFT) autoencoder, the reference study's main model.

Reference settings (DESIGN.md): 8 kHz mono, 65,536-sample crops (8.192 s), STFT n_fft 512,
hop 128, Hann, centred; encoder 2->8->32 (5x5, stride 2, VALID) then a 62x1 conv to a
C x 1 x 126 latent, C in {512, 256, 128, 64, 32}; mirrored decoder; MSE on the real/imag STFT;
Adam at 1e-3. The reference trained on FMA small with its own 70/30 split; its batch size and
epoch count are not published in a usable form, so `full` trains 20k steps of batch 16.

  python launch/train.py --config=fmacomp/configs/freq_ae.py:quick,latent=128 --workdir=/tmp/fae
  python launch/sweep.py --config=fmacomp/configs/freq_ae.py:quick --workdir=/tmp/fae_sweep

Arguments: `quick` (about a minute here), `tiny` (tests), `latent=C`, `seed=N`,
`data=NAME` (a DESIGN.md dataset name).
"""

from fmacomp.configs import common

LATENT_SIZES = (512, 256, 128, 64, 32)


def get_config(arg=None):
  args = common.parse_arg(arg, quick=False, tiny=False, latent=128, seed=0,
                          data='synthetic_music')
  size = common.variant(args)
  config = common.base_config(seed=args.seed)
  config.data.name = args.data

  # Audio constants: set once, referenced below.
  config.sample_rate = 8000
  config.crop_s = 65536 / 8000
  config.n_fft = 512
  config.hop = 128

  config.model = dict(
      sample_rate=config.get_ref('sample_rate'),
      name='freq_ae',
      latent_channels=args.latent,
      n_fft=config.get_ref('n_fft'),
      hop=config.get_ref('hop'),
      widths=(8, 32),
  )
  config.steps = 20_000
  config.batch_size = 16
  config.eval_every = 1000
  config.checkpoint_every = 1000

  if size == 'quick':
    common.shrink(config, steps=150, batch_size=8, eval_every=50)
    config.crop_s = 4.096
  elif size == 'tiny':
    common.shrink(config, steps=6, batch_size=4, eval_every=3, eval_batches=1)
    config.crop_s = 0.512
    config.model.latent_channels = 16
    config.model.widths = (4, 8)
  return config


def sweep():
  """Seeds x latent sizes, as the reference's table (one run each, resumable)."""
  return [{'seed': seed, 'model.latent_channels': c}
          for c in LATENT_SIZES for seed in (0, 1, 2)]
