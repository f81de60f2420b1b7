"""Tests for fmacomp.evaluation.evaluate on the smoke study's trained runs (tests/smoke_study.py).

The numbers in results.json are recomputed here from the same test clips, so the file is
checked against the computation, not against itself.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from fmacomp import audio
from fmacomp import datasets
from fmacomp.evaluation import baselines
from fmacomp.evaluation import clips as clips_lib
from fmacomp.evaluation import codec_eval
from fmacomp.evaluation import common
from fmacomp.evaluation import evaluate
from fmacomp.evaluation import rate_distortion as rd
from fmacomp.evaluation import rows as rows_lib
from fmacomp.fmac import compress
from fmacomp.fmac import model_store
from fmacomp import metrics
from fmacomp.reporting import results_md

from tests import smoke_study

EVALUATE = smoke_study.ROOT / 'launch' / 'evaluate.py'


@pytest.fixture(name='study')
def study_fixture(tmp_path_factory):
  return smoke_study.get(tmp_path_factory)


@pytest.fixture(name='results')
def results_fixture(study):
  return json.loads((study.workdir / 'eval' / 'results.json').read_text())


def clips_of(study, results):
  builder = datasets.get_builder('synthetic_music/tiny', data_dir=str(study.data_dir))
  return clips_lib.test_clips(builder, results['settings']['clips'],
                              results['settings']['clip_s'],
                              per_track=results['settings']['clips_per_track'])


def codec_points(study):
  """The smoke study's rate-conditioned codec's operating points, in the evaluation's order."""
  return model_store.operating_points(str(study.workdir / 'codec'))


def test_rows_carry_both_bitrates_honestly(study, results):
  rows = results['compression']['rows']
  families = [r['family'] for r in rows]
  points = [f'codec@p{p.index}' for p in codec_points(study)]
  assert sorted(points) == ['codec@p0', 'codec@p1']  # stft_codec:tiny has two points
  assert [r['name'] for r in rows[:6]] == ['freq_ae C=16', 'time_ae', *points, 'freq_ae_q C=16',
                                          'time_ae_q']
  assert {'mp3', 'opus', 'resampling'} <= set(families)
  for row in rows:
    assert row['split'] == 'test'
    assert row['metrics']['mel_distance']['n'] == results['settings']['clips']
    if row['family'] == 'fmacomp':
      assert all(results['runs'][r]['seed'] == row['seed'] for r in row['runs'])
      assert results['runs'][row['runs'][0]]['config']['model']['name'] == row['model']
      if row['kind'] == 'autoencoder':  # float latents: no file, so no measured bitrate
        assert row['kbps_measured'] is None and row['kbps_nominal'] > 0
      else:  # codecs: real files, far below the 16-bit count of their symbols
        assert 0 < row['kbps_measured'] < row['kbps_nominal']
    elif row['family'] in ('mp3', 'opus'):
      assert row['kbps_nominal'] is None and row['kbps_measured'] > 0
    else:
      assert row['kbps_measured'] is None and row['kbps_nominal'] == row['target_kbps']
  # The quantised time_ae: time_ae's latent (plus the frame its VALID conv drops per crop).
  by_name = {r['name']: r for r in rows}
  assert by_name['time_ae_q']['kbps_nominal'] == pytest.approx(
      by_name['time_ae']['kbps_nominal'], rel=0.01)
  assert by_name['time_ae_q']['base'] == 'time_ae' and by_name['time_ae_q']['kind'] == 'codec'


def test_rows_recompute_from_the_same_clips(study, results, tmp_path):
  clips = clips_of(study, results)
  assert [c.track_id for c in clips] == [c['track_id'] for c in results['clips']]
  rows = results['compression']['rows']
  mp3 = next(r for r in rows if r['family'] == 'mp3')
  decoded = [baselines.mp3(c.audio, c.rate, mp3['target_kbps']).decoded for c in clips]
  values = [metrics.mel_distance(c.audio, rows_lib.as_pcm16(y), c.rate)  # 16-bit, as scored
            for c, y in zip(clips, decoded)]
  assert mp3['metrics']['mel_distance']['mean'] == pytest.approx(np.mean(values), rel=1e-6)
  time_ae = next(r for r in rows if r['name'] == 'time_ae')
  per_clip, info, _ = rd.autoencoder_per_clip(str(study.workdir / 'time_ae'), clips, 0, 0)
  assert time_ae['metrics']['si_sdr']['mean'] == pytest.approx(
      np.mean([p['si_sdr'] for p in per_clip]), rel=1e-4)
  assert time_ae['kbps_nominal'] == pytest.approx(info['kbps_nominal'])
  # The rate-conditioned codec: each operating point's row from files coded at that point.
  seconds = sum(len(c.audio) / c.rate for c in clips)
  for point in codec_points(study):
    codec = next(r for r in rows if r['name'] == f'codec@p{point.index}')
    loaded = model_store.Codec(point)
    sizes = [codec_eval.roundtrip(loaded, c, str(tmp_path))[1] for c in clips]
    assert codec['kbps_measured'] == pytest.approx(8 * sum(sizes) / seconds / 1000)
    assert (codec['point'], codec['points'], codec['curve'], codec['model']) == (
        point.index, 2, 'codec', 'stft_codec')
    assert codec['kbps_validation'] == pytest.approx(point.kbps)
    assert codec['setting'].startswith(f'point {point.index} of 2, .fmac files')


