r"""Whole-process codec speed on one core: `encode.py` / `decode.py` on long minus short files.

  python benchmarks/process_speed_bench.py [--model=NAME_OR_WORKDIR] [--kbps=6] [--repeats=3]

What a user waits for, start-up excluded by difference: each run is a fresh
`python launch/encode.py IN.wav OUT.fmac --kbps=K [--model=M]` (then `launch/decode.py OUT.fmac
OUT.wav`) pinned to one core (`taskset`) with XLA single-threaded, on --long_s and --short_s of
music (a 16-bit 44.1 kHz WAV made from realmusic test recordings, concatenated, mono unless
--channels=2). Speed = (long_s - short_s) / (best long time - best short time), best of
--repeats each: interpreter start, imports, model load and compilation cancel out, everything
that grows with the audio (reading, resampling, the networks, entropy coding, writing) stays.
The issue-10 goal is 100x real time both ways. Ends with `name=value` lines.
"""

import os
import subprocess
import sys
import tempfile
import time

from absl import flags
import numpy as np
import soundfile as sf

import launcher
from fmacomp import errors

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MUSIC = os.path.join(_REPO, '..', 'shared', 'realmusic')
_TRACKS = ('wesnoth-1.16-music/battle-epic.ogg', 'lincity-ng-data/city_blues.ogg',
           'fretsonfire-songs-sectoid/metal_madness_mix_90s.flac')  # test split
_MODEL = flags.DEFINE_string('model', '', 'Shipped name or workdir (default: the default model).')
_KBPS = flags.DEFINE_float('kbps', 6.0, 'Target bitrate.')
_LONG_S = flags.DEFINE_float('long_s', 300.0, 'Seconds of the long file.')
_SHORT_S = flags.DEFINE_float('short_s', 30.0, 'Seconds of the short file.')
_CHANNELS = flags.DEFINE_integer('channels', 1, 'Channels of the files (1 or 2).')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Runs per file and direction (best is kept).')
_CORE = flags.DEFINE_integer('core', -1, 'CPU core to pin to (-1: the last one allowed).')
_SINGLE_THREAD = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
RATE = 44100


def music(seconds, channels):
  """float32 [seconds x 44.1 kHz, channels]: the test recordings, concatenated and looped."""
  parts = []
  for track in _TRACKS:
    x, rate = sf.read(os.path.join(_MUSIC, track), dtype='float32', always_2d=True)
    if rate != RATE:
      raise errors.InputError(track, f'{rate} Hz, expected {RATE}')
    parts.append(x[:, :2] if channels == 2 else x.mean(axis=1, keepdims=True))
  x = np.concatenate(parts)
  need = int(seconds * RATE)
  return np.tile(x, (-(-need // x.shape[0]), 1))[:need]


def _timed(args, core):
  env = dict(os.environ, XLA_FLAGS=(os.environ.get('XLA_FLAGS', '') + ' ' + _SINGLE_THREAD))
  t0 = time.perf_counter()
  done = subprocess.run(['taskset', '-c', str(core), sys.executable] + args, env=env,
                        capture_output=True, text=True, check=False)
  took = time.perf_counter() - t0
  if done.returncode:
    raise errors.RunError(f'{" ".join(args)} failed: {done.stderr.strip()[-500:]}')
  return took, done.stdout.strip().splitlines()[-1]


def main(argv):
  del argv
  core = _CORE.value if _CORE.value >= 0 else max(os.sched_getaffinity(0))
  model = [f'--model={_MODEL.value}'] if _MODEL.value else []
  with tempfile.TemporaryDirectory() as tmp:
    best, lines = {}, {}
    for name, seconds in (('short', _SHORT_S.value), ('long', _LONG_S.value)):
      wav = os.path.join(tmp, f'{name}.wav')
      sf.write(wav, music(seconds, _CHANNELS.value), RATE, subtype='PCM_16')
    for _ in range(_REPEATS.value):  # interleaved, so load drifts hit both lengths alike
      for name in ('short', 'long'):
        wav, fmac = (os.path.join(tmp, f'{name}.{e}') for e in ('wav', 'fmac'))
        encode = _timed([os.path.join(_REPO, 'launch', 'encode.py'), wav, fmac,
                         f'--kbps={_KBPS.value}'] + model, core)
        decode = _timed([os.path.join(_REPO, 'launch', 'decode.py'), fmac,
                         os.path.join(tmp, f'{name}_out.wav')] + model, core)
        lines[name] = encode[1]  # the encoder's summary: duration, bytes, kbps
        for direction, (took, _) in (('encode', encode), ('decode', decode)):
          best[direction, name] = min(best.get((direction, name), float('inf')), took)
    span = _LONG_S.value - _SHORT_S.value
    print(f'core={core} channels={_CHANNELS.value} kbps_requested={_KBPS.value} '
          f'long_file: {lines["long"]}')
    for direction in ('encode', 'decode'):
      short, long = best[(direction, 'short')], best[(direction, 'long')]
      if long <= short:  # start-up noise larger than the work: no speed can be read
        speed_text, met = 'n/a (the long file ran no slower: lengthen --long_s)', False
      else:
        speed = span / (long - short)
        speed_text, met = f'{speed:.1f}', speed >= 100
      print(f'{direction}_short_s={short:.2f} {direction}_long_s={long:.2f} '
            f'{direction}_x_real_time={speed_text} {direction}_goal_met={met}')


if __name__ == '__main__':
  launcher.run(main)
