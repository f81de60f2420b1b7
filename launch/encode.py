r"""Encodes an audio file: `python launch/encode.py IN_AUDIO OUT.fmac [--model=NAME|WORKDIR]
[--kbps=N]`.

Any format and rate libsndfile reads; stereo stays stereo (mid/side). `--model` is a shipped
model's name or a training workdir (its best checkpoint; a sweep workdir offers one operating
point per run); `--kbps` picks the operating point nearest N on a log scale. Without `--model`,
the default model (`model_store.DEFAULT_MODEL`) is used: `--kbps` picks among its points only
(older shipped models by name only), and without `--kbps` its point nearest
`model_store.DEFAULT_KBPS` (6 kbps).
`fmacomp.fmac.api.encode_files` does the work, as for `fmacomp encode`. stdout says which
operating point was used, and its last line is `duration_s=... bytes=... kbps=...` (bytes: the
file's size on disk).
"""

from absl import flags

import launcher
from fmacomp import errors
from fmacomp.fmac import api

flags.DEFINE_string('model', '', 'Shipped model name or training workdir (default: '
                    'model_store.DEFAULT_MODEL).')
flags.DEFINE_float('kbps', None, 'Target bitrate: the nearest operating point (log scale).')
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) != 3:
    raise errors.InputError(argv[0], 'usage: encode.py IN_AUDIO OUT.fmac [--model=NAME|WORKDIR] '
                                     '[--kbps=N]')
  api.encode_files([argv[1]], [argv[2]], FLAGS.model or None, FLAGS.kbps,
                   report=lambda line: print(line, flush=True))


if __name__ == '__main__':
  launcher.run(main)
