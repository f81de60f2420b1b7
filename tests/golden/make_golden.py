r"""Writes the golden .fmac files of the shipped models: run ONCE per shipped model, never again.

  python tests/golden/make_golden.py MODEL [MODEL ...]

For each shipped model it encodes a short synthetic_music clip with the release at hand and
keeps, under tests/golden/<model>/: the file (`clip.fmac`), its entropy-decoded symbols
(`symbols.npy`, int32 [channels, frames, C]) and its decoded 16-bit PCM (`decoded.flac`,
lossless).
tests/golden_test.py holds every later release to them: a shipped model is immutable and every
.fmac a release wrote must decode to the same audio. Regenerating the files of an existing model
would defeat the test, so this script refuses to overwrite them.

The music-6kbps, -9kbps and -12kbps files were written by the last landed release before the
codec family changed (commit 7a9c1dd, whose modules were still flat: `fmacomp.compress` and
`fmacomp.model_store` stood for today's `fmacomp.fmac.*`), on a 2-core x86_64 CPU machine.
The music-fullband-v1 file (stereo at 44.1 kHz, its lowest operating point, as `model_store.load`
picks without a bitrate) was written by the release that shipped it, on the same machine.
"""

import os
import sys

import numpy as np
import soundfile as sf

from fmacomp.datasets import synth
from fmacomp.datasets import synthetic_music
from fmacomp.fmac import compress
from fmacomp.fmac import model_store

HERE = os.path.dirname(os.path.abspath(__file__))
# Mono at 44.1 kHz for the first model, stereo at 32 kHz for the others: both stereo modes'
# decode paths and a resampling decoder are covered. Two seconds keep the files small.
CLIPS = {'music-6kbps': (44100, 1), 'music-9kbps': (32000, 2), 'music-12kbps': (48000, 2),
         'music-fullband-v1': (44100, 2)}
SECONDS = 2.0


def clip(rate, channels, seed=2026):
  """float32 [T, channels]: synthetic_music tracks of a seed no build uses, one per channel."""
  tracks = [synth.render(synthetic_music.compose_track(seed, i, i, SECONDS), rate)
            [:int(SECONDS * rate)] for i in range(channels)]
  x = np.stack(tracks, axis=1)
  return (0.7 * x / np.abs(x).max()).astype(np.float32)


def write(name):
  folder = os.path.join(HERE, name)
  if os.path.exists(folder):
    raise SystemExit(f'{folder} exists: golden files are written once, never regenerated')
  rate, channels = CLIPS.get(name, (44100, 2))  # a new model: full band, stereo
  os.makedirs(folder)
  source = os.path.join(folder, 'source.wav')
  sf.write(source, clip(rate, channels), rate, subtype='FLOAT')
  codec = model_store.load(name)
  fmac_path = os.path.join(folder, 'clip.fmac')
  compress.encode_file(source, fmac_path, codec)
  os.remove(source)  # the input is not part of the contract: only the file and its decoding
  np.save(os.path.join(folder, 'symbols.npy'), compress.read_symbols(fmac_path, codec))
  compress.decode_file(fmac_path, os.path.join(folder, 'decoded.flac'), codec)
  print(name, os.path.getsize(fmac_path), 'bytes')


if __name__ == '__main__':
  for model in sys.argv[1:]:
    write(model)
