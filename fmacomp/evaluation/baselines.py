"""MP3, Opus and resampling baselines at a target bitrate, with the bitrate they really use.

MP3 and Opus are real files, encoded and decoded by soundfile's bundled libsndfile (LAME,
mpg123, libopus) in memory; their bitrate is the encoded size x 8 / seconds of audio, never the
target. The resampling baseline is the reference study's: keep `kbps * 1000 / 16` samples per
second and charge 16 bits for each (DESIGN.md "Metrics"); it is a curve, not a file.

Each codec works at its own rate and the decoded audio comes back at the input's rate and
length, delay-free, so that the metrics compare it sample for sample with the input.

Each baseline runs at its best, as a careful user would run it:

- MP3: each bitrate at the sample rate with the lowest mel distance on the realmusic
  validation excerpts (`MP3_MEL_VALIDATION`, measured by benchmarks/mp3_rates.py; the
  highest rate that allows a bitrate, which this module used before, is MP3's worst at low
  bitrates: 8 kbps at 24 kHz scores 6.88 where 8 kHz scores 5.55).
- Opus: libsndfile (ogg_opus.c) creates the encoder with OPUS_APPLICATION_AUDIO, sets
  complexity 10 (libopus's highest) and the bitrate, and leaves the rest at libopus's defaults:
  unconstrained VBR, 20-ms frames, automatic signal type and automatic bandwidth (libopus picks
  narrow- to full-band and SILK, hybrid or CELT mode from the bitrate). soundfile cannot change
  complexity or bandwidth; the one choice left, the input rate (8-48 kHz, which caps the band),
  measured best at 48 kHz from 12 kbps up and within 0.02 of the best at 6 and 8 kbps, where
  libopus codes narrowband SILK from any input (benchmarks/mp3_rates.py, on validation), so
  libopus chooses the band itself.

`BaselineEvaluator` scores each codec over a bitrate ladder (`LADDERS`) on the evaluation's test
clips, one compression row per setting (`fmacomp.evaluation.rows`).
"""

import dataclasses
import io

import numpy as np
import soundfile as sf

from fmacomp import audio
from fmacomp import errors
from fmacomp.evaluation import common
from fmacomp.evaluation import rows as rows_lib

