"""fmacomp: learned music compression and classification from compressed latents.

Importing the package has no side effects: no devices, meshes, seeds or flags are touched, and
no JAX is imported (`load_codec` imports it when called).

  codec = fmacomp.load_codec()             # the shipped default, music-fullband-v1
  data = codec.encode(audio, sample_rate)  # [samples] or [samples, channels] -> .fmac bytes
  audio, sample_rate = codec.decode(data)
"""

__version__ = '0.1.0'


def load_codec(name_or_workdir=None, kbps=None):
  """Loads a codec: a shipped model's name or a training workdir, at the point nearest `kbps`.

  See `fmacomp.fmac.api.load_codec`; returns an `api.Codec` with `encode(audio, sample_rate)`
  -> bytes and `decode(data)` -> (audio, sample_rate).
  """
  from fmacomp.fmac import api  # pylint: disable=g-import-not-at-top (JAX only when used)
  return api.load_codec(name_or_workdir, kbps)
