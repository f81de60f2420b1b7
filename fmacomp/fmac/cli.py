"""The `fmacomp` command (a console script): encode audio to .fmac files, decode and describe them.

  fmacomp encode IN [IN ...] [-o OUT.fmac | --out_dir=DIR] [--kbps=N] [--model=NAME|WORKDIR]
  fmacomp decode IN.fmac [IN ...] [-o OUT.wav | --out_dir=DIR] [--model=WORKDIR]
  fmacomp info FILE.fmac [FILE ...]

An input may be a folder: its audio files (encode) or .fmac files (decode, info), not recursed.
Without -o or --out_dir each output lands beside its input (x.flac -> x.fmac -> x.wav); decode
never replaces a file there, which may be the original. The work is `fmacomp.fmac.api`'s, shared
with launch/encode.py and decode.py, and stdout carries the same lines.

DESIGN.md's contract: errors are one line on stderr, `fmacomp: error: <path>: <reason>`, exit 2
for bad input or usage (argparse's errors too), 1 at run time; no traceback unless --verbose;
outputs are written atomically. Quiet by default: library chatter (JAX backends, orbax, absl,
Python warnings) is silenced, and progress shows on a terminal or with --verbose. Only argparse,
the errors and the .fmac reader are imported up front, so `--help`, `info` and usage errors
answer without JAX.
"""

import argparse
import contextlib
import logging
import math
import os
import sys
import traceback
import warnings

import fmacomp
from fmacomp import errors
from fmacomp.fmac import file_format as fmac

# The formats libsndfile decodes, as `fmacomp.datasets.music_folder.AUDIO_EXTENSIONS` lists
# them (not imported from there: that module imports TFDS).
AUDIO_EXTENSIONS = frozenset({
    '.wav', '.wave', '.flac', '.ogg', '.oga', '.opus', '.mp3', '.aif', '.aiff', '.aifc', '.au',
    '.snd', '.caf', '.w64', '.rf64',
})
FMAC_EXTENSIONS = frozenset({'.fmac'})
_PACKAGE_DIR = os.path.dirname(os.path.abspath(fmacomp.__file__))


class _Parser(argparse.ArgumentParser):
  """argparse with DESIGN.md's errors: a usage error is one `FmacompError` line, exit 2."""

  def error(self, message):
    command = self.prog.split()[-1]
    raise errors.InputError('usage' if command == 'fmacomp' else command, message)


def _parser():
  parser = _Parser(prog='fmacomp', description='Learned music compression: audio <-> .fmac.',
                   epilog='Run `fmacomp COMMAND --help` for a command\'s options.')
  parser.add_argument('--version', action='version', version=f'fmacomp {fmacomp.__version__}')
  # SUPPRESS: the commands' own --verbose must not reset one given before the command.
  common = _Parser(add_help=False)
  common.add_argument('-v', '--verbose', action='store_true', default=argparse.SUPPRESS,
                      help='show progress, library warnings and tracebacks of errors')
  parser.add_argument('-v', '--verbose', action='store_true', default=False,
                      help=argparse.SUPPRESS)
  commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
  encode = commands.add_parser('encode', parents=[common], help='audio files -> .fmac files',
                               description='Compresses audio files (any format libsndfile '
                               'reads; mono, stereo or up to 8 channels) to .fmac files.')
  encode.add_argument('inputs', nargs='+', metavar='IN', help='audio files or folders')
  _add_outputs(encode, 'OUT.fmac')
  encode.add_argument('--kbps', type=float, help='target bitrate: the model\'s operating point '
                      'nearest it (log scale); default: the point nearest 6 kbps')
  encode.add_argument('--model', metavar='NAME|WORKDIR', help='a shipped model\'s name or a '
                      'training workdir (default: music-fullband-v1)')
  decode = commands.add_parser('decode', parents=[common], help='.fmac files -> audio files',
                               description='Restores the original rate, channels and length '
                               'as 16-bit PCM WAV (or FLAC for an .flac output).')
  decode.add_argument('inputs', nargs='+', metavar='IN.fmac', help='.fmac files or folders')
  _add_outputs(decode, 'OUT.wav')
  decode.add_argument('--model', metavar='WORKDIR', help='the workdir of a model that is not '
                      'shipped (shipped models are found by the name in the file)')
  info = commands.add_parser('info', parents=[common], help='describe .fmac files',
                             description='Prints what an .fmac file holds and checks its '
                             'checksums, without decoding it.')
  info.add_argument('inputs', nargs='+', metavar='FILE.fmac', help='.fmac files or folders')
  return parser