# Layer III bitrates (kbps) by MPEG version; MPEG-2.5 stops at 64 in libsndfile's mapping.
_MPEG1 = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2 = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MPEG25 = (8, 16, 24, 32, 40, 48, 56, 64)
MP3_RATES = (48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
# LAME's encoder delay (576) plus mpg123's decoder delay (529), in samples at the MP3's rate.
# The decoder removes it itself only when LAME could write its info tag, which does not fit
# in the small frames of low bitrates.
_MP3_DELAY = 1105
OPUS_RATE = 48000
OPUS_INPUT_RATES = (8000, 12000, 16000, 24000, 48000)
OPUS_KBPS = (6, 256)  # libsndfile's usable range for one channel
# Mel distance (DESIGN.md) of CBR MP3 at each bitrate (kbps) and each rate (Hz) LAME allows for
# it up to 44.1 kHz, on the realmusic validation split (6 recordings x 2 evenly spaced 10-s
# excerpts, the output scored as 16-bit PCM): `mp3_setting` picks the lowest (bold in
# BENCHMARKS.md, "MP3 at its best sample rate"). Measured by
#   python benchmarks/mp3_rates.py --visqol_max_kbps=0
# Best: 8 kHz for 8 kbps, 12 kHz for 16, 24 kHz for 24 and 48, 22.05 kHz for 32, and 44.1 kHz
# from 64 kbps up. Rates above 44.1 kHz are never used on 44.1-kHz audio (they add nothing).
MP3_MEL_VALIDATION = {
    8: {24000: 6.877, 22050: 6.591, 16000: 6.049, 12000: 5.793, 11025: 5.787, 8000: 5.553},
    16: {24000: 3.852, 22050: 3.78, 16000: 3.601, 12000: 3.511, 11025: 3.668, 8000: 4.411},
    24: {24000: 3.035, 22050: 3.064, 16000: 3.043, 12000: 3.175, 11025: 3.391, 8000: 4.264},
    32: {44100: 2.372, 32000: 2.213, 24000: 2.087, 22050: 2.063, 16000: 2.289, 12000: 3.047,
         11025: 3.288, 8000: 4.201},
    48: {44100: 1.317, 32000: 1.244, 24000: 1.179, 22050: 1.419, 16000: 2.127, 12000: 2.949,
         11025: 3.207, 8000: 4.16},
    64: {44100: 0.63, 32000: 0.648, 24000: 1.048, 22050: 1.315, 16000: 2.064, 12000: 2.919,
         11025: 3.184, 8000: 4.156},
    96: {44100: 0.321, 32000: 0.489, 24000: 0.944, 22050: 1.233, 16000: 2.028},
    128: {44100: 0.231, 32000: 0.429, 24000: 0.911, 22050: 1.212, 16000: 2.026},
    160: {44100: 0.191, 32000: 0.403, 24000: 0.903, 22050: 1.209, 16000: 2.026},
    192: {44100: 0.122, 32000: 0.341},
    256: {44100: 0.039, 32000: 0.27},
    320: {44100: 0.03, 32000: 0.27},
}
# Bitrate ladders (target kbps) of the baselines; points a codec cannot reach are dropped.
LADDERS = {
    'smoke': {'mp3': (8, 64), 'opus': (12, 64), 'resampling': (64,)},
    'quick': {'mp3': (8, 16, 32, 64, 128, 320), 'opus': (6, 12, 24, 48, 96, 256),
              'resampling': (16, 32, 64, 128, 256)},
    'full': {'mp3': (8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320),
             'opus': (6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
             'resampling': (8, 16, 32, 64, 128, 256, 320)},
}


@dataclasses.dataclass(frozen=True)
class BaselineResult:
  """One baseline encoding of one signal.

  Attributes:
    decoded: float32 [T], the decoded audio at `sample_rate`, as long as the input.
    sample_rate: the input's rate.
    n_bytes: encoded size (MP3, Opus: the file; resampling: 2 bytes per kept sample).
    duration_s: seconds of input audio.
    kbps: n_bytes * 8 / duration_s / 1000.
    measured: whether `kbps` is a real file's (MP3, Opus) rather than the resampling
      baseline's nominal count of 16 bits per kept sample.
    codec: 'mp3', 'opus' or 'resampling'.
    setting: what the codec was asked for, e.g. 'CBR 32 kbps at 44100 Hz'.
  """
  decoded: np.ndarray
  sample_rate: int
  n_bytes: int
  duration_s: float
  kbps: float
  measured: bool
  codec: str
  setting: str


def _result(x, sample_rate, decoded, n_bytes, codec, setting):
  duration_s = x.shape[0] / sample_rate
  n = x.shape[0]
  decoded = np.pad(decoded[:n], (0, max(0, n - decoded.shape[0])))  # [T], as long as x
  return BaselineResult(decoded.astype(np.float32), sample_rate, int(n_bytes), duration_s,
                        n_bytes * 8 / duration_s / 1000, codec != 'resampling', codec, setting)


def _mono(x):
  x = np.asarray(x, np.float32)
  if x.ndim != 1 or x.shape[0] == 0:
    raise ValueError(f'baselines take a non-empty 1-D signal, got shape {x.shape}')
  return x


def _mp3_bitrates(rate):
  return _MPEG1 if rate >= 32000 else _MPEG2 if rate >= 16000 else _MPEG25


def mp3_candidates(bitrate, sample_rate):
  """The MP3 rates that allow CBR `bitrate`, at most `sample_rate` (higher ones add nothing)."""
  return tuple(r for r in MP3_RATES if r <= sample_rate and bitrate in _mp3_bitrates(r))


def mp3_setting(kbps, sample_rate):
  """The MP3 rate and CBR bitrate for a target: the rate that measured best on validation.

  The bitrate is the valid MP3 bitrate nearest the target on a log scale (among the rates up to
  the input's). Its rate is the one with the lowest mel distance in `MP3_MEL_VALIDATION`
  (a low bitrate at a high rate is MP3 at its worst: 8 kbps at 24 kHz spends its bits on a
  band it cannot code); a bitrate or rate the table lacks falls back to the highest rate that
  allows the bitrate.

  Returns:
    (rate, bitrate_kbps).

  Raises:
    errors.InputError: kbps below 8, the lowest MP3 bitrate.
  """
  if kbps < 8:
    raise errors.InputError(f'kbps={kbps}', 'below 8 kbps, the lowest MP3 bitrate')
  rates = [r for r in MP3_RATES if r <= sample_rate] or [MP3_RATES[-1]]
  valid = np.asarray(sorted({b for r in rates for b in _mp3_bitrates(r)}))
  bitrate = int(valid[np.argmin(np.abs(np.log(valid / kbps)))])
  candidates = [r for r in rates if bitrate in _mp3_bitrates(r)]  # highest rate first
  measured = MP3_MEL_VALIDATION.get(bitrate, {})
  return min(candidates, key=lambda r: measured.get(r, np.inf)), bitrate


def lame_compression_level(bitrate, rate):
  """The compression_level that makes libsndfile ask LAME for `bitrate` (CBR).

  libsndfile maps level c in [0, 1] to int(top - c * (top - bottom)) kbps with (top, bottom)
  (320, 32) for MPEG-1, (160, 8) for MPEG-2 and (64, 8) for MPEG-2.5 (mpeg_l3_encode.c); LAME
  then uses the nearest valid bitrate. The half kbps keeps the truncation on `bitrate`.
  """
  top, bottom = (320, 32) if rate >= 32000 else (160, 8) if rate >= 16000 else (64, 8)
  return float(np.clip((top - bitrate - 0.5) / (top - bottom), 0.0, 1.0))


def _decode(data):
  """Decodes encoded bytes with libsndfile: (float32 [T], rate)."""
  with sf.SoundFile(io.BytesIO(data)) as f:
    return f.read(dtype='float32', always_2d=True)[:, 0], f.samplerate


def mp3(x, sample_rate, kbps, rate=None):
  """Constant-bitrate MP3 (LAME through libsndfile) at the rate `mp3_setting` picks.

  Args:
    x: float32 [T] mono in [-1, 1].
    sample_rate: rate of `x`.
    kbps: target bitrate; the nearest valid MP3 bitrate is used.
    rate: the MP3's sample rate instead of `mp3_setting`'s (for the measurement that made
      its table, benchmarks/mp3_rates.py); it must allow the bitrate.

  Returns:
    BaselineResult with the decoded audio at `sample_rate` and the measured bitrate.
  """
  x = _mono(x)
  best, bitrate = mp3_setting(kbps, sample_rate)
  rate = rate or best
  if bitrate not in _mp3_bitrates(rate):
    raise errors.InputError(f'rate={rate}', f'MP3 at {rate} Hz has no {bitrate} kbps')
  y = audio.resample(x, sample_rate, rate)  # [T'] at the MP3's rate
  buf = io.BytesIO()
  with sf.SoundFile(buf, 'w', rate, 1, format='MP3', subtype='MPEG_LAYER_III',
                    compression_level=lame_compression_level(bitrate, rate),
                    bitrate_mode='CONSTANT') as f:
    f.write(y)
  data = buf.getvalue()
  decoded, _ = _decode(data)
  if decoded.shape[0] != y.shape[0]:  # no info tag: the delay and padding are still there
    decoded = decoded[_MP3_DELAY:]
  decoded = audio.resample(decoded, rate, sample_rate)
  return _result(x, sample_rate, decoded, len(data), 'mp3',
                 f'CBR {bitrate} kbps at {rate} Hz')


def opus_compression_level(kbps):
  """The compression_level that makes libsndfile ask libopus for `kbps` (module docstring)."""
  return float(np.clip(1.0 - (kbps * 1000 - 6000 + 0.5) / 250000, 0.0, 1.0))


def opus(x, sample_rate, kbps, rate=OPUS_RATE):
  """Variable-bitrate Opus in Ogg (libopus through libsndfile), fed at 48 kHz.

  libsndfile sets the encoder's target to int((1 - c) * 250000 + 6000) bit/s per channel for
  compression_level c (ogg_opus.c); libopus then varies the rate around it, so the measured
  bitrate differs from the target (by about +5..10 % on music). The module docstring says what
  else libopus runs with, and why 48 kHz input is its best.

  Args:
    x: float32 [T] mono in [-1, 1].
    sample_rate: rate of `x` (resampled to `rate` for the encoder).
    kbps: target bitrate, 6 to 256.
    rate: the encoder's input rate, one of `OPUS_INPUT_RATES` (only benchmarks/mp3_rates.py,
      which shows 48 kHz is best, asks for another).

  Returns:
    BaselineResult with the decoded audio at `sample_rate` and the measured bitrate.

  Raises:
    errors.InputError: kbps outside 6..256, or a rate libopus does not take.
  """
  x = _mono(x)
  if not OPUS_KBPS[0] <= kbps <= OPUS_KBPS[1]:
    raise errors.InputError(f'kbps={kbps}', f'Opus targets {OPUS_KBPS[0]} to {OPUS_KBPS[1]} kbps')
  if rate not in OPUS_INPUT_RATES:
    raise errors.InputError(f'rate={rate}', f'Opus takes {OPUS_INPUT_RATES} Hz')
  buf = io.BytesIO()
  with sf.SoundFile(buf, 'w', rate, 1, format='OGG', subtype='OPUS',
                    compression_level=opus_compression_level(kbps)) as f:
    f.write(audio.resample(x, sample_rate, rate))
  data = buf.getvalue()
  decoded, got = _decode(data)  # libsndfile honours the pre-skip: no delay to remove
  decoded = audio.resample(decoded, got, sample_rate)
  return _result(x, sample_rate, decoded, len(data), 'opus',
                 f'VBR target {kbps:g} kbps at {rate} Hz')


def resampling(x, sample_rate, kbps):
  """The reference's resampling baseline: kbps * 1000 / 16 samples per second, 16 bits each.

  Downsamples to that rate (soxr), upsamples back, and charges 2 bytes per kept sample (a
  nominal count, not a file). Targets at or above 16 bits x the input rate keep the input.

  Args:
    x: float32 [T] mono in [-1, 1].
    sample_rate: rate of `x`.
    kbps: target bitrate (> 0).

  Returns:
    BaselineResult; n_bytes is 2 x the number of kept samples.
  """
  x = _mono(x)
  if kbps <= 0:
    raise errors.InputError(f'kbps={kbps}', 'the resampling baseline needs kbps > 0')
  rate = min(kbps * 1000 / 16, sample_rate)
  low = audio.resample(x, sample_rate, rate)  # [T * rate / sample_rate]
  decoded = audio.resample(low, rate, sample_rate)
  return _result(x, sample_rate, decoded, 2 * low.shape[0], 'resampling',
                 f'{rate:g} Hz x 16 bits (nominal)')


BASELINES = {'mp3': mp3, 'opus': opus, 'resampling': resampling}


def _reachable(codec, kbps, rate):
  """Whether a ladder point means something: Opus within its range, resampling below `rate`."""
  if codec == 'opus':
    return OPUS_KBPS[0] <= kbps <= OPUS_KBPS[1]
  if codec == 'resampling':
    return kbps * 1000 / rows_lib.NOMINAL_BITS < rate
  return True


def ladder_rows(clips, ladder, visqol_clips, keep_audio):
  """Rows of MP3, Opus and resampling over `ladder`: yields (row, [(audio, rate)] kept).

  A ladder point whose setting repeats an earlier one (e.g. MP3 at 320 kbps on 16 kHz audio,
  which tops out at 160) is dropped, as are resampling points at or above the clips' rate.
  """
  rate = clips[0].rate
  for codec, targets in ladder.items():
    seen = set()
    for kbps in (k for k in targets if _reachable(codec, k, rate)):
      results = [BASELINES[codec](c.audio, c.rate, kbps) for c in clips]
      if results[0].setting in seen:
        continue
      seen.add(results[0].setting)
      kbps_file = 8 * sum(r.n_bytes for r in results) / sum(r.duration_s for r in results) / 1000
      per_clip = rows_lib.score_all(clips, [r.decoded for r in results], rate, visqol_clips)
      measured = results[0].measured
      row = rows_lib.make_row(
          f'{codec} {kbps:g}', codec, per_clip, target_kbps=kbps, setting=results[0].setting,
          kbps_nominal=None if measured else kbps_file,
          kbps_measured=kbps_file if measured else None)
      yield row, [(r.decoded, rate) for r in results[:keep_audio]]


class BaselineEvaluator:
  """MP3, Opus and resampling over the options' ladder, on the evaluation's test clips."""
  name = 'baselines'

  def run(self, context):
    options = context.options
    for row, decoded in ladder_rows(context.clips, LADDERS[options.ladder],
                                    options.visqol_clips, options.listen_clips):
      yield common.Result('compression.rows', row, tuple(decoded))
