"""The report in a real browser: headless Chromium opens report.html from the smoke study.

Checks: no console errors; exactly the listening clips' audio elements, each with a finite
duration once its metadata loads; every image decoded (naturalWidth > 0); every number shown
equals eval/results.json; a screenshot is saved. Under CI=true a missing Chromium fails the
test; elsewhere it skips with that reason.
"""

import json
import math
import os
import shutil

import pytest

from fmacomp.reporting import report
from fmacomp.reporting.results_md import number

from tests import browser
from tests import smoke_study

DURATIONS_JS = """Promise.all([...document.querySelectorAll('audio')].map(a =>
  a.readyState >= 1 ? a.duration : new Promise(done => {
    a.addEventListener('loadedmetadata', () => done(a.duration));
    a.addEventListener('error', () => done('error ' + (a.error && a.error.message)));
    setTimeout(() => done('timeout'), 20000);
  })))"""
NUMBERS_JS = "[...document.querySelectorAll('[data-key]')].map(e => [e.dataset.key, e.textContent])"


@pytest.fixture(name='chromium')
def chromium_fixture():
  path = browser.find_chromium()
  if path is None:
    if os.environ.get('CI') == 'true':
      pytest.fail('chromium is not installed (CI installs it with apt in .ci/run)')
    pytest.skip('chromium is not installed (apt-get install chromium)')
  return path


@pytest.fixture(name='study')
def study_fixture(tmp_path_factory):
  return smoke_study.get(tmp_path_factory)


def test_report_in_headless_chromium(study, chromium, tmp_path):
  results = json.loads((study.workdir / 'eval' / 'results.json').read_text())
  page = browser.Browser(chromium, tmp_path / 'profile')
  try:
    page.open((study.workdir / 'report' / 'report.html').as_uri())
    durations = page.evaluate(DURATIONS_JS)
    widths = page.evaluate('[...document.images].map(i => i.naturalWidth)')
    shown = page.evaluate(NUMBERS_JS)
    page.screenshot(tmp_path / 'report.png')
    assert page.errors() == []
  finally:
    page.close()
  expected_audio = sum(len(entry['items']) for entry in results['listening'])
  assert expected_audio >= 4  # original, 2 autoencoders, MP3 and Opus at least
  assert len(durations) == expected_audio
  clip_s = results['settings']['clip_s']
  for d in durations:
    assert isinstance(d, (int, float)) and math.isfinite(d) and abs(d - clip_s) < 0.1, durations
  assert len(widths) >= 8 and all(w > 0 for w in widths), widths
  assert len(shown) > 50
  for key, text in shown:
    assert text == number(report.lookup(results, key)), key
  shots = study.workdir / 'report' / 'screenshot.png'
  shutil.copy(tmp_path / 'report.png', shots)  # kept beside the report for a person to look at
  assert (tmp_path / 'report.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_every_number_of_the_results_tables_is_tagged(study):
  html = (study.workdir / 'report' / 'report.html').read_text()
  results = json.loads((study.workdir / 'eval' / 'results.json').read_text())
  for i, row in enumerate(results['compression']['rows']):
    for metric in ('mel_distance', 'seed_spectral_rmse'):
      key = f'compression.rows.{i}.metrics.{metric}.mean'
      assert f'data-key="{key}">{number(row["metrics"][metric]["mean"])}<' in html
  assert 'http://' not in html and 'https://' not in html  # nothing fetched from the network


def test_lookup_follows_lists_and_dicts():
  results = {'a': [{'b': 1.5}, {'b': None}]}
  assert report.lookup(results, 'a.0.b') == 1.5 and report.lookup(results, 'a.1.b') is None
  with pytest.raises(KeyError):
    report.lookup(results, 'a.0.c')
