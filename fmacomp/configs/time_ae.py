r"""Time-domain (waveform) autoencoder of the reference study.

Reference settings (DESIGN.md): 44.1 kHz mono, 65,536-sample crops (1.49 s); Conv1d 1->64
(kernel 512, stride 256), ReLU, Conv1d 64->32 (kernel 1), ReLU: a 32 x 255 latent; a mirrored
decoder; MSE on audio normalised with statistics of the training split (saved in the
checkpoint); Adam at 1e-3.

  python launch/train.py --config=fmacomp/configs/time_ae.py:quick --workdir=/tmp/tae

Arguments: `quick`, `tiny`, `seed=N`, `data=NAME`.
"""

from fmacomp.configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, quick=False, tiny=False, seed=0, data='synthetic_music')
  size = common.variant(args)
  config = common.base_config(seed=args.seed)
  config.data.name = args.data

  config.sample_rate = 44100
  config.crop_s = 65536 / 44100

  config.model = dict(
      sample_rate=config.get_ref('sample_rate'),
      name='time_ae',
      hidden_channels=64,
      latent_channels=32,
      kernel_size=512,
      stride=256,
  )
  config.steps = 20_000
  config.batch_size = 32
  config.eval_every = 1000
  config.checkpoint_every = 1000

  if size == 'quick':
    common.shrink(config, steps=300, batch_size=16, eval_every=100)
  elif size == 'tiny':
    common.shrink(config, steps=6, batch_size=4, eval_every=3, eval_batches=1)
    config.sample_rate = 16000
    config.crop_s = 0.256
    config.model.update(hidden_channels=8, latent_channels=4, kernel_size=64, stride=32)
  return config


def sweep():
  return [{'seed': seed} for seed in (0, 1, 2)]
