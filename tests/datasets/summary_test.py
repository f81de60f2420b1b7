"""The prepare table: examples and hours per split and label, skipped files, from real records."""

import json
import pathlib

import numpy as np
import pytest
import soundfile as sf

from fmacomp.datasets import music_folder
from fmacomp.datasets import summary

RATE = 8000


def write_tone(path, seconds, rate=RATE):
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  t = np.arange(int(round(seconds * rate))) / rate
  sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


@pytest.fixture(name='built')
def built_fixture(tmp_path):
  """A folder of 2 labels, 3 splits, one 65 s track (3 records), one too-short file."""
  music = tmp_path / 'music'
  seconds = {'rock/a.wav': 65, 'rock/b.wav': 2, 'jazz/c.wav': 4, 'jazz/d.wav': 3,
             'jazz/short.wav': 0.5}
  for rel, s in seconds.items():
    write_tone(music / rel, s)
  (music / 'splits.json').write_text(json.dumps({
      'train': ['rock/a.wav', 'jazz/c.wav'], 'validation': ['rock/b.wav', 'jazz/short.wav'],
      'test': ['jazz/d.wav']}))
  config = music_folder.config_for_folder(music, storage_rate=RATE, min_duration_s=1.0)
  builder = music_folder.MusicFolder(config=config, data_dir=tmp_path / 'data',
                                     file_format='array_record')
  builder.download_and_prepare(file_format='array_record')
  return builder


def test_summary_counts_examples_and_hours(built):
  s = summary.summarize(built)
  assert s['storage_rate'] == RATE
  assert s['dataset'] == 'music_folder' and s['config'] == built.builder_config.name
  assert list(s['splits']) == ['train', 'validation', 'test']
  train, validation, test = (s['splits'][k] for k in ('train', 'validation', 'test'))
  assert (train['examples'], train['tracks']) == (4, 2)  # a.wav in 3 records + c.wav
  assert (validation['examples'], validation['tracks']) == (1, 1)  # short.wav skipped
  assert (test['examples'], test['tracks']) == (1, 1)
  assert train['hours'] == pytest.approx((65 + 4) / 3600)
  assert validation['hours'] == pytest.approx(2 / 3600)
  assert train['labels'] == {'jazz': {'examples': 1, 'hours': pytest.approx(4 / 3600)},
                             'rock': {'examples': 3, 'hours': pytest.approx(65 / 3600)}}
  assert s['labels']['rock'] == {'examples': 4, 'hours': pytest.approx(67 / 3600)}
  assert s['labels']['jazz'] == {'examples': 2, 'hours': pytest.approx(7 / 3600)}
  assert [x['track_id'] for x in s['skipped']] == ['jazz/short.wav']
  assert 'too short' in s['skipped'][0]['reason']


def test_format_summary_shows_the_numbers(built):
  text = summary.format_summary(summary.summarize(built))
  lines = text.splitlines()
  assert lines[0].startswith('dataset       music_folder/' + built.builder_config.name)
  assert f'storage_rate  {RATE} Hz' in lines
  assert ['train', '4', '2', f'{69 / 3600:.3f}'] in [l.split() for l in lines]
  assert ['total', '6', '4', f'{74 / 3600:.3f}'] in [l.split() for l in lines]
  # label rows: examples in train / validation / test, then all examples and hours
  assert ['rock', '3', '1', '0', '4', f'{67 / 3600:.3f}'] in [l.split() for l in lines]
  assert ['jazz', '1', '0', '1', '2', f'{7 / 3600:.3f}'] in [l.split() for l in lines]
  assert 'skipped       1 file(s)' in lines
  assert any(l.strip().startswith(str(built.builder_config.folder)) and 'short.wav' in l
             for l in lines)