def test_the_codec_points_are_one_curve_against_the_baselines(results):
  rows = results['compression']['rows']
  indices = [i for i, r in enumerate(rows) if r.get('curve') == 'codec']
  assert len(indices) == 2
  curve = [r for r in results['bd_rate']['rows'] if r['codec'] == 'codec (all points)']
  assert {(r['anchor'], r['metric']) for r in curve} == {('mp3', 'mel_distance'),
                                                        ('opus', 'mel_distance')}
  assert all(r['rows'] == indices for r in curve)
  assert {r['name'] for r in results['win_rate']['rows']} >= {rows[i]['name'] for i in indices}


def test_reference_table_keeps_the_published_numbers_beside_ours(results):
  table = results['reference_table']['rows']
  assert [(r['latent_channels'], r['reference_kbps'], r['reference_rmse'])
          for r in table[:5]] == list(rd.REFERENCE_TABLE)
  assert all(r['name'] is None for r in table[:5])
  # Ours: the tiny configs' C = 16 (not in the reference), float and quantised.
  ours = {r['name']: r for r in table[5:]}
  assert sorted(ours) == ['freq_ae C=16', 'freq_ae_q C=16']
  rows = results['compression']['rows']
  for entry in ours.values():
    assert entry['latent_channels'] == 16 and entry['reference_rmse'] is None
    assert entry['seed_spectral_rmse'] == rows[entry['row']]['metrics']['seed_spectral_rmse']
  assert ours['freq_ae C=16']['kbps_measured'] is None
  assert ours['freq_ae_q C=16']['kbps_measured'] > 0


def test_genre_reports_are_consistent(results):
  names = results['dataset']['label_names']
  classifiers = {c['name']: c for c in results['genre']['classifiers']}
  assert classifiers['classifier']['encoder'] == 'time_ae'
  assert classifiers['classifier_mel']['frontend'] == 'logmel'
  for c in classifiers.values():
    run = c['runs'][0]
    for level, n in (('segment', 8 * 5), ('song', 8)):  # 8 test tracks, 5 segments each
      report = run[level]
      confusion = np.array(report['confusion'])
      assert confusion.shape == (len(names), len(names)) and confusion.sum() == n == report['n']
      assert report['accuracy'] == pytest.approx(np.trace(confusion) / n)
    assert c['song_accuracy']['mean'] == run['song']['accuracy']


def test_the_classifier_reads_compressed_files(study, results):
  compressed = results['genre']['compressed']
  assert compressed['status'] == 'done' and compressed['tracks'] == 8
  (row,) = compressed['rows']  # the latent classifier reading the quantised time_ae's files
  assert (row['classifier'], row['codec'], row['split']) == ('classifier', 'time_ae_q', 'test')
  assert row['song']['n'] == 8 and row['segment']['n'] == 8 * 5
  assert row['song_accuracy'] == row['song']['accuracy']
  # The bitrate is that of the files the classifier read: encode the tracks again and count.
  builder = datasets.get_builder('synthetic_music/tiny', data_dir=str(study.data_dir))
  codec = model_store.load(str(study.workdir / 'time_ae_q'))
  n_bytes, seconds = 0, 0.0
  with tempfile.TemporaryDirectory() as tmp:
    for _, _, x in clips_lib.test_tracks(builder):
      audio.write_audio(os.path.join(tmp, 'x.wav'), x, 16000, subtype='FLOAT')
      n_bytes += compress.encode_file(os.path.join(tmp, 'x.wav'), os.path.join(tmp, 'x.fmac'),
                                      codec).bytes
      seconds += len(x) / 16000
  assert row['kbps_measured'] == pytest.approx(8 * n_bytes / seconds / 1000)