def _add_outputs(parser, metavar):
  group = parser.add_mutually_exclusive_group()
  group.add_argument('-o', '--output', metavar=metavar, help='the output (one input only)')
  group.add_argument('--out_dir', '--out-dir', metavar='DIR', help='write each input x.ext '
                     'as DIR/x' + os.path.splitext(metavar)[1])


def _expand(paths, extensions):
  """Files and folders -> files: a folder gives its files with `extensions`, sorted."""
  found = []
  for path in paths:
    if os.path.isdir(path):
      names = sorted(n for n in os.listdir(path) if not n.startswith('.') and
                     os.path.splitext(n)[1].lower() in extensions and
                     os.path.isfile(os.path.join(path, n)))
      if not names:
        raise errors.InputError(path, 'folder holds no ' + ' or '.join(sorted(extensions)) +
                                ' files')
      found += [os.path.join(path, n) for n in names]
    elif not os.path.exists(path):
      raise errors.InputError(path, 'no such file')
    else:
      found.append(path)
  return found


def _outputs(inputs, output, out_dir, ext):
  """The output of each input: `output`, or DIR/x.ext, or x.ext beside x."""
  if output is not None:
    if len(inputs) != 1:
      raise errors.InputError('-o', f'names one output, but {len(inputs)} inputs were given '
                                    '(use --out_dir=DIR)')
    outputs = [output]
  else:
    if out_dir is not None and os.path.exists(out_dir) and not os.path.isdir(out_dir):
      raise errors.InputError(out_dir, 'is not a folder')
    outputs = [os.path.join(out_dir if out_dir is not None else os.path.dirname(p),
                            os.path.splitext(os.path.basename(p))[0] + ext) for p in inputs]
  sources = {os.path.realpath(p): p for p in inputs}
  seen = {}
  for src, out in zip(inputs, outputs):
    real = os.path.realpath(out)
    if real in sources:
      raise errors.InputError(out, 'is an input too; choose another output')
    if real in seen:
      raise errors.InputError(out, f'would be written from both {seen[real]} and {src}')
    seen[real] = src
  return outputs


class _LogFilter(logging.Filter):
  """fmacomp's own records (progress at INFO, warnings); other libraries' errors only."""

  def __init__(self, verbose, progress):
    super().__init__()
    self.ours = logging.INFO if progress else logging.WARNING
    self.theirs = logging.WARNING if verbose else logging.ERROR

  def filter(self, record):
    ours = record.pathname.startswith(_PACKAGE_DIR)  # absl logs every module as 'absl'
    return record.levelno >= (self.ours if ours else self.theirs)


@contextlib.contextmanager
def _quiet(verbose):
  """Runs the block with stderr reserved for what a user should read (see the docstring).

  Set before JAX is imported, and undone after the block (logging handlers, warnings filters),
  so that calling `main` in-process leaves the caller's logging as it was.
  """
  if not verbose:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # XLA's C++ INFO and WARNING lines
  progress = verbose or sys.stderr.isatty()
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter('fmacomp: %(message)s'))
  handler.addFilter(_LogFilter(verbose, progress))
  root = logging.getLogger()
  saved = root.handlers[:], root.level
  # Ours is the only handler: absl and orbax call logging.basicConfig only when none is there.
  root.handlers = [handler]
  root.setLevel(logging.INFO)
  try:
    with warnings.catch_warnings():
      if not verbose:
        warnings.simplefilter('ignore')
      yield
  finally:
    root.handlers = saved[0]
    root.setLevel(saved[1])


