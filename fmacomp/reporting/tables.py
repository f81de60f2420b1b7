"""The results tables, each defined once: results.json -> `Table`s for results.md and the report.

A `Table` is a title, a note, column headers and rows of cells; a cell is a sequence of parts,
each plain text or a `Number` (a value of results.json with its path, e.g.
`compression.rows.3.metrics.mel_distance.mean`, as `number` shows it). `results_md` renders a
table as Markdown and `report` as HTML, where each number carries its path (`data-key`), so the
two files show the same text and a test can check every number against results.json.

This module reads results.json only: it imports nothing from evaluation.
"""

import dataclasses
import json
import os

from fmacomp import errors

# The metric columns of the rate-distortion table, in DESIGN.md's order.
METRICS = ('seed_spectral_rmse', 'mel_distance', 'log_spectral_distance', 'si_sdr', 'visqol')


def eval_dir(workdir):
  return os.path.join(os.path.abspath(workdir), 'eval')


def read_results(workdir):
  """The evaluation's results.json (`<workdir>/eval/results.json`)."""
  path = os.path.join(eval_dir(workdir), 'results.json')
  if not os.path.exists(path):
    raise errors.InputError(path, 'no evaluation results (run launch/evaluate.py first)')
  with open(path) as f:
    return json.load(f)


def number(value):
  """A number as shown to readers: '%.4g', or 'n/a' for None."""
  return 'n/a' if value is None else f'{value:.4g}'


def lookup(results, key):
  """The value at a path of results.json ('a.b.3.c'; integer parts index lists)."""
  value = results
  for part in key.split('.'):
    value = value[int(part)] if isinstance(value, list) else value[part]
  return value


@dataclasses.dataclass(frozen=True)
class Number:
  """A number shown in a table: its results.json path and its text (`number`)."""
  key: str
  text: str


@dataclasses.dataclass(frozen=True)
class Table:
  """One results table.

  Attributes:
    title: its heading.
    note: what its numbers are (plain text; may be empty).
    columns: header texts.
    rows: rows of cells; a cell is a tuple of parts, each a str or a `Number`. A table without
      rows is shown as its title and note only.
    level: its heading's level (2: a section, 3: part of the section before it).
  """
  title: str
  note: str
  columns: tuple
  rows: list
  level: int = 2


def text(cell):
  """A cell's text, as both renderers show it."""
  return ''.join(p.text if isinstance(p, Number) else p for p in cell)


def _num(results, key):
  return (Number(key, number(lookup(results, key))),)


def _stat(results, key):
  """A metrics record: 'mean [low, high]' (95 % interval over clips' tracks), 'mean ± std
  (n seeds)' over seeds, or 'n/a'."""
  entry = lookup(results, key)
  if entry is None:
    return ('n/a',)
  cell = _num(results, f'{key}.mean')
  if entry.get('ci95') is not None:
    if entry['n'] > 1:
      cell += (' [',) + _num(results, f'{key}.ci95.0') + (', ',) + _num(
          results, f'{key}.ci95.1') + (']',)
  elif entry['n'] > 1:
    cell += (' ± ',) + _num(results, f'{key}.std')
    if entry['over'] == 'seeds':
      cell += (f' ({entry["n"]} seeds)',)
  return cell


def bitrate(row):
  """(kbps, nominal) a compression row is plotted at: measured where a file exists."""
  if row['kbps_measured'] is not None:
    return row['kbps_measured'], False
  return row['kbps_nominal'], True


def compression(results):
  settings = results['settings']
  per_track = settings.get('clips_per_track', 1)
  note = (f'Test split; {len(results["clips"])} clips of {settings["clip_s"]:g} s '
          f'({per_track} per track). Each value is the mean over clips with its bootstrap 95 % '
          'interval resampling tracks in brackets (or mean ± std over seeds for sweeps); every '
          'output is scored as 16-bit PCM; ViSQOL on the first '
          f'{settings["visqol_clips"]} clips. kbps (measured) = bytes of a real file (MP3, Opus, '
          ".fmac with its header) x 8 / seconds; kbps (nominal) = the reference's accounting "
          '(16 bits per float latent value, or per kept sample for resampling), not a file.')
  if any(r.get('point') is not None for r in results['compression']['rows']):
    note += (' A rate-conditioned codec (one network, several bitrates) has a row per operating '
             'point, "<run>@p<i>", each from files coded at that point.')
  key = 'compression.rows.{}'.format
  rows = [((r['name'],), (r.get('setting', ''),), _num(results, key(i) + '.kbps_nominal'),
           _num(results, key(i) + '.kbps_measured'),
           *(_stat(results, f'{key(i)}.metrics.{m}') for m in METRICS))
          for i, r in enumerate(results['compression']['rows'])]
  return Table('Rate-distortion (test split)', note,
               ('row', 'setting', 'kbps (nominal)', 'kbps (measured)') + METRICS, rows)


def win_rate(results):
  """On how many clips each measured fmacomp row beats MP3 and Opus at its bitrate."""
  section = results.get('win_rate') or {'pairing': '', 'rows': []}
  key = 'win_rate.rows.{}.'.format
  rows = [((r['name'],), (r['baseline'],), (r['metric'],), _num(results, key(i) + 'kbps'),
           _num(results, key(i) + 'wins') + (' of ',) + _num(results, key(i) + 'n'),
           _num(results, key(i) + 'rate'))
          for i, r in enumerate(section['rows'])]
  note = f'Paired by clip; the baseline is taken {section["pairing"]}.'
  return Table('Win rate against MP3 and Opus (test split)', note,
               ('fmacomp row', 'baseline', 'metric', 'kbps (measured)', 'clips won',
                'win rate'), rows, level=3)


