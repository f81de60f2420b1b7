"""launch/prepare.py as a user runs it: the table on stdout, reuse, and one-line errors."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

PREPARE = pathlib.Path(__file__).resolve().parents[2] / 'launch' / 'prepare.py'
TIMEOUT_S = 180


def run_prepare(*args):
  return subprocess.run([sys.executable, str(PREPARE), *map(str, args)], capture_output=True,
                        text=True, timeout=TIMEOUT_S, env=dict(os.environ, TFDS_DATA_DIR=''))


def write_tone(path, seconds, rate=16000, freq=440.0):
  path.parent.mkdir(parents=True, exist_ok=True)
  t = np.arange(int(seconds * rate)) / rate
  sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


@pytest.fixture(name='music')
def music_fixture(tmp_path):
  """Three 5.5 s tracks in two labelled sub-folders (one per split) and a too-short one."""
  music = tmp_path / 'music'
  write_tone(music / 'folk' / 'a.wav', 5.5, freq=220)
  write_tone(music / 'folk' / 'b.flac', 5.5, freq=330)
  write_tone(music / 'drone' / 'c.wav', 5.5, freq=110)
  write_tone(music / 'drone' / 'short.wav', 2.0)  # under the 5 s min_duration_s
  (music / 'splits.json').write_text(json.dumps({
      'train': ['folk/a.wav', 'drone/short.wav'], 'validation': ['folk/b.flac'],
      'test': ['drone/c.wav']}))
  return music


def test_prepare_prints_the_table_then_reuses_the_build(tmp_path, music):
  data = tmp_path / 'data'
  first = run_prepare('--dataset=music_folder/16k', f'--manual_dir={music}', f'--data_dir={data}')
  assert first.returncode == 0, first.stderr
  rows = [line.split() for line in first.stdout.splitlines()]
  assert ['storage_rate', '16000', 'Hz'] in rows
  assert ['train', '1', '1', f'{5.5 / 3600:.3f}'] in rows
  assert ['total', '3', '3', f'{16.5 / 3600:.3f}'] in rows
  assert ['folk', '1', '1', '0', '2', f'{11 / 3600:.3f}'] in rows
  assert ['skipped', '1', 'file(s)'] in rows
  assert 'short.wav' in first.stdout and 'too short' in first.stdout
  records = sorted(data.glob('music_folder/*_16k/1.1.0/*.array_record*'))
  assert len(records) == 3
  mtimes = [r.stat().st_mtime_ns for r in records]

  second = run_prepare('--dataset=music_folder/16k', f'--manual_dir={music}', f'--data_dir={data}')
  assert second.returncode == 0, second.stderr
  assert second.stdout == first.stdout
  assert [r.stat().st_mtime_ns for r in records] == mtimes  # reused, not rebuilt
  assert 'Downloading and preparing' not in second.stderr + second.stdout


def test_overwrite_rebuilds(tmp_path, music):
  data = tmp_path / 'data'
  assert run_prepare('--dataset=music_folder/16k', f'--manual_dir={music}',
                     f'--data_dir={data}').returncode == 0
  (music / 'splits.json').write_text(json.dumps({
      'train': ['folk/a.wav', 'folk/b.flac'], 'test': ['drone/c.wav']}))
  again = run_prepare('--dataset=music_folder/16k', f'--manual_dir={music}', f'--data_dir={data}',
                      '--overwrite')
  assert again.returncode == 0, again.stderr
  rows = [line.split() for line in again.stdout.splitlines()]
  assert ['train', '2', '2', f'{11 / 3600:.3f}'] in rows
  assert not any(row[:1] == ['validation'] for row in rows)


@pytest.mark.parametrize('case', ['missing_manual_dir', 'unknown_dataset', 'no_audio',
                                  'missing_folder'])
def test_errors_are_one_line_and_exit_2(tmp_path, case):
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'notes.txt').write_text('no audio here')
  args = {
      'missing_manual_dir': ['--dataset=music_folder'],
      'unknown_dataset': ['--dataset=no_such_dataset', f'--manual_dir={empty}'],
      'no_audio': ['--dataset=music_folder', f'--manual_dir={empty}'],
      'missing_folder': ['--dataset=music_folder', f'--manual_dir={tmp_path / "nope"}'],
  }[case]
  result = run_prepare(*args, f'--data_dir={tmp_path / "data"}')
  assert result.returncode == 2
  assert result.stdout == ''
  lines = result.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith('fmacomp: error: '), result.stderr
  expected = {'missing_manual_dir': '--manual_dir', 'unknown_dataset': 'no_such_dataset',
              'no_audio': str(empty), 'missing_folder': str(tmp_path / 'nope')}[case]
  assert lines[0].startswith(f'fmacomp: error: {expected}: ')
  assert not (tmp_path / 'data').exists()  # nothing half-built


def test_workers_write_the_same_build(tmp_path, music):
  """--workers=2 (a spawn pool, one task per shard) prints and stores what one process does."""
  builds = {}
  for workers in (1, 2):
    data = tmp_path / f'data{workers}'
    result = run_prepare('--dataset=music_folder/16k', f'--manual_dir={music}',
                         f'--data_dir={data}', f'--workers={workers}')
    assert result.returncode == 0, result.stderr
    files = sorted(data.glob('music_folder/*_16k/1.1.0/*'))
    builds[workers] = (result.stdout.replace(str(data), 'DATA'),
                       {f.name: f.read_bytes() for f in files
                        if '.array_record' in f.name or f.name == 'skipped.json'})
  assert builds[1] == builds[2]
  assert len([n for n in builds[2][1] if '.array_record' in n]) == 3
