r"""The full-band frame-rate codec (`fmacomp.models.stft_codec`): one model, several bitrates.

  python launch/prepare.py --dataset=music_folder --manual_dir=../shared/realmusic
  python launch/train.py --config=fmacomp/configs/stft_codec.py \
      --config.data.manual_dir=../shared/realmusic --workdir=runs/stft_codec
  python launch/encode.py song.flac song.fmac --model=runs/stft_codec --kbps=6

Loss per example, at its operating point p (drawn uniformly per example each step):

  distortion = loss.mel x multi-scale log-mel L1 (DAC) + loss.stft x multi-resolution STFT
             + loss.complex x |c(Y) - c(X)|^2, c(X) = |X|^0.3 e^(i arg X) at the model's STFT
  rate term  = loss.lmbdas[p] x kbps (the hyperprior's estimate of y and z)

`lmbdas` are in distortion units per kbps, highest first (point 0 is the lowest bitrate); each
point has its own per-channel gains on the latent, so one network learns every point. The
defaults gave 2.7, 3.6, 4.7, 6.0 and 8.1 kbps (estimated on validation) after 7,000 steps of
the shipped run (music-fullband-v1); validation reports `kbps_estimated_p<i>` and
`mel_distance_p<i>` per point, and the model store (`--kbps`) picks among them.

Choices: n_fft 2048 / hop 512 at 44.1 kHz (86.1 frames/s, 21.5 Hz bins, 4x overlap as Vocos);
width 256 with 4 encoder and 5 decoder blocks: 0.20 / 0.22 GMAC per second of audio
(`StftCodec.macs_per_frame`); 32 latent channels + 8 side channels per frame. Crops are
augmented (`augment`: a little digital silence); validation is not.

Variants: `quick` (the full model on the real-music build, batch 4, a few hundred steps: a
check that it learns, not a codec), `tiny` (tests: 16 kHz, n_fft 256, hop 64, width 16, one
block each side, 2 points, synthetic_music/tiny).

`rate=N` runs a variant at N Hz (the main job passes its dataset's storage rate, so a 16 or
22.05 kHz build trains a codec at that rate, not an upsampled 44.1 kHz one): n_fft and the hop
are scaled by N / the variant's rate, to the nearest power of two, so frames keep about their
duration (44.1 kHz n_fft 2048 / hop 512 -> 22.05 kHz 1024 / 256, 16 kHz 1024 / 256) and the crop
its number of frames. At the variant's own rate (and by default) nothing changes.

Arguments: `quick`, `tiny`, `seed=N`, `data=NAME`, `rate=N`.
"""

import functools
import math

from fmacomp.configs import common

# Rate weights, point 0 (lowest rate) first, chosen on validation: (0.3, 0.12, 0.05, 0.025,
# 0.015), the first guess, had drifted to 2.3-8.6 kbps (estimated) by step 2,000 of the shipped
# run, which then went on with these and settled at about 3-10 kbps (MODEL_CARD.md of
# music-fullband-v1).
LMBDAS = (0.12, 0.05, 0.02, 0.009, 0.004)


def _crop_s(frames, hop, rate):
  return frames * hop / rate


def latent_crop_s(config, frames):
  """A crop of `frames` whole frames, following `model.hop_samples` and the rate."""
  return common.derived(functools.partial(_crop_s, frames),
                        config.model.get_ref('hop_samples'), config.get_ref('sample_rate'))


def at_rate(config, rate):
  """Moves `config` to `rate` Hz, frames of about the same duration (module docstring)."""
  if rate == config.sample_rate:
    return config
  hop, n_fft = config.model.hop_samples, config.model.n_fft
  new_hop = 2 ** round(math.log2(hop * rate / config.sample_rate))
  config.model.update(hop_samples=new_hop, n_fft=n_fft // hop * new_hop)
  config.sample_rate = rate
  return config


def get_config(arg=None):
  args = common.parse_arg(arg, quick=False, tiny=False, seed=0, data='', rate=0)
  size = common.variant(args)
  config = common.base_config(seed=args.seed)
  config.data.name = args.data or {'tiny': 'synthetic_music/tiny', 'quick': 'music_folder',
                                    'full': 'music_folder'}[size]
  config.sample_rate = 44100

  config.model = dict(
      name='stft_codec',
      sample_rate=config.get_ref('sample_rate'),
      n_fft=2048,
      hop_samples=512,
      width=256,
      encoder_blocks=4,
      decoder_blocks=5,
      mlp_ratio=3,
      kernel_size=7,
      latent_channels=32,
      side_channels=8,
      hyper_hidden=64,
      max_symbol=63,
      side_max_symbol=15,
      num_scales=48,
      num_points=len(LMBDAS),
      gain_range=(0.25, 2.0),
  )
  config.crop_s = latent_crop_s(config, 172)  # 2.0 s: fewer, longer crops read less per second
  config.loss = dict(mel=1.0, stft=1.0, complex=0.1, lmbdas=LMBDAS)
  # Training crops (`tasks.augment`): a little digital silence, which realmusic seldom has, so
  # that z's contexts learn what silence costs. Mixing, gains and polarity flips are off: on
  # validation they cost mel distance at equal steps (same seed, batch 8, the first lambdas;
  # point 2 with / without them: 2.49 / 2.33 at step 500, 2.18 / 2.04 at 1,000, 2.16 / 2.07 at
  # 1,500, at a higher bitrate too; BENCHMARKS.md), the regime of a model far from converged.
  config.augment = dict(mix=0.0, gain_db=(0.0, 0.0), polarity=False, silence=0.03)

  config.steps = 1_000_000  # cut by wall time; resume to go on
  config.batch_size = 16
  config.log_every = 100
  config.eval_every = 1000
  config.checkpoint_every = 500
  config.eval_batches = 0  # the whole validation split
  config.keep_checkpoints = 1
  config.optimizer.update(lr=6e-4, schedule='constant', warmup_steps=500, grad_clip_norm=1.0)

  if size == 'quick':
    common.shrink(config, steps=300, batch_size=4, eval_every=150, log_every=10,
                  eval_batches=4)
    config.optimizer.update(warmup_steps=30)
  elif size == 'tiny':
    common.shrink(config, steps=40, batch_size=4, eval_every=40, log_every=20, eval_batches=1)
    config.sample_rate = 16000
    config.model.update(n_fft=256, hop_samples=64, width=16, encoder_blocks=1,
                        decoder_blocks=1, mlp_ratio=2, latent_channels=4, side_channels=2,
                        hyper_hidden=8, max_symbol=31, side_max_symbol=7, num_scales=16,
                        num_points=2)
    config.crop_s = latent_crop_s(config, 64)  # 0.256 s
    config.loss.update(stft=0.0, lmbdas=(0.3, 0.05))
    config.augment.update(mix=0.0, gain_db=(0.0, 0.0), polarity=True, silence=0.0)
    config.optimizer.update(lr=3e-3, warmup_steps=5)
  if args.rate:
    at_rate(config, args.rate)
  return config
