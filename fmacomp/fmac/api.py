"""The codec as a library: the Python API, and the batch calls behind every codec command.

  codec = fmacomp.load_codec()             # music-fullband-v1; or a shipped name or a workdir, kbps=N
  data = codec.encode(audio, sample_rate)  # [samples] or [samples, channels] -> .fmac bytes
  audio, sample_rate = codec.decode(data)  # the rate, channels and length that were encoded

`encode_files` and `decode_files` are what `fmacomp encode|decode` (`fmacomp.fmac.cli`) and
launch/encode.py, decode.py run: every input is checked before a model loads, one model loads
and compiles for the whole batch, and each file reports DESIGN.md's stdout lines. Failures are
`errors.FmacompError`s naming the file at fault (an unexpected one becomes a `RunError`).
"""

import contextlib
import os

from absl import logging
import numpy as np

from fmacomp import audio as audio_io
from fmacomp import errors
from fmacomp.fmac import compress
from fmacomp.fmac import file_format as fmac
from fmacomp.fmac import model_store


def choose_point(model=None, kbps=None):
  """The operating point an encoder uses.

  Args:
    model: a shipped name or a workdir; None: `model_store.DEFAULT_MODEL` (older shipped models
      only by name).
    kbps: target bitrate: the model's point nearest it (log scale). None: the default model's
      point nearest `model_store.DEFAULT_KBPS`, or a named model's first (lowest) point.

  Raises:
    errors.InputError: an unknown model, a bad kbps, or no shipped model at all.
  """
  if model:
    return model_store.nearest(model_store.operating_points(model), kbps)
  if model_store.DEFAULT_MODEL not in model_store.shipped_models():
    raise errors.InputError('--model', f'the default model {model_store.DEFAULT_MODEL} is not '
                                       'installed: pass --model=NAME_OR_WORKDIR')
  points = model_store.operating_points(model_store.DEFAULT_MODEL)
  return model_store.nearest(points, model_store.DEFAULT_KBPS if kbps is None else kbps)


def load_codec(name_or_workdir=None, kbps=None):
  """Loads a codec: `Codec` of `choose_point(name_or_workdir, kbps)`.

  Args:
    name_or_workdir: a shipped model's name (`model_store.shipped_models()`) or a training
      workdir (its best checkpoint; a sweep workdir has one operating point per run). None:
      `model_store.DEFAULT_MODEL`.
    kbps: the target bitrate; the operating point nearest it on a log scale.

  Raises:
    errors.InputError: an unknown model or a bad kbps.
  """
  with _about(name_or_workdir or 'model'):
    return Codec(model_store.Codec(choose_point(name_or_workdir, kbps)))


def _as_samples(audio, name):
  """[samples] or [samples, channels] float or signed-integer PCM -> float32 [samples, C]."""
  x = np.asarray(audio)
  if x.ndim not in (1, 2) or x.size == 0:
    raise errors.InputError(name, f'audio must be a non-empty [samples] or [samples, channels] '
                                  f'array, not shape {x.shape}')
  if np.issubdtype(x.dtype, np.signedinteger):  # PCM, scaled as soundfile reads it
    x = x / float(2 ** (8 * x.dtype.itemsize - 1))
  elif not np.issubdtype(x.dtype, np.floating):
    raise errors.InputError(name, f'audio must be float or signed integer PCM, not {x.dtype}')
  if not np.all(np.isfinite(x)):
    raise errors.InputError(name, 'audio holds NaN or infinite samples')
  x = x.astype(np.float32)
  return x[:, None] if x.ndim == 1 else x


def _check_rate(sample_rate, name):
  """A whole, positive number of Hz within the format's limits -> int."""
  try:
    rate = int(sample_rate)
    whole = rate == sample_rate
  except (TypeError, ValueError, OverflowError):  # a string, NaN, infinity
    rate, whole = 0, False
  if not whole or not 1 <= rate <= fmac.MAX_SAMPLE_RATE:
    raise errors.InputError(name, f'sample rate must be a whole number of Hz in [1, '
                                  f'{fmac.MAX_SAMPLE_RATE}], not {sample_rate!r}')
  return rate


