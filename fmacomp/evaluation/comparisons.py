"""fmacomp against MP3 and Opus in one number each: paired win rates and BD-rates.

Computed from results.json's compression rows once every evaluator has run
(`fmacomp.evaluation.evaluate`), with `fmacomp.evaluation.statistics`:

- `win_rates`: for each fmacomp row with a measured bitrate (a real file), each baseline (MP3,
  Opus) and metric (mel distance, ViSQOL), on how many clips fmacomp is better than the
  baseline at the same bitrate: the baseline's value on that clip, linear in log kbps between
  its two ladder points around the fmacomp row's measured bitrate (`statistics.paired_baseline`;
  below the baseline's lowest point, its lowest point, which has more bits).
- `bd_rates`: the Bjøntegaard delta rate of each fmacomp curve against each baseline, per
  metric: each measured fmacomp row alone (a single operating point: undefined, with the
  reason, and the bitrate the baseline needs for its quality instead), the operating points of
  one rate-conditioned network (rows sharing a `curve`) as its own curve, and all measured rows
  as one curve when there are several.
"""

from fmacomp import metrics as metrics_lib
from fmacomp.evaluation import statistics

BASELINE_FAMILIES = ('mp3', 'opus')
COMPARED_METRICS = ('mel_distance', 'visqol')
PAIRING = ('per clip: the baseline linear in log kbps between its ladder points around the '
           "fmacomp row's measured kbps; below its lowest point, that point (more bits)")


def _measured(rows, family):
  return [i for i, r in enumerate(rows) if r['family'] == family and r['kbps_measured']]


def _mean(row, metric):
  return (row['metrics'].get(metric) or {}).get('mean')


def win_rates(rows):
  """results.json's `win_rate`: {'pairing', 'rows': [record]} (module docstring)."""
  records = []
  for i in _measured(rows, 'fmacomp'):
    ours = rows[i]
    for family in BASELINE_FAMILIES:
      theirs = [rows[j] for j in _measured(rows, family) if rows[j]['per_clip']]
      for metric in COMPARED_METRICS:
        if ours['per_clip'] is None or not theirs or _mean(ours, metric) is None:
          continue
        paired = [statistics.paired_baseline(
            ours['kbps_measured'], [r['kbps_measured'] for r in theirs],
            [r['per_clip'][metric][k] for r in theirs])
                  for k in range(len(ours['per_clip'][metric]))]
        wins, n = statistics.win_rate(ours['per_clip'][metric], paired,
                                      metric in metrics_lib.HIGHER_IS_BETTER)
        records.append({'row': i, 'name': ours['name'], 'baseline': family, 'metric': metric,
                        'kbps': ours['kbps_measured'], 'wins': wins, 'n': n,
                        'rate': wins / n if n else None})
  return {'pairing': PAIRING, 'rows': records}


def _curve(rows, indices, metric):
  points = [(rows[i]['kbps_measured'], _mean(rows[i], metric)) for i in indices]
  points = [p for p in points if p[1] is not None]
  return [p[0] for p in points], [p[1] for p in points]


def bd_rates(rows):
  """results.json's `bd_rate`: {'method', 'rows': [record]} (module docstring).

  A record: codec (a row's name, '<curve> (all points)' for the operating points of one
  network, or 'fmacomp (all measured rows)'), rows (its row indices),
  anchor (mp3 | opus), metric, bd_rate (percent, negative: fmacomp needs fewer bits; None where
  undefined), reason (why undefined), and for a single row equal_quality_kbps: the bitrate
  at which the anchor reaches the row's quality (None outside the anchor's range).
  """
  ours = _measured(rows, 'fmacomp')
  curves = [(rows[i]['name'], [i]) for i in ours]
  networks = {}  # the operating points of one rate-conditioned network
  for i in ours:
    if rows[i].get('curve'):
      networks.setdefault(rows[i]['curve'], []).append(i)
  curves += [(f'{name} (all points)', indices) for name, indices in networks.items()
             if 1 < len(indices) < len(ours)]
  if len(ours) > 1:
    curves.append(('fmacomp (all measured rows)', ours))
  records = []
  for name, indices in curves:
    for family in BASELINE_FAMILIES:
      anchor_rows = _measured(rows, family)
      for metric in COMPARED_METRICS:
        anchor, test = _curve(rows, anchor_rows, metric), _curve(rows, indices, metric)
        if not anchor[0] or not test[0]:
          continue
        higher = metric in metrics_lib.HIGHER_IS_BETTER
        value, reason = statistics.bd_rate(anchor, test, higher, names=(family, name))
        record = {'codec': name, 'rows': indices, 'anchor': family, 'metric': metric,
                  'bd_rate': value, 'reason': reason}
        if len(indices) == 1:
          record['equal_quality_kbps'] = statistics.rate_at_quality(anchor, test[1][0], higher)[0]
        records.append(record)
  return {'method': ('Bjøntegaard delta rate: log kbps as a PCHIP function of the metric on '
                     'each curve\'s frontier (dominated points dropped), integrated over the '
                     'shared metric range; percent bitrate change of fmacomp at equal quality '
                     '(negative: fewer bits). Undefined (None, with the reason) for a single '
                     'operating point or disjoint ranges; never extrapolated.'),
          'rows': records}
