"""Tests for fmacomp.evaluation.codec_eval: a .fmac file's latent equals the codec's own."""

import os

import numpy as np
import pytest

from fmacomp import audio
from fmacomp.evaluation import clips as clips_lib
from fmacomp.evaluation import codec_eval
from fmacomp.fmac import compress
from fmacomp.fmac import model_store

from tests import smoke_study


@pytest.fixture(name='codec')
def codec_fixture(tmp_path_factory):
  return model_store.load(str(smoke_study.get(tmp_path_factory).workdir / 'codec'))


def test_fmac_latents_equal_the_dequantised_encoder_output(codec, tmp_path):
  rate = codec.sample_rate
  t = np.arange(2 * rate) / rate
  x = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + t))).astype(np.float32)  # a 2 s chirp
  audio.write_audio(tmp_path / 'x.wav', x, rate, subtype='FLOAT')
  compress.encode_file(tmp_path / 'x.wav', tmp_path / 'x.fmac', codec, chunk_s=0.5)
  _, chunks = compress.read_header(tmp_path / 'x.fmac')
  assert len(chunks) >= 3  # seams are crossed
  z_file = codec_eval.fmac_latents(str(tmp_path / 'x.fmac'), codec)
  z_whole = np.asarray(codec.model.apply(
      codec.variables, x[None], method=lambda m, v: m.quantise(m.encode(v))))[0]
  assert z_file.shape == z_whole.shape == (-(-len(x) // codec.hop), codec.latent_channels)
  assert np.mean(np.isclose(z_file, z_whole)) > 0.99  # equal up to float rounding at a seam


def test_roundtrip_returns_the_clip_length_and_the_file_size(codec, tmp_path):
  silence = np.zeros(codec.sample_rate, np.float32) + 0.01
  clip = clips_lib.Clip(silence, codec.sample_rate, 't', 0)
  decoded, size = codec_eval.roundtrip(codec, clip, str(tmp_path))
  assert decoded.shape == clip.audio.shape and np.isfinite(decoded).all()
  assert size == os.path.getsize(tmp_path / 'clip.fmac')
