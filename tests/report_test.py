"""The report in a real browser: headless Chromium opens report.html from the smoke study.

Checks: no console errors; exactly the listening clips' audio elements, each with a finite
duration once its metadata loads; every image decoded (naturalWidth > 0); every number shown
equals eval/results.json, and every table of eval/results.md is on the page cell for cell; a
screenshot is saved. Under CI=true a missing Chromium fails the test; elsewhere it skips with
that reason. Without a browser: every number of results.md's tables equals results.json.
"""

import html.parser
import json
import math
import os
import shutil

import pytest

from fmacomp.reporting import results_md
from fmacomp.reporting import tables
from fmacomp.reporting.tables import number

from tests import browser
from tests import smoke_study

DURATIONS_JS = """Promise.all([...document.querySelectorAll('audio')].map(a =>
  a.readyState >= 1 ? a.duration : new Promise(done => {
    a.addEventListener('loadedmetadata', () => done(a.duration));
    a.addEventListener('error', () => done('error ' + (a.error && a.error.message)));
    setTimeout(() => done('timeout'), 20000);
  })))"""
NUMBERS_JS = "[...document.querySelectorAll('[data-key]')].map(e => [e.dataset.key, e.textContent])"
TABLES_JS = ("[...document.querySelectorAll('table')].map(t => [...t.rows].map(r => "
             '[...r.cells].map(c => c.textContent)))')


def markdown_tables(text):
  """The tables of a Markdown file: [[header cells], [row cells], ...] each."""
  found, current = [], None
  for line in text.splitlines() + ['']:
    if line.startswith('|'):
      cells = [c.strip().replace('\\|', '|') for c in line.strip('|').split(' | ')]
      if current is None:
        current = [cells]
      elif not set(line) <= set('|-'):  # not the |---| rule under the header
        current.append(cells)
    elif current is not None:
      found.append(current)
      current = None
  return found


class _HtmlTables(html.parser.HTMLParser):
  """The text of every table cell of a page, as TABLES_JS reads it in a browser."""

  def __init__(self):
    super().__init__()
    self.tables, self._cell = [], None

  def handle_starttag(self, tag, attrs):
    if tag == 'table':
      self.tables.append([])
    elif tag == 'tr':
      self.tables[-1].append([])
    elif tag in ('td', 'th'):
      self._cell = []

  def handle_endtag(self, tag):
    if tag in ('td', 'th'):
      self.tables[-1][-1].append(''.join(self._cell))
      self._cell = None

  def handle_data(self, data):
    if self._cell is not None:
      self._cell.append(data)


def html_tables(page):
  parser = _HtmlTables()
  parser.feed(page)
  return parser.tables


def expected_cells(results, table):
  """A table's header and cells, each number re-read from results.json through its key."""
  rows = [[''.join(number(tables.lookup(results, p.key)) if isinstance(p, tables.Number) else p
                   for p in cell) for cell in row] for row in table.rows]
  return [list(table.columns)] + rows


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
    shown_tables = page.evaluate(TABLES_JS)
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
    assert text == number(tables.lookup(results, key)), key
  # results.md and the page render the same tables: each of the file's is on the page.
  md_tables = markdown_tables((study.workdir / 'eval' / 'results.md').read_text())
  assert len(md_tables) >= 6
  for table in md_tables:
    assert table in shown_tables, table[0]
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
  # Each table is defined once (reporting.tables): results.md's are on the page, cell for cell.
  md_tables = markdown_tables((study.workdir / 'eval' / 'results.md').read_text())
  page_tables = html_tables(html)
  assert len(md_tables) >= 6
  for table in md_tables:
    assert table in page_tables, table[0]


def test_every_number_of_results_md_equals_results_json(study):
  results = json.loads((study.workdir / 'eval' / 'results.json').read_text())
  md = (study.workdir / 'eval' / 'results.md').read_text()
  assert md == results_md.format_results(results)  # written from this results.json
  defined = [t for t in tables.all_tables(results) if t.rows]
  assert markdown_tables(md) == [expected_cells(results, t) for t in defined]
  keys = [p.key for t in defined for row in t.rows for cell in row for p in cell
          if isinstance(p, tables.Number)]
  assert len(keys) > 50
  for i, row in enumerate(results['compression']['rows']):
    assert f'compression.rows.{i}.metrics.mel_distance.mean' in keys
    assert f'| {row["name"]} | {row["setting"]} |' in md


def test_lookup_follows_lists_and_dicts():
  results = {'a': [{'b': 1.5}, {'b': None}]}
  assert tables.lookup(results, 'a.0.b') == 1.5 and tables.lookup(results, 'a.1.b') is None
  with pytest.raises(KeyError):
    tables.lookup(results, 'a.0.c')