def bd_rate(results):
  """BD-rate of each fmacomp curve against MP3 and Opus; n/a with the reason where undefined."""
  section = results.get('bd_rate') or {'method': '', 'rows': []}
  key = 'bd_rate.rows.{}.'.format
  rows = []
  for i, r in enumerate(section['rows']):
    value = (_num(results, key(i) + 'bd_rate') + (' %',) if r['bd_rate'] is not None
             else (f'n/a ({r["reason"]})',))
    equal = (_num(results, key(i) + 'equal_quality_kbps') if 'equal_quality_kbps' in r
             else ('-',))
    rows.append(((r['codec'],), (r['anchor'],), (r['metric'],), value, equal))
  return Table('BD-rate against MP3 and Opus (test split)', section['method'],
               ('fmacomp', 'anchor', 'metric', 'BD-rate (bits, at equal quality)',
                "anchor's kbps at fmacomp's quality (single point)"), rows, level=3)


def reference(results):
  table = results['reference_table']
  key = 'reference_table.rows.{}.'.format
  rows = [(_num(results, key(i) + 'latent_channels'), _num(results, key(i) + 'reference_kbps'),
           _num(results, key(i) + 'reference_rmse'), (r['name'] or '-',),
           _num(results, key(i) + 'kbps_nominal'), _num(results, key(i) + 'kbps_measured'),
           _stat(results, key(i) + 'seed_spectral_rmse'))
          for i, r in enumerate(table['rows'])]
  note = (f'Reference: {table["source"]}. Ours: this dataset, its test split, the nominal kbps '
          'computed the same way.')
  return Table("The reference's table beside fmacomp's (freq_ae)", note,
               ('C', 'reference kbps (nominal)', 'reference spectral RMSE', 'ours',
                'ours kbps (nominal)', 'ours kbps (measured)', 'ours seed spectral RMSE'), rows)


def classifiers(results):
  key = 'genre.classifiers.{}.'.format
  rows = [((c['name'],), (c['frontend'],), (c['encoder'] or '-',),
           _stat(results, key(i) + 'segment_accuracy'), _stat(results, key(i) + 'song_accuracy'))
          for i, c in enumerate(results['genre']['classifiers'])]
  note = ('Segment accuracy counts every one of the evenly spaced segments of each track; song '
          'accuracy votes over them (ties: summed probabilities). The reference reported 45 % '
          '(vote) and 42 % (one segment) on FMA small.')
  return Table('Genre (test split)', note, ('classifier', 'frontend', 'encoder',
                                            'segment accuracy', 'song accuracy (vote)'), rows)


def per_genre(results, index):
  """Song-level precision and recall per genre of one classifier group's first run."""
  classifier = results['genre']['classifiers'][index]
  run = classifier['runs'][0]
  key = f'genre.classifiers.{index}.runs.0.song.per_class.{{}}.'.format
  rows = [((p['label'],), _num(results, key(j) + 'precision'), _num(results, key(j) + 'recall'),
           _num(results, key(j) + 'support')) for j, p in enumerate(run['song']['per_class'])]
  return Table(f'{classifier["name"]} ({run["run"]}, seed {run["seed"]}): per genre (song level)',
               '', ('genre', 'precision', 'recall', 'tracks'), rows, level=3)


def compressed_genre(results):
  """The classifiers reading compressed files (no rows while pending: the note says why)."""
  compressed = results['genre']['compressed']
  key = 'genre.compressed.rows.{}.'.format
  rows = [((r['name'],), *(_num(results, key(j) + k) for k in
                           ('kbps_measured', 'segment_accuracy', 'song_accuracy')))
          for j, r in enumerate(compressed['rows'])]
  note = ('Each test track compressed whole to a .fmac file; the classifier reads its '
          'entropy-decoded, dequantised latent (no decoder, no audio).')
  if compressed['status'] == 'pending':
    note = f'Pending: {compressed["reason"]}.'
  return Table('Accuracy from compressed files', note,
               ('classifier reading files of', 'kbps (measured)', 'segment accuracy',
                'song accuracy'), rows, level=3)


def latent(results):
  key = 'latent.projections.{}.'.format
  rows = [((p['name'],), _num(results, key(i) + 'n'),
           _num(results, key(i) + 'pca.neighbour_agreement'),
           _num(results, key(i) + 'tsne.neighbour_agreement'))
          for i, p in enumerate(results['latent']['projections'])]
  note = ("Test segments, each latent averaged over frames; agreement = fraction of each point's "
          '5 nearest neighbours with its genre, in each projection.')
  return Table('Latent space (test split)', note,
               ('autoencoder', 'points', 'PCA agreement', 't-SNE agreement'), rows)


def all_tables(results):
  """Every table of results.json, in the order both documents show them."""
  tables = [compression(results), win_rate(results), bd_rate(results), reference(results),
            classifiers(results)]
  tables += [per_genre(results, i) for i in range(len(results['genre']['classifiers']))]
  return tables + [compressed_genre(results), latent(results)]