class Codec:
  """A loaded codec (one operating point of a model): audio arrays <-> .fmac bytes.

  The network compiles on first use, once per window shape; later calls reuse it.

  Attributes:
    model: the name .fmac files carry (a shipped name, or the workdir's model name).
    operating_point: the index of the point among the model's.
    nominal_kbps: its bitrate on validation (a mono signal; stereo costs up to twice).
  """

  def __init__(self, codec):
    self.codec = codec  # the `model_store.Codec`
    self.model = codec.point.model
    self.operating_point = codec.point.index
    self.nominal_kbps = codec.point.kbps

  def __repr__(self):
    return (f'Codec(model={self.model!r}, operating_point={self.operating_point}, '
            f'nominal_kbps={self.nominal_kbps:.3f})')

  def encode(self, audio, sample_rate):
    """Compresses audio to the bytes of a complete .fmac file.

    Args:
      audio: [samples] (mono) or [samples, channels] (up to 8), as `soundfile.read` gives:
        float in [-1, 1], or signed integer PCM.
      sample_rate: its rate in Hz (any; the model resamples).

    Raises:
      errors.InputError: an array of another shape or type, non-finite samples, a bad rate, or
        audio shorter than one latent frame.
    """
    x = _as_samples(audio, 'audio')
    rate = _check_rate(sample_rate, 'sample_rate')
    return compress.encode_array(x, rate, self.codec, name='audio')

  def decode(self, data, always_2d=False):
    """Restores the audio of .fmac bytes written by this codec's model.

    Args:
      data: the bytes of an .fmac file.
      always_2d: return mono as [samples, 1] (as soundfile's `always_2d`).

    Returns:
      (float32 [samples] for mono or [samples, channels], sample_rate): the rate, channels and
      length that were encoded.

    Raises:
      errors.InputError: not bytes, a truncated or corrupted file, or another model's file.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
      raise errors.InputError('data', f'must be the bytes of an .fmac file, not '
                                      f'{type(data).__name__}')
    x, rate = compress.decode_bytes(data, self.codec, name='data')
    return (x[:, 0] if x.shape[1] == 1 and not always_2d else x), rate


@contextlib.contextmanager
def _about(path):
  """Turns an unexpected exception while handling `path` into a FmacompError naming it."""
  try:
    yield
  except errors.FmacompError:
    raise
  except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
    raise errors.InputError(e.filename or path, e.strerror or str(e)) from e
  except OSError as e:  # a full disk, an I/O error: nothing the user typed
    raise errors.RunError(e.filename or path, e.strerror or str(e)) from e
  except Exception as e:  # pylint: disable=broad-except (reported as one line, exit 1)
    raise errors.RunError(path, f'{type(e).__name__}: {e}') from e


def point_line(codec):
  """The stdout line that says which operating point encoded."""
  return (f'model={codec.model} operating_point={codec.operating_point} '
          f'nominal_kbps={codec.nominal_kbps:.3f}')


def encode_files(inputs, outputs, model=None, kbps=None, report=print, name_files=False):
  """Encodes inputs[i] to outputs[i] (atomically) with one codec, loaded once.

  Every input is opened before the model loads, so a missing or unreadable one fails first.

  Args:
    inputs: audio files (any format libsndfile reads).
    outputs: their .fmac paths.
    model, kbps: as `load_codec`'s.
    report: called with each stdout line: per file, `point_line` and `Result.summary()`.
    name_files: report `in=IN out=OUT` before each file's lines.

  Returns:
    [compress.Result], one per input.
  """
  inputs, outputs = [os.fspath(p) for p in inputs], [os.fspath(p) for p in outputs]
  for path in inputs:
    audio_io.audio_info(path)
  codec = load_codec(model, kbps)
  logging.info('model %s, operating point %d (%.3g kbps on validation)%s', codec.model,
               codec.operating_point, codec.nominal_kbps,
               '' if kbps is None else f', nearest {kbps}')
  results = []
  for i, (src, dst) in enumerate(zip(inputs, outputs)):
    logging.info('encoding %d/%d: %s', i + 1, len(inputs), src)
    with _about(src):
      results.append(compress.encode_file(src, dst, codec.codec))
    if name_files:
      report(f'in={src} out={dst}')
    report(point_line(codec))
    report(results[-1].summary())
  return results


def decode_files(inputs, outputs, model=None, report=print, name_files=False):
  """Decodes inputs[i] (.fmac) to outputs[i] (16-bit PCM WAV, or FLAC by extension).

  Every input is read and checked (CRCs included) before a model loads. Each model is loaded
  once: by default the shipped model each header names, else `model`.

  Args:
    inputs: .fmac files.
    outputs: audio paths; the original rate, channels and length.
    model: a workdir or shipped name for files of a model that is not shipped.
    report: called with each stdout line: per file, `Result.summary()` of the .fmac file.
    name_files: report `in=IN out=OUT` before each file's line.

  Returns:
    [compress.Result], one per input.
  """
  inputs, outputs = [os.fspath(p) for p in inputs], [os.fspath(p) for p in outputs]
  for path in outputs:
    compress.output_format(path)
  headers = [compress.read_header(path)[0] for path in inputs]  # the chunks are dropped
  codecs, results = {}, []
  for i, (src, dst, header) in enumerate(zip(inputs, outputs, headers)):
    with _about(src):
      codec = _cached_codec(header, src, model, codecs)
      logging.info('decoding %d/%d: %s', i + 1, len(inputs), src)
      results.append(compress.decode_file(src, dst, codec))
    if name_files:
      report(f'in={src} out={dst}')
    report(results[-1].summary())
  return results


def _cached_codec(header, path, model, cache):
  """The `model_store.Codec` that wrote `header`, loaded once per (model, weights) in `cache`."""
  key = (header.model, header.model_hash)
  if key not in cache:
    codec = compress.codec_for(header, path, model)
    cache[(codec.point.model, codec.model_hash)] = codec
  return cache[key]
