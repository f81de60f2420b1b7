r"""Decodes an .fmac file: `python launch/decode.py IN.fmac OUT.wav [--model=WORKDIR]`.

The header names the model and the hash of its weights: a shipped model is found by name; any
other needs `--model=WORKDIR` (a workdir or a shipped name), whose weights must match the hash.
Writes 16-bit PCM (`.wav`, or `.flac` by extension) at the original's sample rate, channel count
and length. The last stdout line is `duration_s=... bytes=... kbps=...` of the .fmac file.
`fmacomp.fmac.api.decode_files` does the work, as for `fmacomp decode`.
"""

from absl import flags

import launcher
from fmacomp import errors
from fmacomp.fmac import api

flags.DEFINE_string('model', '', 'Workdir (or shipped name) of a model that is not shipped.')
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) != 3:
    raise errors.InputError(argv[0], 'usage: decode.py IN.fmac OUT.wav [--model=WORKDIR]')
  api.decode_files([argv[1]], [argv[2]], FLAGS.model or None,
                   report=lambda line: print(line, flush=True))


if __name__ == '__main__':
  launcher.run(main)
