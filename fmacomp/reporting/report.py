"""report/report.html: one self-contained page to read and listen to an evaluation.

Everything is embedded (figures as base64 PNG, audio as base64 FLAC data URIs, no script, no
stylesheet or font fetched), so the single file works offline and can be mailed around.

The tables are `fmacomp.reporting.tables`' (the same as results.md's). Every number shown comes
from eval/results.json and carries the path it came from, e.g.
`<span data-key="compression.rows.3.metrics.mel_distance.mean">0.8123</span>`, formatted by
`tables.number`; tests compare the page with the file through these attributes.
"""

import base64
import html
import json
import os

from fmacomp import audio
from fmacomp import files
from fmacomp.reporting import figures
from fmacomp.reporting import tables

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:12px}
.wide{overflow-x:auto}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td{white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;display:block;margin:.5em 0}.note{color:#666;font-size:13px}
.row{display:flex;flex-wrap:wrap;gap:1em}audio{height:32px;width:260px}
"""


def _cell(cell):
  """A table cell's parts as HTML: each number tagged with its results.json path."""
  return ''.join(f'<span data-key="{p.key}">{html.escape(p.text)}</span>'
                 if isinstance(p, tables.Number) else html.escape(p) for p in cell)


def _grid(header, rows):
  """An HTML table: header texts, rows of HTML cells."""
  head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
  body = ''.join('<tr>' + ''.join(f'<td>{c}</td>' for c in r) + '</tr>' for r in rows)
  return f'<table><tr>{head}</tr>{body}</table>'


def _heading(table):
  """A table's title and note."""
  note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ''
  return f'<h{table.level}>{html.escape(table.title)}</h{table.level}>{note}'


def _table(table):
  """A `tables.Table`'s grid (empty when it has no rows), scrolling sideways when wide."""
  if not table.rows:
    return ''
  return (f'<div class="wide">{_grid(table.columns, [[_cell(c) for c in r] for r in table.rows])}'
          '</div>')


def _img(data, alt):
  if data is None:
    return f'<p class="note">{html.escape(alt)}: nothing to plot.</p>'
  encoded = base64.b64encode(data).decode()
  return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _compression(results):
  table = tables.compression(results)
  plots = []
  for metric, label in (('mel_distance', 'mel distance (lower is better)'),
                        ('visqol', 'ViSQOL MOS-LQO (higher is better)')):
    # [(family, name, kbps, value, nominal, (low, high) or None, the network's curve or None)]
    points = []
    for r in results['compression']['rows']:
      kbps, nominal = tables.bitrate(r)
      entry = r['metrics'].get(metric) or {}
      points.append((r['family'], r['name'], kbps, entry.get('mean'), nominal,
                     entry.get('ci95'), r.get('curve')))
    figure = figures.rate_distortion(points, label, label.split(' (')[0])
    missing = ' (not computed: --visqol_clips=0)' if figure is None else ''
    plots.append(_img(figure, f'{label} against kbps{missing}'))
  comparisons = [tables.win_rate(results), tables.bd_rate(results)]
  return [_heading(table), f'<div class="row">{"".join(plots)}</div>', _table(table)] + [
      part for t in comparisons for part in (_heading(t), _table(t))]


def _reference(results):
  table = tables.reference(results)
  return [_heading(table), _table(table)]


def _training(results):
  runs = []
  for name, run in sorted(results['runs'].items()):
    path = os.path.join(run['workdir'], 'metrics.jsonl')
    if os.path.exists(path):
      with open(path) as f:
        runs.append((name, [json.loads(line) for line in f if line.strip()]))
  if not runs:
    return []
  return ['<h2>Training curves</h2>', _img(figures.training_curves(runs), 'training curves')]


def _genre(results):
  genre, labels = results['genre'], results['dataset']['label_names']
  table = tables.classifiers(results)
  parts = [_heading(table), _table(table)]
  for i, c in enumerate(genre['classifiers']):
    run = c['runs'][0]
    per_genre = tables.per_genre(results, i)
    image = _img(figures.confusion(run['song']['confusion'], labels,
                                   f'{c["name"]} (seed {run["seed"]}), songs'), 'confusion matrix')
    parts.append(f'{_heading(per_genre)}<div class="row">{image}{_table(per_genre)}</div>')
  compressed = tables.compressed_genre(results)
  parts.append(_heading(compressed))
  if compressed.rows:
    float_accuracy = {c['name']: c['song_accuracy']['mean'] for c in genre['classifiers']}
    points = [(r['classifier'], r['kbps_measured'], r['song_accuracy'])
              for r in genre['compressed']['rows']]
    parts.append(_img(figures.accuracy_vs_kbps(points, float_accuracy),
                      'song accuracy against the bitrate of the files read'))
    parts.append(_table(compressed))
  return parts


def _latent(results):
  table = tables.latent(results)
  parts = [_heading(table), _table(table)]
  for p in results['latent']['projections']:
    images = ''.join(_img(figures.projection(p[m]['points'], p['labels'], p['label_names'],
                                             f'{p["name"]}: {title}'), f'{title} projection')
                     for m, title in (('pca', 'PCA'), ('tsne', 't-SNE')))
    parts.append(f'<h3>{html.escape(p["name"])} ({p["n"]} points)</h3>'
                 f'<div class="row">{images}</div>')
  return parts


def _kbps(results, row):
  """A row's bitrate as a reader should see it: measured, else nominal (labelled)."""
  kbps, nominal = tables.bitrate(results['compression']['rows'][row])
  key = f'compression.rows.{row}.{"kbps_nominal" if nominal else "kbps_measured"}'
  return _cell((tables.Number(key, tables.number(kbps)),) + ((' (nominal)',) if nominal else ()))


def _listening(results, eval_dir):
  listening = results['listening']
  if not listening:
    return []
  first = listening[0]
  signals = [(item['name'], *audio.read_audio(os.path.join(eval_dir, item['path'])))
             for item in first['items']]  # [(name, float [T], rate)]
  max_hz = first['items'][0]['sample_rate'] / 2
  parts = ['<h2>Spectrograms</h2>', _img(figures.spectrograms(signals, max_hz),
                                         f'spectrograms of clip 0 ({first["track_id"]})'),
           '<h2>Listen</h2>', '<p class="note">Decoded audio, stored losslessly (FLAC); MP3 and '
           "Opus at the ladder points nearest each fmacomp row's bitrate.</p>"]
  for k, entry in enumerate(listening):
    body = []
    for j, item in enumerate(entry['items']):
      with open(os.path.join(eval_dir, item['path']), 'rb') as f:
        data = base64.b64encode(f.read()).decode()
      row = item['row']
      kbps = '' if row is None else _kbps(results, row)
      body.append([html.escape(item['name']), kbps,
                   f'<audio controls preload="metadata" data-item="{k}.{j}" '
                   f'src="data:audio/flac;base64,{data}"></audio>'])
    parts.append(f'<h3>Clip {k}: {html.escape(entry["track_id"])} '
                 f'({html.escape(str(entry["label"]))})</h3>' + _grid(['', 'kbps', ''], body))
  return parts


def render(results, eval_dir):
  """The report's HTML for `results` (audio files are read from `eval_dir`)."""
  dataset = results['dataset']
  parts = [f'<h1>fmacomp study: {html.escape(dataset["name"])}</h1>',
           f'<p class="note">{len(results["runs"])} runs evaluated on the {dataset["split"]} '
           f'split (storage rate {dataset["storage_rate"]} Hz); numbers from '
           f'<code>eval/results.json</code>.</p>']
  for section in (_compression, _reference, _training, _genre, _latent):
    parts += section(results)
  parts += _listening(results, eval_dir)
  return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
          '<link rel="icon" href="data:,"><title>fmacomp report</title>'
          f'<style>{_CSS}</style></head><body>{"".join(parts)}</body></html>\n')


def write_report(workdir):
  """Writes `<workdir>/report/report.html` from `<workdir>/eval/results.json`; returns its path."""
  results = tables.read_results(workdir)
  out = os.path.join(os.path.abspath(workdir), 'report', 'report.html')
  files.write_text_atomic(out, render(results, tables.eval_dir(workdir)))
  return out
