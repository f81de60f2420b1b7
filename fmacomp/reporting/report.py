"""report/report.html: one self-contained page to read and listen to an evaluation.

Everything is embedded (figures as base64 PNG, audio as base64 FLAC data URIs, no script, no
stylesheet or font fetched), so the single file works offline and can be mailed around.

Every number shown comes from eval/results.json and carries the path it came from, e.g.
`<span data-key="compression.rows.3.metrics.mel_distance.mean">0.8123</span>`, formatted by
`results_md.number`; tests compare the page with the file through these attributes.
"""

import base64
import html
import json
import os

from fmacomp import audio
from fmacomp import errors
from fmacomp.evaluation import rate_distortion as rd
from fmacomp import files
from fmacomp.reporting import figures
from fmacomp.reporting.results_md import COLUMNS
from fmacomp.reporting.results_md import number

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:12px}
.wide{overflow-x:auto}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td{white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;display:block;margin:.5em 0}.note{color:#666;font-size:13px}
.row{display:flex;flex-wrap:wrap;gap:1em}audio{height:32px;width:260px}
"""


def lookup(results, key):
  """The value at a data-key path ('a.b.3.c'; integer parts index lists)."""
  value = results
  for part in key.split('.'):
    value = value[int(part)] if isinstance(value, list) else value[part]
  return value


def _num(results, key):
  """A number as shown, tagged with its results.json path."""
  return f'<span data-key="{key}">{number(lookup(results, key))}</span>'


def _stat(results, key):
  """A {'mean', 'std', 'n', 'over'} record: 'mean ± std (n over)', or 'n/a'."""
  entry = lookup(results, key)
  if entry is None:
    return 'n/a'
  text = _num(results, f'{key}.mean')
  if entry['n'] > 1:
    text += f' ± {_num(results, key + ".std")}'
    if entry['over'] == 'seeds':
      text += f' <small>({entry["n"]} seeds)</small>'
  return text


def _table(header, rows):
  head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
  body = ''.join('<tr>' + ''.join(f'<td>{c}</td>' for c in r) + '</tr>' for r in rows)
  return f'<table><tr>{head}</tr>{body}</table>'


def _img(data, alt):
  if data is None:
    return f'<p class="note">{html.escape(alt)}: nothing to plot.</p>'
  encoded = base64.b64encode(data).decode()
  return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _kbps(results, row):
  """A row's bitrate as a reader should see it: measured, else nominal (labelled)."""
  if results['compression']['rows'][row]['kbps_measured'] is not None:
    return _num(results, f'compression.rows.{row}.kbps_measured')
  return _num(results, f'compression.rows.{row}.kbps_nominal') + ' (nominal)'


def _compression(results):
  rows = results['compression']['rows']
  settings = results['settings']
  parts = ['<h2>Rate-distortion</h2>', f'<p class="note">Test split; {len(results["clips"])} '
           f'clips of {settings["clip_s"]:g} s, mean ± std over clips (every metric; ViSQOL on '
           f'the first {settings["visqol_clips"]}). '
           'Measured kbps = bytes of a real file (MP3, Opus, .fmac with its header) x 8 / '
           "seconds; nominal kbps = the reference's accounting (16 bits per latent value, or per "
           'kept sample for resampling), not a file.</p>']
  plots = []
  for metric, label in (('mel_distance', 'mel distance (lower is better)'),
                        ('visqol', 'ViSQOL MOS-LQO (higher is better)')):
    points = [(r['family'], r['name'], rd.plot_kbps(r),
               (r['metrics'].get(metric) or {}).get('mean'), r['kbps_measured'] is None)
              for r in rows]
    figure = figures.rate_distortion(points, label, label.split(' (')[0])
    missing = ' (not computed: --visqol_clips=0)' if figure is None else ''
    plots.append(_img(figure, f'{label} against kbps{missing}'))
  parts.append(f'<div class="row">{"".join(plots)}</div>')
  body = [[html.escape(r['name']), html.escape(r.get('setting', '')),
           _num(results, f'compression.rows.{i}.kbps_nominal'),
           _num(results, f'compression.rows.{i}.kbps_measured')] +
          [_stat(results, f'compression.rows.{i}.metrics.{m}') for m in COLUMNS]
          for i, r in enumerate(rows)]
  table = _table(['row', 'setting', 'kbps nominal', 'kbps measured'] + list(COLUMNS), body)
  parts.append(f'<div class="wide">{table}</div>')
  return parts


def _reference(results):
  body = [[_num(results, f'reference_table.rows.{i}.latent_channels'),
           _num(results, f'reference_table.rows.{i}.reference_kbps'),
           _num(results, f'reference_table.rows.{i}.reference_rmse'),
           html.escape(r['name'] or '-'),
           _num(results, f'reference_table.rows.{i}.kbps_nominal'),
           _num(results, f'reference_table.rows.{i}.kbps_measured'),
           _stat(results, f'reference_table.rows.{i}.seed_spectral_rmse')]
          for i, r in enumerate(results['reference_table']['rows'])]
  return ["<h2>The reference's table beside fmacomp's (freq_ae)</h2>",
          f'<p class="note">Reference: {html.escape(results["reference_table"]["source"])}. '
          'Ours: this dataset, its test split, the nominal kbps computed the same way.</p>',
          _table(['C', 'reference kbps (nominal)', 'reference spectral RMSE', 'ours',
                  'ours kbps nominal',
                  'ours kbps measured', 'ours seed spectral RMSE'], body)]


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
  parts = ['<h2>Genre</h2>', '<p class="note">Test split. Segment accuracy counts every one of '
           'the evenly spaced segments of each track; song accuracy votes over them (ties: summed '
           'probabilities). The reference reported 45 % (vote) and 42 % (one segment) on FMA '
           'small.</p>']
  body = [[html.escape(c['name']), html.escape(c['frontend']), html.escape(c['encoder'] or '-'),
           _stat(results, f'genre.classifiers.{i}.segment_accuracy'),
           _stat(results, f'genre.classifiers.{i}.song_accuracy')]
          for i, c in enumerate(genre['classifiers'])]
  parts.append(_table(['classifier', 'frontend', 'encoder', 'segment accuracy', 'song accuracy'],
                      body))
  for i, c in enumerate(genre['classifiers']):
    run = c['runs'][0]
    key = f'genre.classifiers.{i}.runs.0.song.per_class'
    table = _table(['genre', 'precision', 'recall', 'tracks'], [
        [html.escape(p['label']), _num(results, f'{key}.{j}.precision'),
         _num(results, f'{key}.{j}.recall'), _num(results, f'{key}.{j}.support')]
        for j, p in enumerate(run['song']['per_class'])])
    image = _img(figures.confusion(run['song']['confusion'], labels,
                                   f'{c["name"]} (seed {run["seed"]}), songs'), 'confusion matrix')
    parts.append(f'<h3>{html.escape(c["name"])}</h3><div class="row">{image}{table}</div>')
  compressed = genre['compressed']
  parts.append('<h3>Accuracy from compressed files</h3>')
  if compressed['status'] == 'pending':
    parts.append(f'<p class="note">Pending: {html.escape(compressed["reason"])}.</p>')
  else:
    float_accuracy = {c['name']: c['song_accuracy']['mean'] for c in genre['classifiers']}
    points = [(r['classifier'], r['kbps_measured'], r['song_accuracy'])
              for r in compressed['rows']]
    parts.append('<p class="note">Each test track compressed whole to a .fmac file; the '
                 'classifier reads its entropy-decoded, dequantised latent (no decoder, no '
                 'audio).</p>')
    parts.append(_img(figures.accuracy_vs_kbps(points, float_accuracy),
                      'song accuracy against the bitrate of the files read'))
    parts.append(_table(['classifier reading files of', 'kbps measured', 'segment accuracy',
                         'song accuracy'], [
        [html.escape(r['name'])] + [_num(results, f'genre.compressed.rows.{j}.{k}') for k in
                                    ('kbps_measured', 'segment_accuracy', 'song_accuracy')]
        for j, r in enumerate(compressed['rows'])]))
  return parts


def _latent(results):
  parts = ['<h2>Latent space</h2>', '<p class="note">Test segments, each latent averaged over '
           'frames; agreement = fraction of the 5 nearest neighbours with the same genre.</p>']
  for i, p in enumerate(results['latent']['projections']):
    images = ''.join(_img(figures.projection(p[m]['points'], p['labels'], p['label_names'],
                                             f'{p["name"]}: {title}'), f'{title} projection')
                     for m, title in (('pca', 'PCA'), ('tsne', 't-SNE')))
    parts.append(f'<h3>{html.escape(p["name"])} ({p["n"]} points): agreement PCA '
                 f'{_num(results, f"latent.projections.{i}.pca.neighbour_agreement")}, t-SNE '
                 f'{_num(results, f"latent.projections.{i}.tsne.neighbour_agreement")}</h3>'
                 f'<div class="row">{images}</div>')
  return parts


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
                 f'({html.escape(str(entry["label"]))})</h3>' + _table(['', 'kbps', ''], body))
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
  eval_dir = os.path.join(os.path.abspath(workdir), 'eval')
  path = os.path.join(eval_dir, 'results.json')
  if not os.path.exists(path):
    raise errors.InputError(path, 'no evaluation results (run launch/evaluate.py first)')
  with open(path) as f:
    results = json.load(f)
  out = os.path.join(os.path.abspath(workdir), 'report', 'report.html')
  files.write_text_atomic(out, render(results, eval_dir))
  return out
