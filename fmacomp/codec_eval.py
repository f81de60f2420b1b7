"""Codec operating points in the evaluation: real .fmac bytes through `fmacomp.compress`.

A codec run (a quantised model with an entropy model, `model.name` in `CODECS`) is evaluated
like a user would use it: each test clip is compressed to a .fmac file and decompressed with
the public API of `fmacomp.compress`; its bitrate is the file's size x 8 / seconds.

Classification from the compressed representation needs a classifier whose encoder is a
codec's: the file's symbols are entropy-decoded, dequantised and fed to the classifier's head
(`fmacomp.genre.classify_latents`), with no call to `decode()`.
"""

CODECS = ('conv_codec',)
PENDING_GENRE = ('no classifier reads a codec\'s latent in this evaluation (train one with '
                 '--config.encoder_workdir=<a codec run>); accuracy against bitrate needs it')


def is_codec(config):
  return config.model.name in CODECS


def codec_rows(groups, clips, options, kept, offset):
  """Rate-distortion rows of codec groups (none yet: `fmacomp.compress` is not there)."""
  del clips, options, kept, offset
  return [] if not groups else []


def compressed_genre(runs, builder, options):
  """Accuracy against bitrate from compressed files, or why it is pending."""
  del runs, builder, options
  return {'status': 'pending', 'reason': PENDING_GENRE, 'rows': []}