def test_latent_projections_and_listening_files(study, results):
  projections = results['latent']['projections']
  assert sorted(p['name'] for p in projections) == ['freq_ae', 'time_ae']  # float latents
  for p in projections:
    assert len(p['pca']['points']) == len(p['tsne']['points']) == len(p['labels']) == p['n'] == 40
  (entry,) = results['listening']  # smoke: one clip
  names = [item['name'] for item in entry['items']]
  points = [f'codec@p{p.index}' for p in codec_points(study)]
  assert names[:7] == ['original', 'freq_ae C=16', 'time_ae', *points, 'freq_ae_q C=16',
                       'time_ae_q']
  assert any(n.startswith('mp3') for n in names) and any(n.startswith('opus') for n in names)
  for item in entry['items']:
    assert (study.workdir / 'eval' / item['path']).stat().st_size > 1000


def test_a_sweep_is_summarised_over_seeds(study, results, tmp_path):
  # Two seeds of one run (copies of the same checkpoint): mean = that run's value, std 0.
  for seed in (0, 1):
    for stage in ('time_ae', 'classifier_mel'):
      shutil.copytree(study.workdir / stage, tmp_path / stage / 'sweep' / f'seed={seed}')
  out = evaluate.evaluate(tmp_path, evaluate.PRESETS['smoke'])
  results_md.write_results_md(tmp_path)  # reporting reads what evaluation wrote
  (row,) = [r for r in out['compression']['rows'] if r['family'] == 'fmacomp']
  assert row['name'] == 'time_ae/sweep' and row['runs'] == ['time_ae/sweep/seed=0',
                                                            'time_ae/sweep/seed=1']
  single = next(r for r in results['compression']['rows'] if r['name'] == 'time_ae')
  mel = row['metrics']['mel_distance']
  assert (mel['n'], mel['over'], mel['std']) == (2, 'seeds', 0.0)
  assert mel['mean'] == pytest.approx(single['metrics']['mel_distance']['mean'], rel=1e-6)
  assert (tmp_path / 'eval' / 'results.md').read_text().count('time_ae/sweep') >= 2
  (mel,) = out['genre']['classifiers']
  single = next(c for c in results['genre']['classifiers'] if c['name'] == 'classifier_mel')
  assert mel['name'] == 'classifier_mel/sweep' and len(mel['runs']) == 2
  assert mel['song_accuracy'] == {'mean': single['song_accuracy']['mean'], 'std': 0.0, 'n': 2,
                                  'over': 'seeds'}


def test_discovery_skips_runs_without_checkpoints(study, tmp_path):
  (tmp_path / 'fresh').mkdir()
  shutil.copy(study.workdir / 'time_ae' / 'config.json', tmp_path / 'fresh' / 'config.json')
  runs, skipped = common.discover_runs(tmp_path)
  assert runs == [] and skipped == [{'workdir': str(tmp_path / 'fresh'),
                                     'reason': 'no checkpoint yet'}]


def test_each_evaluator_is_timed(results):
  assert results['schema_version'] == evaluate.SCHEMA_VERSION == 3
  names = [e.name for e in evaluate.EVALUATORS]
  assert names == ['autoencoders', 'codecs', 'baselines', 'genre', 'compressed_genre', 'latents']
  timing = results['timing_s']
  assert list(timing) == ['setup', *names, 'listening', 'total']
  assert all(t >= 0 for t in timing.values())
  assert sum(timing.values()) - timing['total'] == pytest.approx(timing['total'], rel=0.05)


def test_evaluation_imports_neither_training_nor_reporting():
  # Data flows one way: evaluation restores runs through checkpointing.load_run (not the
  # training tasks) and writes results.json, which reporting reads.
  code = ('import sys; import fmacomp.evaluation.evaluate; print(sorted(m for m in sys.modules '
          "if m.startswith(('fmacomp.reporting', 'fmacomp.training.tasks', "
          "'fmacomp.training.train'))))")
  run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stdout.strip() == '[]'


def test_cli_errors_are_one_line(tmp_path):
  run = subprocess.run([sys.executable, str(EVALUATE), f'--workdir={tmp_path}'],
                       capture_output=True, text=True, timeout=120)
  assert run.returncode == 2 and run.stdout == ''
  assert run.stderr.strip().splitlines()[-1] == (
      f'fmacomp: error: {tmp_path}: no trained run to evaluate (no config.json with checkpoints)')


def test_cli_evaluates_the_named_runs(study, tmp_path):
  # --noreport: results.json and results.md, no report.html.
  run = subprocess.run(
      [sys.executable, str(EVALUATE), f'--workdir={tmp_path}', '--preset=smoke', '--clips=1',
       f'--runs={study.workdir / "time_ae"}', '--noreport'],
      capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stdout.strip().splitlines() == [f'results={tmp_path / "eval" / "results.json"}']
  results = json.loads((tmp_path / 'eval' / 'results.json').read_text())
  assert list(results['runs']) == ['time_ae'] and results['settings']['clips'] == 1
  assert '| time_ae |' in (tmp_path / 'eval' / 'results.md').read_text()
  assert not (tmp_path / 'report').exists()
