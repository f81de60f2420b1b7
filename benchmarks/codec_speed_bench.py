r"""Codec speed on one CPU thread: fmacomp's shipped models vs MP3 and Opus, file to file.

  python benchmarks/codec_speed_bench.py [--track=FILE] [--seconds=60] [--repeats=3]

Every codec does the same work, file to file, in this process pinned to one core (XLA
single-threaded, set before jax is imported): encode = read a mono float WAV of --seconds of
real music (44.1 kHz) and write the compressed file; decode = read it and write a 16-bit WAV at
the original rate. fmacomp runs `compress.encode_file` / `decode_file` (resampling to and from
22.05 kHz, the network, entropy coding); MP3 (LAME, CBR 8 kbps at the sample rate
`baselines.mp3_setting` picks for it, the one that measured best on validation) and Opus (VBR,
12 kbps target, 48 kHz input) run through soundfile with the resampling their rates need and
the same settings as `fmacomp.evaluation.baselines` (a `<codec>_setting=` line says which).

Start-up is reported apart: the model's load (weights, CDF tables) and the compilation of the
codec (the first coding of a 20-s clip minus the second). Steady state is the best of
--repeats runs on the long file: x real time = seconds of audio / wall seconds. (A longer,
memory-focused run is benchmarks/codec_bench.py.) For fmacomp it also reports the share of a
warm encode and decode spent in the network itself (the rest: file I/O, resampling, chunking,
entropy coding). Ends with `name=value` lines.
"""

import os

# One thread for XLA, before anything imports jax (benchmark scripts only; the library never
# touches the environment).
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_multi_thread_eigen=false'
                           ' intra_op_parallelism_threads=1').strip()

import tempfile  # pylint: disable=g-import-not-at-top,wrong-import-position
import time  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
import soundfile as sf  # pylint: disable=g-import-not-at-top,wrong-import-position

from fmacomp import audio  # pylint: disable=g-import-not-at-top,wrong-import-position
from fmacomp.evaluation import baselines  # pylint: disable=g-import-not-at-top
import launcher  # pylint: disable=g-import-not-at-top,wrong-import-position
from fmacomp import errors  # pylint: disable=g-import-not-at-top,wrong-import-position
from fmacomp.fmac import compress  # pylint: disable=g-import-not-at-top,wrong-import-position
from fmacomp.fmac import model_store  # pylint: disable=g-import-not-at-top,wrong-import-position

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TRACK = flags.DEFINE_string(
    'track', os.path.join(_REPO, '..', 'shared', 'realmusic', 'lincity-ng-data',
                          'city_blues.ogg'), 'Music to code (its middle --seconds).')
_SECONDS = flags.DEFINE_float('seconds', 60.0, 'Seconds of audio per steady-state run.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Steady-state runs per codec (best is kept).')
_MODELS = flags.DEFINE_list('models', [], 'Shipped names or workdirs (default: every shipped).')
_CORE = flags.DEFINE_integer('core', -1, 'CPU core to pin to (-1: the last one allowed).')
RATE = 44100
BASELINES = (('mp3', 8.0), ('opus', 12.0))


def _best(fn, repeats):
  """Best wall time of `repeats` calls of fn()."""
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def _baseline_coder(name, kbps):
  """(encode(wav, out), decode(coded, wav)) for MP3 or Opus, file to file, like baselines."""
  if name == 'mp3':
    rate, bitrate = baselines.mp3_setting(kbps, RATE)
    kwargs = dict(format='MP3', subtype='MPEG_LAYER_III', bitrate_mode='CONSTANT',
                  compression_level=baselines.lame_compression_level(bitrate, rate))
    setting = f'CBR {bitrate} kbps at {rate} Hz'
  else:
    rate = baselines.OPUS_RATE
    kwargs = dict(format='OGG', subtype='OPUS',
                  compression_level=baselines.opus_compression_level(kbps))
    setting = f'VBR target {kbps:g} kbps at {rate} Hz'

  def encode(wav, out):
    x, _ = audio.read_audio(wav)
    sf.write(out, audio.resample(x, RATE, rate), rate, **kwargs)

  def decode(coded, wav):
    y, got = audio.read_audio(coded)
    sf.write(wav, audio.resample(y, got, RATE), RATE, subtype='PCM_16')
  return encode, decode, setting


def _measure(encode, decode, long_wav, tmp, ext, seconds):
  coded, out = os.path.join(tmp, 'x' + ext), os.path.join(tmp, 'y.wav')
  enc = _best(lambda: encode(long_wav, coded), _REPEATS.value)
  dec = _best(lambda: decode(coded, out), _REPEATS.value)
  kbps = os.path.getsize(coded) * 8 / seconds / 1000
  return dict(encode_x=seconds / enc, decode_x=seconds / dec, kbps=kbps)


