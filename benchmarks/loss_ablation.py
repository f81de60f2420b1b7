r"""What each term of the codec's loss buys: the same real-music codec trained without it.

  python benchmarks/loss_ablation.py [--out=/tmp/loss_ablation] [--steps=300]
      [--manual_dir=../shared/realmusic]

Trains `codec_music.py:quick` (the shipped architecture, batch 4 x 2-s crops, target 6 kbps, one
seed) once per variant, in `--out/<variant>/` (a finished run is reused, an unfinished one
resumes):

  all       multi-scale mel + multi-resolution STFT + waveform L1 (the shipped recipe)
  no_mel    without the multi-scale mel term
  no_stft   without the multi-resolution STFT term
  no_l1     without the waveform L1 term
  mse_only  waveform MSE alone (the reference study's loss; no perceptual term)

then runs `rd_bench.py` on the variants side by side, on the validation recordings (never
test: this informs a design choice), with MP3 and Opus near the same bitrate as a yardstick:
measured kbps from real .fmac files, mel distance, LSD, SI-SDR and ViSQOL. The short runs rank
the terms; they are not converged codecs.
"""

import os
import subprocess
import sys

from absl import flags
from absl import logging

import launcher
from fmacomp.configs import codec_music
from fmacomp import errors
from fmacomp.training import train

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DIR = flags.DEFINE_string('manual_dir', os.path.join(_REPO, '..', 'shared', 'realmusic'),
                           'Music folder with a splits.json.')
_OUT = flags.DEFINE_string('out', '/tmp/loss_ablation', 'Workdirs and rd_bench output.')
_STEPS = flags.DEFINE_integer('steps', 300, 'Training steps per variant.')
_VARIANTS = flags.DEFINE_list('variants', ['all', 'no_mel', 'no_stft', 'no_l1', 'mse_only'],
                              'Variants to train and compare.')

# Loss weights per variant (codec_music's recipe is mel = stft = l1 = 1, mse = 0).
VARIANTS = {
    'all': {},
    'no_mel': {'mel': 0.0},
    'no_stft': {'stft': 0.0},
    'no_l1': {'l1': 0.0},
    'mse_only': {'mel': 0.0, 'stft': 0.0, 'l1': 0.0, 'mse': 1.0},
}
DONE = 'DONE'


def variant_config(name, steps, manual_dir):
  config = codec_music.get_config('quick')
  config.loss.update(VARIANTS[name])
  config.steps = steps
  config.data.manual_dir = manual_dir
  return config


def main(argv):
  del argv
  unknown = sorted(set(_VARIANTS.value) - set(VARIANTS))
  if unknown:
    raise errors.InputError('--variants', f'unknown {unknown}; known {sorted(VARIANTS)}')
  workdirs = []
  for name in _VARIANTS.value:
    workdir = os.path.join(_OUT.value, name)
    if not os.path.exists(os.path.join(workdir, DONE)):
      logging.info('training %s for %d steps', name, _STEPS.value)
      train.train_and_evaluate(variant_config(name, _STEPS.value, _DIR.value), workdir)
      with open(os.path.join(workdir, DONE), 'w'):
        pass
    workdirs.append(workdir)
  subprocess.run([sys.executable, os.path.join(_REPO, 'benchmarks', 'rd_bench.py'),
                  f'--models={",".join(workdirs)}', '--split=validation',
                  f'--manual_dir={_DIR.value}', f'--out={os.path.join(_OUT.value, "rd")}',
                  '--mp3_kbps=8,16', '--opus_kbps=6,8,12', '--resampling_kbps='], check=True)


if __name__ == '__main__':
  launcher.run(main)