def _print(line):
  print(line, flush=True)


def _check_kbps(kbps):
  if kbps is not None and not (math.isfinite(kbps) and kbps > 0):
    raise errors.InputError('--kbps', f'must be a positive number, got {kbps}')


def _encode(args):
  inputs = _expand(args.inputs, AUDIO_EXTENSIONS)
  outputs = _outputs(inputs, args.output, args.out_dir, '.fmac')
  _check_kbps(args.kbps)
  with _quiet(args.verbose):
    from fmacomp.fmac import api  # pylint: disable=g-import-not-at-top (imports JAX)
    api.encode_files(inputs, outputs, args.model or None, args.kbps, report=_print,
                     name_files=args.output is None)


def _check_magic(path):
  """Refuses a file that is not .fmac before anything else is said about it."""
  try:
    with open(path, 'rb') as f:
      start = f.read(len(fmac.MAGIC))
  except OSError as e:
    raise errors.InputError(path, e.strerror or str(e)) from None
  if start != fmac.MAGIC:
    raise errors.InputError(path, 'not an .fmac file (bad magic bytes)')


def _decode(args):
  inputs = _expand(args.inputs, FMAC_EXTENSIONS)
  for path in inputs:
    _check_magic(path)
  outputs = _outputs(inputs, args.output, args.out_dir, '.wav')
  if args.output is None and args.out_dir is None:
    for out in outputs:
      if os.path.exists(out):
        raise errors.InputError(out, 'exists (it may be the original); choose the output with '
                                     '-o or --out_dir')
  with _quiet(args.verbose):
    from fmacomp.fmac import api  # pylint: disable=g-import-not-at-top (imports JAX)
    api.decode_files(inputs, outputs, args.model or None, report=_print,
                     name_files=args.output is None)


def _info(args):
  """Header fields, sizes and the checksums of each file (read and checked, not decoded)."""
  for i, path in enumerate(_expand(args.inputs, FMAC_EXTENSIONS)):
    header, chunks = fmac.read_fmac(path)  # checks the header CRC and every chunk's
    size = os.path.getsize(path)
    duration = header.num_samples / header.sample_rate
    if i:
      _print('')
    for line in (f'file={path}', f'model={header.model}',
                 f'model_hash={header.model_hash.hex()}',
                 f'operating_point={header.operating_point}',
                 f'sample_rate={header.sample_rate}', f'channels={header.channels}',
                 f'stereo_mode={header.stereo_mode}', f'num_samples={header.num_samples}',
                 f'duration_s={duration:.3f}', f'bytes={size}',
                 f'kbps={size * 8 / duration / 1000:.3f}', f'chunks={len(chunks)}',
                 'checksums=ok'):
      _print(line)


_COMMANDS = {'encode': _encode, 'decode': _decode, 'info': _info}


def _fail(error, verbose):
  """DESIGN.md's one line (after the traceback with --verbose); exits with the error's code."""
  sys.stdout.flush()
  if verbose:
    traceback.print_exception(error)
  sys.stderr.write(f'fmacomp: error: {error}\n')
  sys.stderr.flush()
  sys.exit(error.exit_code)


def main(argv=None):
  """Runs `fmacomp ARGS` (argv without the program name; None: sys.argv[1:]).

  Returns 0 on success; exits (SystemExit) with 2 for bad input or usage, 1 for a failure at
  run time, 0 after --help.
  """
  argv = sys.argv[1:] if argv is None else [os.fspath(a) for a in argv]
  verbose = '-v' in argv or '--verbose' in argv  # before parsing: usage errors too
  try:
    args = _parser().parse_args(argv)
    _COMMANDS[args.command](args)
  except errors.FmacompError as e:
    _fail(e, verbose)
  except KeyboardInterrupt:
    _fail(errors.RunError(argv[0] if argv else 'fmacomp', 'interrupted'), verbose)
  return 0


if __name__ == '__main__':
  sys.exit(main())
