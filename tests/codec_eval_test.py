"""Tests for fmacomp.evaluation.codec_eval on a single-point codec (a conv_codec tiny run).

A .fmac file's latent equals the codec's own; a run of one operating point is still one row,
measured from its files. The rate-conditioned codec (one row per operating point) is checked on
the smoke study's `codec` stage in evaluate_test.
"""

import os

import numpy as np
import pytest

from fmacomp import audio
from fmacomp.evaluation import clips as clips_lib
from fmacomp.evaluation import codec_eval
from fmacomp.evaluation import common
from fmacomp.evaluation import evaluate
from fmacomp.fmac import compress
from fmacomp.fmac import model_store

from tests import signals
from tests import trained_codec


@pytest.fixture(name='workdir')
def workdir_fixture(tmp_path_factory, tiny_data_dir):
  return trained_codec.workdir(tmp_path_factory, tiny_data_dir)  # conv_codec: one point


@pytest.fixture(name='codec')
def codec_fixture(workdir):
  return model_store.load(str(workdir))


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


def test_a_single_point_run_is_one_row_measured_from_its_files(workdir, codec, tmp_path):
  rate = codec.sample_rate
  clips = [clips_lib.Clip(signals.plucked_notes(1.0, rate, seed=i), rate, f't{i}', 0)
           for i in range(2)]
  runs, _ = common.discover_runs(str(workdir))
  options = evaluate.make_options('smoke', listen_clips=1)
  context = common.Context(str(workdir), None, [], clips, runs, options)
  (result,) = codec_eval.CodecEvaluator().run(context)
  row = result.record
  assert (row['name'], row['model'], row['kind']) == ('workdir', 'conv_codec', 'codec')
  assert 'point' not in row and 'curve' not in row  # the fields of rate-conditioned rows
  sizes = [codec_eval.roundtrip(codec, c, str(tmp_path))[1] for c in clips]
  assert row['kbps_measured'] == pytest.approx(8 * sum(sizes) / 2.0 / 1000)
  assert row['metrics']['mel_distance']['n'] == 2 and len(result.audio) == 1
