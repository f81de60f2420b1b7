"""Codec benchmark: peak memory of encode/decode on an hour of music, and their speed.

  python benchmarks/codec_bench.py --model=WORKDIR [--hours=1] [--track=FILE] [--chunk_s=20]

1. Loops --track (default: the longest FLAC under ../shared/realmusic, at its own rate and
   channels) into a temporary FLAC of --hours, written block by block, and a 1-minute one.
2. Each measurement runs in a fresh process pinned to one core with XLA single-threaded:
   encode the file, then decode it to 16-bit WAV. Peak memory is the process's VmHWM (its own
   address space; getrusage's ru_maxrss would include the parent's, inherited across exec).
   The process first calls the codec's networks twice on the window shapes a long file uses
   (`compress.window_shapes`): the first call's extra time is compilation. Coding the file is
   then steady state: x real time = seconds of audio / wall seconds.

Ends with `name=value` lines (stdout); logs go to stderr.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import flags
from absl import logging
import numpy as np
import soundfile as sf

from fmacomp import audio
import launcher
from fmacomp import errors

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MODEL = flags.DEFINE_string('model', None, 'Codec workdir or shipped model name.')
_HOURS = flags.DEFINE_float('hours', 1.0, 'Length of the long file.')
_TRACK = flags.DEFINE_string('track', None, 'Music to loop (default: the longest realmusic FLAC).')
_CHUNK_S = flags.DEFINE_float('chunk_s', 20.0, 'Seconds per chunk.')
_WORKER = flags.DEFINE_string('worker', None, 'Internal: run one measurement (a JSON spec).')
_TIMEOUT_S = 4 * 3600
_SINGLE_THREAD = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'


def _peak_mib():
  with open('/proc/self/status') as f:
    return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) / 1024


def default_track():
  folder = os.path.join(_REPO, '..', 'shared', 'realmusic')
  paths = [os.path.join(d, f) for d, _, names in os.walk(folder) for f in names
           if f.endswith('.flac')]
  if not paths:
    raise errors.InputError(folder, 'no FLAC to loop (pass --track)')
  return max(paths, key=lambda p: audio.audio_info(p).duration_s)


def loop_to_flac(track, path, seconds):
  """Writes `seconds` of `track` repeated, one pass of the track at a time."""
  x, rate = audio.read_audio(track, mono=False)
  with sf.SoundFile(path, 'w', samplerate=rate, channels=x.shape[1], format='FLAC') as f:
    left = int(seconds * rate)
    while left > 0:
      f.write(x[:left])
      left -= len(x)


def _compile_s(fn, shape, dtype):
  """Seconds of the first call beyond the second (its compilation) on zeros of `shape`."""
  x = np.zeros(shape, dtype)
  t0 = time.perf_counter()
  fn(x)
  t1 = time.perf_counter()
  fn(x)
  return (t1 - t0) - (time.perf_counter() - t1)


def worker(spec):
  """One measurement in this (fresh, single-core) process; prints a JSON line."""
  from fmacomp.fmac import compress  # pylint: disable=g-import-not-at-top
  from fmacomp.fmac import model_store  # pylint: disable=g-import-not-at-top
  os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
  codec = model_store.load(spec['model'])
  channels = audio.audio_info(spec['long']).channels
  encoder_shape, decoder_shape = compress.window_shapes(codec, channels, spec['chunk_s'])
  compile_encode = _compile_s(codec.to_symbols, encoder_shape, np.float32)
  compile_decode = _compile_s(codec.from_symbols, decoder_shape, np.int32)
  path, fmac = spec['long'], os.path.join(spec['tmp'], 'long.fmac')
  t0 = time.perf_counter()
  encoded = compress.encode_file(path, fmac, codec, chunk_s=spec['chunk_s'])
  t1 = time.perf_counter()
  compress.decode_file(fmac, os.path.join(spec['tmp'], 'out.wav'), codec)
  t2 = time.perf_counter()
  print(json.dumps({
      'compile_encode_s': round(compile_encode, 2), 'compile_decode_s': round(compile_decode, 2),
      'encode_x_realtime': round(encoded.duration_s / (t1 - t0), 2),
      'decode_x_realtime': round(encoded.duration_s / (t2 - t1), 2),
      'kbps': round(encoded.kbps, 3), 'duration_s': round(encoded.duration_s, 1),
      'peak_rss_mib': round(_peak_mib(), 1)}))


def measure(spec):
  env = dict(os.environ, XLA_FLAGS=_SINGLE_THREAD, JAX_PLATFORMS='cpu', OMP_NUM_THREADS='1')
  run = subprocess.run([sys.executable, os.path.abspath(__file__),
                        f'--worker={json.dumps(spec)}'], capture_output=True, text=True,
                       env=env, timeout=_TIMEOUT_S)
  if run.returncode:
    raise errors.RunError('codec_bench worker', run.stderr[-2000:])
  return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv):
  if _WORKER.value:
    return worker(json.loads(_WORKER.value))
  if len(argv) > 1 or not _MODEL.value:
    raise errors.InputError('codec_bench.py', 'usage: --model=WORKDIR [--hours=H] [--track=F]')
  track = _TRACK.value or default_track()
  results = {}
  with tempfile.TemporaryDirectory(prefix='codec_bench_') as tmp:
    files = {'minute': 60.0, 'long': 3600.0 * _HOURS.value}
    for name, seconds in files.items():
      t0 = time.perf_counter()
      loop_to_flac(track, os.path.join(tmp, f'{name}.flac'), seconds)
      logging.info('wrote %.0f s of %s in %.0f s', seconds, track, time.perf_counter() - t0)
    spec = dict(model=_MODEL.value, chunk_s=_CHUNK_S.value, tmp=tmp)
    short = measure(dict(spec, long=os.path.join(tmp, 'minute.flac')))
    long = measure(dict(spec, long=os.path.join(tmp, 'long.flac')))
  info = audio.audio_info(track)
  results.update(track=os.path.basename(track), track_rate=info.sample_rate,
                 track_channels=info.channels, chunk_s=_CHUNK_S.value)
  results.update({f'{k}': v for k, v in long.items()})
  results['peak_rss_mib_1min'] = short['peak_rss_mib']
  results['peak_rss_growth_mib'] = round(long['peak_rss_mib'] - short['peak_rss_mib'], 1)
  for name, value in results.items():
    print(f'{name}={value}')


if __name__ == '__main__':
  launcher.run(main)
