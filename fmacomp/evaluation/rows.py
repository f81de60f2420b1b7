"""Rows of the rate-distortion table: scoring clips, summarising them, combining seeds.

Every row (an fmacomp model, MP3, Opus or resampling at one setting) scores the same test clips
(`fmacomp.evaluation.clips`) with DESIGN.md's metrics against the full-band reference
(`metrics.compute_all`), each codec's output taken as 16-bit PCM (`as_pcm16`) so that no codec
is scored on a finer sample format than another; ViSQOL, which is slow, only on the first
`visqol_clips` clips. Each metric's mean comes with a bootstrap 95 % interval that resamples
recordings (`statistics.bootstrap_ci`).

Bitrates, side by side in each row:
  kbps_nominal   the reference's accounting: 16 bits per float latent value (autoencoders), or
                 16 bits per kept sample (the resampling baseline); a count, not a file
  kbps_measured  bytes of a real encoded file x 8 / seconds (MP3, Opus, fmacomp codecs);
                 None where no file exists (a float latent is not a file)
"""

import io

import numpy as np
import soundfile as sf

from fmacomp import metrics as metrics_lib
from fmacomp.evaluation import statistics

NOMINAL_BITS = 16  # the reference's bits per float latent value (and per kept sample)


def as_pcm16(x):
  """float32 [T] as a 16-bit PCM WAV gives it back: what every codec's output is scored as.

  A user hears decoded audio as 16-bit PCM (`launch/decode.py`'s default); scoring one codec
  as float and another after 16 bits moves LSD by several dB on its own (the quantisation
  noise floor fills the bins a band-limited codec leaves empty). The round trip goes through
  libsndfile itself (clipping, rounding and scale as in a file), and is idempotent.
  """
  buf = io.BytesIO()
  sf.write(buf, np.asarray(x, np.float32), 48000, format='WAV', subtype='PCM_16')
  buf.seek(0)
  return sf.read(buf, dtype='float32')[0]


def score(clip, degraded, degraded_rate, visqol):
  """DESIGN.md's metrics of one decoded clip (ViSQOL only when `visqol`), on 16-bit output.

  The result also names the clip's recording (`recording`), the unit a bootstrap resamples.
  """
  names = [m for m in metrics_lib.METRICS if visqol or m != 'visqol']
  out = metrics_lib.compute_all(clip.audio, as_pcm16(degraded), clip.rate,
                                degraded_rate=degraded_rate, metrics=names)
  return dict(out, recording=clip.track_id)


def score_all(clips, decoded, rate, visqol_clips):
  """[{metric: value}] of each clip's decoded audio (at `rate`); ViSQOL on the first ones."""
  return [score(c, y, rate, i < visqol_clips) for i, (c, y) in enumerate(zip(clips, decoded))]


def summarize(per_clip):
  """[{metric: value}] per clip -> {metric: record or None}.

  A record is {'mean', 'std', 'n', 'over': 'clips', 'ci95': [low, high], 'recordings'}: the
  mean and std over the clips, and a bootstrap 95 % interval of the mean that resamples
  recordings (`statistics.bootstrap_ci`; a clip without a `recording` counts as its own).
  """
  out = {}
  for name in metrics_lib.METRICS:
    scored = [(d[name], d.get('recording', f'clip {i}')) for i, d in enumerate(per_clip)
              if name in d]
    if not scored:
      out[name] = None
      continue
    values, groups = zip(*scored)
    out[name] = {'mean': float(np.mean(values)), 'std': float(np.std(values)),
                 'n': len(values), 'over': 'clips',
                 'ci95': list(statistics.bootstrap_ci(values, groups)),
                 'recordings': len(set(groups))}
  skipped = {k: v for d in per_clip for k, v in d.get('skipped', {}).items()}
  if skipped:
    out['skipped'] = skipped
  return out


def make_row(name, family, per_clip, *, kbps_nominal=None, kbps_measured=None, **fields):
  """One rate-distortion row (see the module docstring for the two bitrates)."""
  per_metric = {m: [d.get(m) for d in per_clip] for m in metrics_lib.METRICS}
  per_metric['recording'] = [d.get('recording') for d in per_clip]
  return dict(name=name, family=family, split='test', kbps_nominal=kbps_nominal,
              kbps_measured=kbps_measured, metrics=summarize(per_clip), per_clip=per_metric,
              **fields)


def plot_kbps(row):
  """The bitrate a row is plotted at: measured where a file exists, else nominal."""
  return row['kbps_measured'] if row['kbps_measured'] is not None else row['kbps_nominal']


def over_seeds(values):
  """{'mean', 'std', 'n', 'over': 'seeds'} of per-seed values (None where all are None)."""
  values = [v for v in values if v is not None]
  if not values:
    return None
  return {'mean': float(sum(values) / len(values)),
          'std': float((sum((v - sum(values) / len(values)) ** 2 for v in values)
                        / len(values)) ** 0.5), 'n': len(values), 'over': 'seeds'}


def combine_seeds(group, members):
  """One row from the per-seed rows of a group: the mean and std over seeds when several."""
  if len(members) == 1:
    return dict(members[0], name=group)
  row = dict(members[0], name=group, runs=[r for m in members for r in m['runs']],
             seeds=[s for m in members for s in m['seeds']], per_seed=members, per_clip=None)
  row['metrics'] = {name: over_seeds([(m['metrics'].get(name) or {}).get('mean')
                                       for m in members])
                    for name in members[0]['metrics'] if name != 'skipped'}
  for key in ('kbps_nominal', 'kbps_measured'):
    values = [m[key] for m in members if m[key] is not None]
    row[key] = sum(values) / len(values) if values else None
  return row


def name_latent_size(row):
  """A row built on freq_ae names its latent size C, unless its group name already does.

  The reference's table is indexed by C, so a reader matches rows to it by name.
  """
  if row.get('base') == 'freq_ae' and str(row['latent_channels']) not in row['name']:
    row['name'] = f'{row["name"]} C={row["latent_channels"]}'
  return row


def nearest_by_kbps(rows, kbps, family):
  """Index of the `family` row whose plotted bitrate is nearest `kbps` on a log scale."""
  best = None
  for i, row in enumerate(rows):
    if row['family'] == family and plot_kbps(row):
      distance = abs(np.log(plot_kbps(row) / kbps))
      if best is None or distance < best[0]:
        best = (distance, i)
  return None if best is None else best[1]
