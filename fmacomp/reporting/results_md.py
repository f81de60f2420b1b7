"""eval/results.md: the tables of eval/results.json as Markdown, and the one number format.

`number(value)` is how every number is shown, here and in the HTML report, so a test can
compare what a reader sees with results.json: 4 significant digits, 'n/a' for a missing value.
"""

from fmacomp import metrics as metrics_lib

COLUMNS = ('seed_spectral_rmse', 'mel_distance', 'log_spectral_distance', 'si_sdr', 'visqol')


def number(value):
  """A number as shown to readers: '%.4g', or 'n/a' for None."""
  return 'n/a' if value is None else f'{value:.4g}'


def stat(entry):
  """A {'mean', 'std', 'n', 'over'} record as 'mean ± std' ('n/a' when missing)."""
  if entry is None:
    return 'n/a'
  if entry['n'] > 1:
    return f'{number(entry["mean"])} ± {number(entry["std"])}'
  return number(entry['mean'])


def _table(header, rows):
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]
  return lines + ['']


def _compression(results):
  rows = results['compression']['rows']
  body = [[r['name'], r.get('setting', ''), number(r['kbps_nominal']), number(r['kbps_measured'])]
          + [stat(r['metrics'].get(m)) for m in COLUMNS] for r in rows]
  return ['## Rate-distortion (test split)', '',
          f'Each value is the mean ± std over clips (or over seeds for sweeps); '
          f'{results["settings"]["clips"]} clips of {results["settings"]["clip_s"]:g} s, ViSQOL '
          f'on the first {results["settings"]["visqol_clips"]}. kbps (nominal) is the '
          "reference's accounting (16 bits per float latent value, or per kept sample for "
          'resampling); kbps (measured) is bytes of a real file x 8 / seconds.', ''] + _table(
              ['row', 'setting', 'kbps (nominal)', 'kbps (measured)'] + list(COLUMNS), body)


def _reference(results):
  body = [[r['latent_channels'], number(r['reference_kbps']), number(r['reference_rmse']),
           r['name'] or '-', number(r['kbps_nominal']), number(r['kbps_measured']),
           stat(r['seed_spectral_rmse'])]
          for r in results['reference_table']['rows']]
  return ["## The reference's table, regenerated (freq_ae)", '',
          f'Reference: {results["reference_table"]["source"]}.', ''] + _table(
              ['C', 'reference kbps', 'reference RMSE', 'ours', 'ours kbps (nominal)',
               'ours kbps (measured)', 'ours seed spectral RMSE'], body)


def _genre(results):
  genre = results['genre']
  lines = ['## Genre (test split)', '']
  body = [[c['name'], c['frontend'], c['encoder'] or '-', stat(c['segment_accuracy']),
           stat(c['song_accuracy'])] for c in genre['classifiers']]
  lines += _table(['classifier', 'frontend', 'encoder', 'segment accuracy',
                   'song accuracy (vote)'], body)
  for c in genre['classifiers']:
    run = c['runs'][0]
    lines += [f'### {c["name"]} ({run["run"]}, seed {run["seed"]}): per genre (song level)', '']
    lines += _table(['genre', 'precision', 'recall', 'tracks'],
                    [[p['label'], number(p['precision']), number(p['recall']), p['support']]
                     for p in run['song']['per_class']])
  compressed = genre['compressed']
  lines += ['### Accuracy from compressed files', '']
  if compressed['status'] == 'pending':
    lines += [f'Pending: {compressed["reason"]}.', '']
  else:
    lines += _table(['classifier', 'kbps (measured)', 'segment accuracy', 'song accuracy'],
                    [[r['name'], number(r['kbps_measured']), number(r['segment_accuracy']),
                      number(r['song_accuracy'])] for r in compressed['rows']])
  return lines


def _latent(results):
  body = [[p['name'], p['n'], number(p['pca']['neighbour_agreement']),
           number(p['tsne']['neighbour_agreement'])] for p in results['latent']['projections']]
  return ['## Latent space (test split)', '',
          'Fraction of each point\'s 5 nearest neighbours with its genre, in each projection.',
          ''] + _table(['autoencoder', 'points', 'PCA', 't-SNE'], body)


def format_results(results):
  """The whole results.md."""
  lines = [f'# fmacomp evaluation: {results["dataset"]["name"]}', '',
           f'Metrics: {", ".join(metrics_lib.METRICS)} (DESIGN.md). Runs: '
           f'{", ".join(sorted(results["runs"]))}.', '']
  for part in (_compression, _reference, _genre, _latent):
    lines += part(results)
  if results['skipped']:
    lines += ['## Skipped', ''] + [f'- {s["workdir"]}: {s["reason"]}' for s in results['skipped']]
  return '\n'.join(lines) + '\n'
