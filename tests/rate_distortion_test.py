"""Tests of the rate-distortion rows: deterministic test clips (`clips`), the nominal bitrate of
autoencoders (`rate_distortion`), baseline rows (`baselines.ladder_rows`) and their bitrates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmacomp.configs import freq_ae as freq_ae_config
from fmacomp.configs import time_ae as time_ae_config
from fmacomp.evaluation import baselines
from fmacomp.evaluation import clips as clips_lib
from fmacomp.evaluation import rate_distortion as rd
from fmacomp.evaluation import rows as rows_lib
from fmacomp import metrics
from fmacomp import models

from tests.datasets import tiny_builder


@pytest.fixture(scope='module', name='builder')
def builder_fixture(tmp_path_factory):
  return tiny_builder.build(tmp_path_factory.mktemp('tfds'))


def abstract_variables(model, config):
  crop = int(round(config.crop_s * config.sample_rate))
  return jax.eval_shape(model.init, jax.random.key(0, impl='rbg'),
                        jax.ShapeDtypeStruct((1, crop), jnp.float32))


def clip(seconds=1.0, rate=16000, seed=0):
  t = np.arange(int(seconds * rate)) / rate
  noise = np.random.default_rng(seed).standard_normal(t.size)
  x = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t) + 0.02 * noise
  return clips_lib.Clip(x.astype(np.float32), rate, f'track{seed}', 0)


@pytest.mark.parametrize('channels,kbps', [(512, 126.0), (256, 63.0), (128, 31.5), (32, 7.875)])
def test_nominal_kbps_reproduces_the_reference_accounting(channels, kbps):
  # The reference's freq_ae: a C x 126 latent per 65,536 samples at 8 kHz, 16 bits a value.
  config = freq_ae_config.get_config(f'latent={channels}')
  model = models.from_config(config.model)
  assert rd.nominal_kbps(model, abstract_variables(model, config), config) == pytest.approx(kbps)


def test_nominal_kbps_of_the_time_autoencoder():
  config = time_ae_config.get_config()
  model = models.from_config(config.model)
  # 255 frames x 32 channels per 65,536 samples at 44.1 kHz.
  assert rd.nominal_kbps(model, abstract_variables(model, config), config) == pytest.approx(
      16 * 255 * 32 / (65536 / 44100) / 1000)


def test_test_clips_are_middle_segments_spread_over_the_split(builder):
  clips = clips_lib.test_clips(builder, count=3, clip_s=1.0)
  assert [c.track_id for c in clips] == ['track100', 'track102', 'track104']  # of 5, sorted
  again = clips_lib.test_clips(builder, count=3, clip_s=1.0)
  for a, b in zip(clips, again):
    np.testing.assert_array_equal(a.audio, b.audio)
  # track100 is 3 s: segments start at 0, 1 and 2 s; the middle one starts at 1 s.
  whole = tiny_builder.render(tiny_builder.Recipe(100, 3.0, tiny_builder.AMPLITUDE['test']))
  np.testing.assert_allclose(clips[0].audio, whole[16000:32000], atol=1e-4)
  assert clips[0].rate == tiny_builder.RATE and clips[0].label == 1
  assert len(clips_lib.test_clips(builder, count=50, clip_s=1.0)) == 5


def test_several_clips_per_track_are_evenly_spaced_inside_it(builder):
  clips = clips_lib.test_clips(builder, count=2, clip_s=0.5, per_track=2)
  assert [(c.track_id, c.excerpt) for c in clips] == [
      ('track100', 0), ('track100', 1), ('track104', 0), ('track104', 1)]
  # track100 is 3 s: 2.5 s of room in three gaps, so the clips start at 0.833 and 1.667 s.
  whole = tiny_builder.render(tiny_builder.Recipe(100, 3.0, tiny_builder.AMPLITUDE['test']))
  for clip_, start in zip(clips[:2], (0.8333, 1.6667)):
    first = int(round(start * 16000))
    np.testing.assert_allclose(clip_.audio, whole[first:first + 8000], atol=1e-4)
  assert clips_lib.excerpt_starts(25.0, 10.0, 4) == pytest.approx([3, 6, 9, 12])
  assert clips_lib.excerpt_starts(30.0, 10.0, 1) == [10.0]
  assert clips_lib.excerpt_starts(5.0, 10.0, 4) == [0.0]


def test_pcm16_scoring_is_a_16_bit_file_and_idempotent():
  x = np.linspace(-1.2, 1.2, 1001).astype(np.float32)
  y = rows_lib.as_pcm16(x)
  assert y.dtype == np.float32 and np.abs(y).max() <= 1.0
  np.testing.assert_array_equal(np.round(y * 32768), y * 32768)  # 16-bit steps
  np.testing.assert_array_equal(rows_lib.as_pcm16(y), y)


def test_baseline_rows_measure_files_and_drop_repeated_settings():
  clips = [clip(seed=0), clip(seed=1)]
  ladder = {'mp3': (32, 160, 320), 'opus': (24,), 'resampling': (64, 256)}
  rows, kept = zip(*baselines.ladder_rows(clips, ladder, visqol_clips=0, keep_audio=1))
  # 16 kHz audio: MP3 tops out at 160 kbps (320 repeats it); resampling at 256 kbps is the input.
  assert [r['name'] for r in rows] == ['mp3 32', 'mp3 160', 'opus 24', 'resampling 64']
  mp3 = rows[0]
  results = [baselines.mp3(c.audio, c.rate, 32) for c in clips]
  assert mp3['kbps_measured'] == pytest.approx(
      8 * sum(r.n_bytes for r in results) / sum(r.duration_s for r in results) / 1000)
  assert mp3['kbps_nominal'] is None and mp3['split'] == 'test'
  # Scored as 16-bit PCM, like every codec's output.
  expected = [metrics.mel_distance(c.audio, rows_lib.as_pcm16(r.decoded), c.rate)
              for c, r in zip(clips, results)]
  mel = mp3['metrics']['mel_distance']
  assert {k: mel[k] for k in ('mean', 'std', 'n', 'over', 'recordings')} == pytest.approx(
      {'mean': np.mean(expected), 'std': np.std(expected), 'n': 2, 'over': 'clips',
       'recordings': 2})
  assert mel['ci95'][0] <= mel['mean'] <= mel['ci95'][1]
  assert mp3['per_clip']['recording'] == ['track0', 'track1']
  assert mp3['metrics']['visqol'] is None
  resampling = rows[-1]
  assert resampling['kbps_measured'] is None and resampling['kbps_nominal'] == pytest.approx(64)
  assert len(kept) == 4 and all(len(v) == 1 for v in kept)  # each row's first clip
  np.testing.assert_array_equal(kept[0][0][0], results[0].decoded)
  assert kept[0][0][1] == clips[0].rate
  assert rows_lib.nearest_by_kbps(rows, 40, 'mp3') == 0
  assert rows_lib.nearest_by_kbps(rows, 120, 'mp3') == 1
  assert rows_lib.nearest_by_kbps(rows, 40, 'flac') is None


def test_visqol_only_on_the_first_clips():
  clips = [clip(seconds=1.0, seed=0), clip(seconds=1.0, seed=1)]
  ((row, kept),) = baselines.ladder_rows(clips, {'mp3': (64,)}, visqol_clips=1, keep_audio=0)
  assert kept == []
  visqol = row['metrics']['visqol']
  assert visqol['n'] == 1 and 1.0 <= visqol['mean'] <= 5.0
  assert row['metrics']['mel_distance']['n'] == 2
