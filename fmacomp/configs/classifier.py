r"""Genre classifier on an autoencoder's latent (or on log-mel: the no-autoencoder baseline).

Reference settings (DESIGN.md): the time autoencoder's encoder, frozen (optionally unfrozen
after `unfreeze_step`), then LayerNorm, two Conv1d(32, k5)-ReLU-MaxPool(5) blocks, Dense 100,
Dense n_genres; cross-entropy; 131,072-sample crops at 44.1 kHz (2.97 s; crops are set in
seconds so other rates agree). Reported per segment and per song (vote over 5 segments).

The encoder comes from a trained autoencoder's workdir (`encoder_workdir`, its best
checkpoint); its model config is read from that workdir's config.json.

  python launch/train.py --config=fmacomp/configs/classifier.py:quick \
      --config.encoder_workdir=/tmp/tae --workdir=/tmp/cls
  python launch/train.py --config=fmacomp/configs/classifier.py:quick,logmel --workdir=/tmp/mel

Arguments: `quick`, `tiny`, `logmel` (baseline frontend), `seed=N`, `data=NAME`.
"""

from fmacomp.configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, quick=False, tiny=False, logmel=False, seed=0,
                          data='synthetic_music')
  size = common.variant(args)
  config = common.base_config(seed=args.seed)
  config.data.name = args.data
  config.label_filter = 'Unknown'  # FMA tracks without a top genre cannot train a classifier

  config.sample_rate = 44100
  config.crop_s = 131072 / 44100
  config.encoder_workdir = ''     # required unless logmel
  config.unfreeze_step = -1       # -1: the encoder stays frozen
  config.model = dict(
      sample_rate=config.get_ref('sample_rate'),
      name='classifier',
      frontend='logmel' if args.logmel else 'latent',
      n_mels=64,
      conv_channels=32,
      hidden=100,
      dropout=0.0,
  )
  config.optimizer.lr = 1e-3
  config.steps = 10_000
  config.batch_size = 32
  config.eval_every = 500
  config.checkpoint_every = 500

  if size == 'quick':
    common.shrink(config, steps=300, batch_size=16, eval_every=100)
  elif size == 'tiny':
    common.shrink(config, steps=6, batch_size=4, eval_every=3, eval_batches=1)
    config.sample_rate = 16000
    config.crop_s = 0.512
    config.model.update(conv_channels=4, hidden=8, n_mels=16)
  return config


def sweep():
  return [{'seed': seed} for seed in (0, 1, 2)]
