r"""What a file costs as its content changes: silence, mono, identical and near-identical stereo.

  python benchmarks/content_rate_bench.py [--model=NAME_OR_WORKDIR] [--kbps=6] [--track=FILE]

Encodes, through the Python API (`fmacomp.load_codec(model, kbps).encode`: the bytes the
`fmacomp` command writes), 20-s files made from --track (default a realmusic test recording;
its middle --seconds, downmixed to mono; pass a validation recording when tuning):

  silence            digital silence, mono
  music              the recording, mono
  stereo_identical   the mono music on both channels
  stereo_near        left = music, right = 0.98 x music + white noise 40 dB below the music
  stereo_wide        the recording's own two channels (when it has two)
  short_5ms          the first 5 ms of the music (decoded length must equal the input's)

and reports each file's kbps (bytes x 8 / seconds) and the stereo ones' ratio to `music`, the
issue-10 goals beside them (silence < 1 kbps, identical <= 1.15x, near-identical <= 1.3x), and
each stereo file's mel distance per channel after decoding (so a cheap file is also a faithful
one). Ends with `name=value` lines.
"""

import os

from absl import flags
import numpy as np
import soundfile as sf

import launcher
import fmacomp
from fmacomp import errors
from fmacomp import metrics

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MODEL = flags.DEFINE_string('model', None, 'Shipped name or workdir (default: the default model).')
_KBPS = flags.DEFINE_float('kbps', 6.0, 'Target bitrate (the nearest operating point).')
_TRACK = flags.DEFINE_string(
    'track', os.path.join(_REPO, '..', 'shared', 'realmusic', 'lincity-ng-data',
                          'city_blues.ogg'), 'Recording to build the files from.')
_SECONDS = flags.DEFINE_float('seconds', 20.0, 'Seconds per file.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the near-identical channel\'s noise.')
GOALS = {'silence': ('kbps', 1.0), 'stereo_identical': ('ratio', 1.15),
         'stereo_near': ('ratio', 1.3)}


def files(track, seconds, seed):
  """{name: float32 [samples, channels]} at the track's rate, and that rate."""
  info = sf.info(track)
  start = max(0, int((info.duration - seconds) / 2 * info.samplerate))
  x, rate = sf.read(track, start=start, frames=int(seconds * info.samplerate), dtype='float32',
                    always_2d=True)
  if x.shape[0] < int(seconds * rate):
    raise errors.InputError(track, f'shorter than --seconds={seconds}')
  mono = x.mean(axis=1)
  noise = np.random.default_rng(seed).standard_normal(mono.shape).astype(np.float32)
  noise *= np.sqrt(np.mean(mono**2)) / np.sqrt(np.mean(noise**2)) * 10**(-40 / 20)
  out = {'silence': np.zeros_like(mono)[:, None], 'music': mono[:, None],
         'stereo_identical': np.stack([mono, mono], 1),
         'stereo_near': np.stack([mono, np.clip(0.98 * mono + noise, -1, 1)], 1),
         'short_5ms': mono[:int(0.005 * rate), None]}
  if x.shape[1] == 2:
    out['stereo_wide'] = x
  return out, rate


def main(argv):
  del argv
  codec = fmacomp.load_codec(_MODEL.value, kbps=_KBPS.value)
  print(f'{codec!r}', flush=True)
  clips, rate = files(_TRACK.value, _SECONDS.value, _SEED.value)
  kbps, lines = {}, []
  for name, x in clips.items():
    data = codec.encode(x, rate)
    y, out_rate = codec.decode(data, always_2d=True)
    if out_rate != rate or y.shape != x.shape:
      raise errors.RunError(f'{name}: decoded {y.shape} at {out_rate} Hz, encoded {x.shape} at '
                            f'{rate} Hz')
    kbps[name] = len(data) * 8 / (x.shape[0] / rate) / 1000
    line = f'{name}_kbps={kbps[name]:.3f} {name}_bytes={len(data)}'
    if x.shape[1] == 2:
      ratio = kbps[name] / kbps['music']
      mels = [metrics.mel_distance(x[:, c], y[:, c], rate) for c in range(2)]
      line += f' {name}_ratio={ratio:.3f} {name}_mel=' + '/'.join(f'{m:.3f}' for m in mels)
    elif name == 'music':
      line += f' music_mel={metrics.mel_distance(x[:, 0], y[:, 0], rate):.3f}'
    goal = GOALS.get(name)
    if goal:
      value = kbps[name] if goal[0] == 'kbps' else kbps[name] / kbps['music']
      line += f' {name}_goal={goal[0]}<={goal[1]} {name}_met={value <= goal[1]}'
    lines.append(line)
  print('\n'.join(lines))


if __name__ == '__main__':
  launcher.run(main)