def _network_share(codec, long_wav, tmp):
  """Fractions of one warm encode and one warm decode of the long file spent in the network
  (`Codec.to_symbols` / `from_symbols`, which return host arrays, so the timing is complete);
  the rest is file I/O, resampling, chunking and entropy coding."""
  spent = {'to_symbols': 0.0, 'from_symbols': 0.0}

  def timed(name):
    inner = getattr(codec, name)

    def wrapper(*args):
      t0 = time.perf_counter()
      out = inner(*args)
      spent[name] += time.perf_counter() - t0
      return out
    return wrapper

  coded, out = os.path.join(tmp, 'n.fmac'), os.path.join(tmp, 'n.wav')
  codec.to_symbols, codec.from_symbols = timed('to_symbols'), timed('from_symbols')
  try:
    t0 = time.perf_counter()
    compress.encode_file(long_wav, coded, codec)
    t1 = time.perf_counter()
    compress.decode_file(coded, out, model=codec)
    t2 = time.perf_counter()
  finally:  # the instance attributes shadowed the methods
    del codec.to_symbols, codec.from_symbols
  return dict(network_share_encode=spent['to_symbols'] / (t1 - t0),
              network_share_decode=spent['from_symbols'] / (t2 - t1))


def _fmacomp(spec, long_wav, short_wav, tmp, seconds):
  t0 = time.perf_counter()
  codec = model_store.load(spec)
  load_s = time.perf_counter() - t0
  coded, out = os.path.join(tmp, 's.fmac'), os.path.join(tmp, 's.wav')
  first = [0.0, 0.0]
  for i in range(2):  # first pass compiles the window shapes of a 20-s clip, second is warm
    t0 = time.perf_counter()
    compress.encode_file(short_wav, coded, codec)
    t1 = time.perf_counter()
    compress.decode_file(coded, out, model=codec)
    t2 = time.perf_counter()
    first = [t1 - t0, t2 - t1] if i == 0 else [first[0] - (t1 - t0), first[1] - (t2 - t1)]
  result = _measure(lambda w, c: compress.encode_file(w, c, codec),
                    lambda c, w: compress.decode_file(c, w, model=codec),
                    long_wav, tmp, '.fmac', seconds)
  result.update(load_s=load_s, compile_encode_s=first[0], compile_decode_s=first[1],
                **_network_share(codec, long_wav, tmp))
  return codec.point.model, result


def main(argv):
  del argv
  allowed = sorted(os.sched_getaffinity(0))
  core = _CORE.value if _CORE.value >= 0 else allowed[-1]
  os.sched_setaffinity(0, {core})
  info = audio.audio_info(_TRACK.value)
  seconds = min(_SECONDS.value, info.duration_s)
  start = max(0.0, (info.duration_s - seconds) / 2)
  x, _ = audio.read_audio(_TRACK.value, sample_rate=RATE, start_s=start, duration_s=seconds)
  specs = _MODELS.value or model_store.shipped_models()
  if not specs:
    raise errors.InputError('--models', 'no shipped model and none given')
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    long_wav, short_wav = os.path.join(tmp, 'long.wav'), os.path.join(tmp, 'short.wav')
    sf.write(long_wav, x, RATE, subtype='FLOAT')
    sf.write(short_wav, x[:20 * RATE], RATE, subtype='FLOAT')
    for name, kbps in BASELINES:
      encode, decode, setting = _baseline_coder(name, kbps)
      ext = '.mp3' if name == 'mp3' else '.opus'
      results[f'{name}_{kbps:g}kbps'] = _measure(encode, decode, long_wav, tmp, ext, seconds)
      logging.info('%s (%s) done', name, setting)
      print(f'{name}_{kbps:g}kbps_setting={setting}')
    for spec in specs:
      name, result = _fmacomp(spec, long_wav, short_wav, tmp, seconds)
      results[name] = result
      logging.info('%s done', name)
  print('| codec | kbps | encode x real time | decode x real time | start-up | network share '
        '(enc / dec) |')
  print('|---|---:|---:|---:|---|---|')
  for name, r in results.items():
    startup = (f"load {r['load_s']:.1f} s, compile enc {r['compile_encode_s']:.1f} s / dec "
               f"{r['compile_decode_s']:.1f} s" if 'load_s' in r else '-')
    share = (f"{r['network_share_encode']:.0%} / {r['network_share_decode']:.0%}"
             if 'network_share_encode' in r else '-')
    print(f"| {name} | {r['kbps']:.2f} | {r['encode_x']:.1f} | {r['decode_x']:.1f} | {startup} "
          f"| {share} |")
  print(f'core={core}')
  print(f'seconds={seconds:.1f}')
  for name, r in results.items():
    for key, value in r.items():
      print(f'{name}_{key}={value:.3f}')


if __name__ == '__main__':
  launcher.run(main)
