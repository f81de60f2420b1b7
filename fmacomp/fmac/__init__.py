"""The codec as its users meet it: `.fmac` files from audio and back.

  file_format.py  the .fmac container: header, chunk table, CRCs, limits (no JAX)
  model_store.py  codecs by shipped name or workdir; operating points; integer CDF tables
  compress.py     audio file <-> .fmac through a codec, chunked, bounded memory
  shipped/        the trained codecs that ship inside the package (immutable under their names)

Importing this package imports no JAX: the `fmacomp` command answers `--help` without it.
"""
