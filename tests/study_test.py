"""The main job end to end: `launch/main.py --smoke` trains, evaluates, reports and resumes."""

import json

import pytest

from fmacomp import study as study_lib

from tests import smoke_study

STAGES = ('time_ae', 'freq_ae', 'time_ae_q', 'freq_ae_q', 'codec', 'classifier',
          'classifier_mel')


@pytest.fixture(name='study')
def study_fixture(tmp_path_factory):
  return smoke_study.get(tmp_path_factory)


def test_smoke_study_runs_every_stage_and_ends_with_the_report(study):
  lines = study.run.stdout.strip().splitlines()
  report = study.workdir / 'report' / 'report.html'
  assert lines[-1] == f'report={report}'
  assert report.stat().st_size > 10_000
  assert lines[0].split()[:2] == ['dataset', 'synthetic_music/tiny']  # the summary comes first
  assert ['test', '8', '8', '0.013'] in [line.split() for line in lines]
  for stage in STAGES:
    assert any(line.startswith(f'stage={stage} ') for line in lines), stage
    assert (study.workdir / stage / 'DONE').read_text().startswith('params_checksum=')
  assert f'stage=evaluate results={study.workdir / "eval" / "results.json"}' in lines
  for stage in ('data', *STAGES, 'evaluate', 'report'):
    assert f'] {stage}' in study.run.stderr  # a progress line per stage, with its budget
  summary = json.loads((study.workdir / 'study.json').read_text())
  assert summary['size'] == 'smoke' and set(summary['timing_s']) >= set(STAGES)
  results = json.loads((study.workdir / 'eval' / 'results.json').read_text())
  assert sorted(results['runs']) == sorted(STAGES)
  # The report stage renders results.json: its tables as Markdown too.
  assert (study.workdir / 'eval' / 'results.md').read_text().startswith(
      '# fmacomp evaluation: synthetic_music/tiny')
  # About 2 minutes on an idle 2-core machine; the bound leaves room for a shared one.
  assert study.seconds < 400


def test_rerunning_resumes_without_training_or_evaluating_again(study):
  watched = [study.workdir / s / 'metrics.jsonl' for s in STAGES] + [
      study.workdir / 'eval' / 'results.json', study.workdir / 'report' / 'report.html']
  before = [p.stat().st_mtime_ns for p in watched]
  again = smoke_study.run_main(study.workdir, study.data_dir, '--smoke')
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.strip().splitlines()[-1] == study.run.stdout.strip().splitlines()[-1]
  assert [p.stat().st_mtime_ns for p in watched] == before
  assert again.stderr.count('already done, skipped') == len(STAGES) + 2
  timings = json.loads((study.workdir / 'study.json').read_text())['timing_s']
  assert all(timings[s] > 0.5 for s in STAGES)  # the times of the run that trained them


def test_another_size_in_the_same_workdir_is_refused(study):
  run = smoke_study.run_main(study.workdir, study.data_dir)  # quick, over smoke's stages
  assert run.returncode == 2 and 'report=' not in run.stdout
  assert run.stderr.strip().splitlines()[-1] == (
      f'fmacomp: error: {study.workdir / "time_ae"}: holds a run of another config (another '
      'size or dataset?); use a new --workdir')


def test_smoke_and_full_together_is_a_usage_error(tmp_path):
  run = smoke_study.run_main(tmp_path / 'w', tmp_path / 'd', '--smoke', '--full')
  assert run.returncode == 2 and run.stdout == ''
  assert run.stderr.strip() == 'fmacomp: error: --smoke/--full: choose at most one'


def test_full_study_trains_every_reference_latent_size():
  names = [s.name for s in study_lib.stages('full')]
  assert names == ['time_ae'] + [f'freq_ae_c{c}{q}' for c in (512, 256, 128, 64, 32)
                                 for q in ('', '_q')] + list(STAGES[2:3] + STAGES[4:])
  config = study_lib.stage_config(study_lib.stages('full')[7], 'full', '/w', 'fma/small')
  assert config.model.latent_channels == 64 and config.data.name == 'fma/small'
  quantised = study_lib.stage_config(study_lib.stages('full')[8], 'full', '/w', 'fma/small')
  assert (quantised.model.base, quantised.model.base_kwargs.latent_channels,
          quantised.ae_workdir) == ('freq_ae', 64, '/w/freq_ae_c64')
  assert [s.name for s in study_lib.stages('quick')] == list(STAGES)
  # Quick fine-tuning: a tenth of the autoencoder's steps, from its checkpoint.
  quick = study_lib.stage_config(study_lib.stages('quick')[2], 'quick', '/w', 'synthetic_music')
  assert (quick.steps, quick.ae_workdir) == (30, '/w/time_ae')


def test_the_codec_stage_is_the_rate_conditioned_codec_at_the_datasets_rate():
  (stage,) = [s for s in study_lib.stages('quick') if s.name == 'codec']
  quick = study_lib.stage_config(stage, 'quick', '/w', 'synthetic_music', rate=44100)
  assert (quick.model.name, quick.model.num_points, quick.sample_rate) == ('stft_codec', 5, 44100)
  assert quick.model.n_fft == 2048 and quick.data.name == 'synthetic_music'
  # A 16 kHz build: the codec runs at 16 kHz, frames of about the same duration (16 ms).
  low = study_lib.stage_config(stage, 'quick', '/w', 'synthetic_music/default_16k', rate=16000)
  assert (low.sample_rate, low.model.sample_rate, low.model.n_fft, low.model.hop_samples) == (
      16000, 16000, 1024, 256)
  assert low.crop_s == pytest.approx(quick.crop_s * (256 / 16000) / (512 / 44100))
  assert low.steps == quick.steps
  smoke = study_lib.stage_config(stage, 'smoke', '/w', 'synthetic_music/tiny', rate=16000)
  assert (smoke.sample_rate, smoke.model.num_points) == (16000, 2)
  # Full: the config's own model, but a study stage ends (the config alone runs until cut).
  full = study_lib.stage_config(stage, 'full', '/w', 'fma/small', rate=44100)
  assert (full.steps, full.batch_size, full.model.width) == (200_000, 16, 256)
