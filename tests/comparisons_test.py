"""Tests for fmacomp.evaluation.comparisons: win rates and BD-rates from compression rows."""

import pytest

from fmacomp.evaluation import comparisons


def row(name, family, kbps, mel, visqol=None):
  """A compression row as results.json holds it: per-clip values and their means."""
  per_clip = {'mel_distance': list(mel), 'visqol': list(visqol or [None] * len(mel))}
  metrics = {'mel_distance': {'mean': sum(mel) / len(mel)},
             'visqol': {'mean': sum(visqol) / len(visqol)} if visqol else None}
  return {'name': name, 'family': family, 'kbps_measured': kbps, 'kbps_nominal': None,
          'per_clip': per_clip, 'metrics': metrics}


ROWS = [
    row('ours-6', 'fmacomp', 6.0, [2.0, 3.0, 5.0]),
    row('ours-12', 'fmacomp', 12.0, [1.0, 1.5, 2.0]),
    row('mp3 8', 'mp3', 8.0, [4.0, 4.0, 4.0]),
    row('mp3 32', 'mp3', 32.0, [2.0, 2.0, 2.0]),
    row('opus 6', 'opus', 6.0, [3.0, 3.0, 3.0]),
    row('opus 24', 'opus', 24.0, [1.0, 1.0, 1.0]),
    row('resampling 64', 'resampling', None, [9.0, 9.0, 9.0]),
]


def test_win_rates_pair_each_clip_with_the_baseline_at_the_same_bitrate():
  records = {(r['name'], r['baseline']): r for r in comparisons.win_rates(ROWS)['rows']}
  # ours-6 is below MP3's lowest point: MP3 8 (4.0 on every clip) is the pair; 2 clips of 3.
  assert (records['ours-6', 'mp3']['wins'], records['ours-6', 'mp3']['n']) == (2, 3)
  # ours-12 against Opus between 6 and 24 kbps, halfway in log kbps: 2.0; a tie is no win.
  assert (records['ours-12', 'opus']['wins'], records['ours-12', 'opus']['n']) == (2, 3)
  assert records['ours-12', 'opus']['rate'] == pytest.approx(2 / 3)
  assert all(r['metric'] == 'mel_distance' for r in records.values())  # no ViSQOL measured


def test_bd_rates_are_undefined_for_single_points_and_name_the_reason():
  records = comparisons.bd_rates(ROWS)['rows']
  single = next(r for r in records if r['codec'] == 'ours-6' and r['anchor'] == 'opus')
  assert single['bd_rate'] is None and 'single operating point' in single['reason']
  assert single['equal_quality_kbps'] is None  # mel 3.33: worse than Opus's lowest point
  single = next(r for r in records if r['codec'] == 'ours-12' and r['anchor'] == 'opus')
  # Mel 1.5 on Opus's line from (6 kbps, 3.0) to (24 kbps, 1.0), linear in log kbps.
  assert single['equal_quality_kbps'] == pytest.approx(6 * 4 ** 0.75)
  both = next(r for r in records if r['codec'] == 'fmacomp (all measured rows)'
              and r['anchor'] == 'opus')
  assert both['rows'] == [0, 1]
  assert both['bd_rate'] is not None and both['bd_rate'] < 0  # fewer bits at equal mel


def test_the_points_of_one_network_are_a_curve_of_their_own():
  # A rate-conditioned codec's rows share `curve`; beside another fmacomp row, they get their
  # own BD-rate, with the same value as the same two rows alone would.
  points = [dict(r, name=f'codec@p{i}', curve='codec') for i, r in enumerate(ROWS[:2])]
  rows = [row('time_ae_q', 'fmacomp', 20.0, [3.0, 3.0, 3.0])] + points + ROWS[2:]
  records = comparisons.bd_rates(rows)['rows']
  network = [r for r in records if r['codec'] == 'codec (all points)']
  assert [(r['anchor'], r['rows']) for r in network] == [('mp3', [1, 2]), ('opus', [1, 2])]
  alone = {r['anchor']: r['bd_rate'] for r in comparisons.bd_rates(ROWS)['rows']
           if r['codec'] == 'fmacomp (all measured rows)'}
  assert {r['anchor']: r['bd_rate'] for r in network} == alone
  everything = next(r for r in records if r['codec'] == 'fmacomp (all measured rows)')
  assert everything['rows'] == [0, 1, 2]
  # Only the network's rows measured: its curve is the all-rows curve, not listed twice.
  assert not any(r['codec'] == 'codec (all points)' for r in comparisons.bd_rates(
      points + ROWS[2:])['rows'])
