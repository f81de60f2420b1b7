r"""Encodes an audio file: `python launch/encode.py IN_AUDIO OUT.fmac [--model=NAME|WORKDIR]
[--kbps=N]`.

Any format and rate libsndfile reads; stereo stays stereo (mid/side). `--model` is a shipped
model's name or a training workdir (its best checkpoint; a sweep workdir offers one operating
point per run); `--kbps` picks the operating point nearest N on a log scale (without `--model`,
among every shipped model's). stdout says which
operating point was used, and its last line is `duration_s=... bytes=... kbps=...` (bytes: the
file's size on disk).
"""

from absl import flags
from absl import logging

import launcher
from fmacomp import audio
from fmacomp import errors
from fmacomp.fmac import compress
from fmacomp.fmac import model_store

flags.DEFINE_string('model', '', 'Shipped model name or training workdir (default: the shipped '
                    'model nearest --kbps, else the first).')
flags.DEFINE_float('kbps', None, 'Target bitrate: the nearest operating point (log scale).')
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) != 3:
    raise errors.InputError(argv[0], 'usage: encode.py IN_AUDIO OUT.fmac [--model=NAME|WORKDIR] '
                                     '[--kbps=N]')
  audio.audio_info(argv[1])  # a missing or unreadable input fails before the model loads
  if FLAGS.model:
    codec = model_store.load(FLAGS.model, FLAGS.kbps)
  else:  # every shipped model's operating points compete for --kbps
    points = [p for name in model_store.shipped_models()
              for p in model_store.operating_points(name)]
    if not points:
      raise errors.InputError('--model', 'no shipped model: pass --model=WORKDIR')
    codec = model_store.Codec(model_store.nearest(points, FLAGS.kbps))
  point = codec.point
  logging.info('model %s, operating point %d (%.3g kbps on validation)%s', point.model,
               point.index, point.kbps, '' if FLAGS.kbps is None else f', nearest {FLAGS.kbps}')
  result = compress.encode_file(argv[1], argv[2], codec)
  print(f'model={point.model} operating_point={point.index} nominal_kbps={point.kbps:.3f}')
  print(result.summary(), flush=True)


if __name__ == '__main__':
  launcher.run(main)
