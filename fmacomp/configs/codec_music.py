r"""The real-music codec that fmacomp ships: `codec.py`'s recipe at 22.05 kHz, sized for one CPU
thread, trained on a music folder (`../shared/realmusic` and its splits.json).

  python launch/train.py --config=fmacomp/configs/codec_music.py:kbps=6 \
      --config.data.manual_dir=../shared/realmusic --workdir=runs/music-6kbps

Choices, each from a measurement (BENCHMARKS.md, "Real-music codec"):
- 22.05 kHz. Every metric judges against the full-band original, so a codec's rate caps its
  score: band-limiting the test excerpts alone costs a mel distance of 1.26 at 16 kHz, 0.63 at
  22.05 kHz, 0.49 at 24 kHz (Opus at 12 kbps scores 2.0 in all), while compute grows with the
  rate. 22.05 kHz is also a stored rate (`music_folder/22k`): training crops need no resampling.
- ELU, 16 channels, strides 4-5-3-4 (hop 240, 91.9 latent frames/s): on one CPU thread Snake's
  sine made the decoder 4-5x slower, and a first stride of 2 (2-4-5-6) 2-3x slower, than this,
  which codes at about 20x real time; 1.8 M parameters.
- 2-s crops, batch 16: a training crop reads its whole (up to 30-s) record, so fewer, longer
  crops feed the accelerator at the same seconds of audio per step.
- Constant learning rate after warm-up: runs are cut by wall time; a resumed run may switch to
  `--config.optimizer.schedule=cosine --config.steps=N` to decay to zero by step N.

Arguments: `kbps=N` (the rate hinge's target, default 6), `lmbda=X` (rate weight above it),
`seed=N`, `quick` (the same model for a few hundred CPU steps: a check, not a codec), `tiny`
(tests: codec.py's tiny model on this config's rate and data block).
"""

from fmacomp.configs import codec
from fmacomp.configs import common

RATE = 22050
STRIDES = (4, 5, 3, 4)  # hop 240


def get_config(arg=None):
  args = common.parse_arg(arg, kbps=6.0, lmbda=-1.0, seed=0, quick=False, tiny=False)
  size = common.variant(args)
  base_arg = f'kbps={args.kbps},seed={args.seed},data=music_folder/22k'
  if args.lmbda >= 0:
    base_arg += f',lmbda={args.lmbda}'
  config = codec.get_config(base_arg + (',tiny' if size == 'tiny' else ''))

  # Audio constants: set once; the model's sample_rate and the crop follow this rate.
  config.sample_rate = RATE
  if size == 'tiny':  # codec.py's tiny model (hop 32), 128 frames at this rate
    config.crop_s = codec.latent_crop_s(config, 128)
    return config
  config.crop_s = codec.latent_crop_s(config, 184)  # 2.0 s of the strides below

  config.model.update(strides=STRIDES, channels=16, latent_channels=32, dilations=(1, 3, 9),
                      kernel_size=7, activation='elu', max_symbol=15)
  config.batch_size = 16
  config.steps = 1_000_000  # cut by wall time (see the module docstring)
  config.log_every = 100
  config.eval_every = 1000
  config.checkpoint_every = 500
  config.eval_batches = 0  # the whole validation split (~100 s)
  config.keep_checkpoints = 1
  config.optimizer.update(lr=6e-4, schedule='constant', warmup_steps=500, grad_clip_norm=1.0)
  if size == 'quick':
    common.shrink(config, steps=300, batch_size=4, eval_every=150, eval_batches=2)
    config.optimizer.update(warmup_steps=50)
  return config
