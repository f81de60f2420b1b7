"""Rate-distortion rows: fmacomp models and MP3 / Opus / resampling on the same test clips.

Clips (`test_clips`) are deterministic: the middle of three evenly spaced `clip_s` segments of
each test track (`pipeline.eval_batches(num_segments=3)`, segment 1), at the dataset's storage
rate, taken from tracks spread evenly over the sorted test split. Every row scores every clip
with DESIGN.md's metrics against that full-band reference (`metrics.compute_all`); ViSQOL, which
is slow, only on the first `visqol_clips` clips.

Bitrates, side by side in each row:
  kbps_nominal   the reference's accounting: 16 bits per float latent value (autoencoders), or
                 16 bits per kept sample (the resampling baseline); a count, not a file
  kbps_measured  bytes of a real encoded file x 8 / seconds (MP3, Opus, fmacomp codecs);
                 None where no file exists (a float latent is not a file)
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fmacomp import audio
from fmacomp.datasets import pipeline
from fmacomp.evaluation import baselines
from fmacomp import metrics as metrics_lib
from fmacomp import models
from fmacomp.training import checkpointing
from fmacomp.training import tasks

NOMINAL_BITS = 16  # the reference's bits per float latent value
# Bitrate ladders (target kbps) of the baselines; points a codec cannot reach are dropped.
LADDERS = {
    'smoke': {'mp3': (8, 64), 'opus': (12, 64), 'resampling': (64,)},
    'quick': {'mp3': (8, 16, 32, 64, 128, 320), 'opus': (6, 12, 24, 48, 96, 256),
              'resampling': (16, 32, 64, 128, 256)},
    'full': {'mp3': (8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320),
             'opus': (6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
             'resampling': (8, 16, 32, 64, 128, 256, 320)},
}


# The reference's published table: latent channels C -> (its "kbps", its spectral RMSE).
REFERENCE_TABLE = ((512, 126.0, 0.867), (256, 63.0, 0.803), (128, 31.5, 0.929),
                   (64, 15.7, 1.24), (32, 7.9, 1.61))


@dataclasses.dataclass(frozen=True)
class Clip:
  """One reference clip: float32 [T] mono audio at the storage rate."""
  audio: np.ndarray
  rate: int
  track_id: str
  label: int


def test_clips(builder, count, clip_s, split='test'):
  """`count` clips of `clip_s` seconds from tracks spread evenly over `split` (see module doc)."""
  rate = int(builder.info.metadata['sample_rate'])
  found = []
  for batch in pipeline.eval_batches(builder, split=split, segment_s=clip_s, sample_rate=rate,
                                     batch_size=16, num_segments=3, process_index=0,
                                     process_count=1):
    for row in np.flatnonzero(batch['mask'] & (batch['segment_index'] == 1)):
      found.append(Clip(batch['audio'][row].copy(), rate, str(batch['track_id'][row]),
                        int(batch['label'][row])))
  if len(found) > count:
    found = [found[i] for i in np.unique(np.round(np.linspace(0, len(found) - 1, count)))
             .astype(int)]
  return found


def score(clip, degraded, degraded_rate, visqol):
  """DESIGN.md's metrics of one decoded clip (ViSQOL only when `visqol`)."""
  names = [m for m in metrics_lib.METRICS if visqol or m != 'visqol']
  return metrics_lib.compute_all(clip.audio, degraded, clip.rate, degraded_rate=degraded_rate,
                                 metrics=names)


def summarize(per_clip):
  """[{metric: value}] per clip -> {metric: {'mean', 'std', 'n', 'over': 'clips'} or None}."""
  out = {}
  for name in metrics_lib.METRICS:
    values = [d[name] for d in per_clip if name in d]
    out[name] = ({'mean': float(np.mean(values)), 'std': float(np.std(values)),
                  'n': len(values), 'over': 'clips'} if values else None)
  skipped = {k: v for d in per_clip for k, v in d.get('skipped', {}).items()}
  if skipped:
    out['skipped'] = skipped
  return out


def make_row(name, family, per_clip, *, kbps_nominal=None, kbps_measured=None, **fields):
  """One rate-distortion row (see the module docstring for the two bitrates)."""
  per_metric = {m: [d.get(m) for d in per_clip] for m in metrics_lib.METRICS}
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


def _score_all(clips, decoded, rate, visqol_clips):
  return [score(c, y, rate, i < visqol_clips) for i, (c, y) in enumerate(zip(clips, decoded))]


def baseline_rows(clips, ladder, visqol_clips, keep_audio):
  """Rows of MP3, Opus and resampling over `ladder`; returns (rows, {row index: [audio]}).

  A ladder point whose setting repeats an earlier one (e.g. MP3 at 320 kbps on 16 kHz audio,
  which tops out at 160) is dropped, as are resampling points at or above the clips' rate.
  """
  rows, kept = [], {}
  rate = clips[0].rate
  for codec, targets in ladder.items():
    seen = set()
    for kbps in targets:
      if codec == 'opus' and not baselines.OPUS_KBPS[0] <= kbps <= baselines.OPUS_KBPS[1]:
        continue
      if codec == 'resampling' and kbps * 1000 / NOMINAL_BITS >= rate:
        continue
      results = [baselines.BASELINES[codec](c.audio, c.rate, kbps) for c in clips]
      if results[0].setting in seen:
        continue
      seen.add(results[0].setting)
      kbps_file = 8 * sum(r.n_bytes for r in results) / sum(r.duration_s for r in results) / 1000
      per_clip = _score_all(clips, [r.decoded for r in results], rate, visqol_clips)
      rows.append(make_row(
          f'{codec} {kbps:g}', codec, per_clip, target_kbps=kbps, setting=results[0].setting,
          kbps_nominal=kbps_file if codec == 'resampling' else None,
          kbps_measured=None if codec == 'resampling' else kbps_file))
      kept[len(rows) - 1] = [(r.decoded, rate) for r in results[:keep_audio]]
  return rows, kept


def load_autoencoder(workdir):
  """(model, variables, config, step) of a trained autoencoder's best checkpoint."""
  config = checkpointing.load_config(workdir)
  model = models.get_model(config.model.name, **tasks.model_kwargs(config.model))
  variables, step = checkpointing.load_params(workdir)
  return model, variables, config, step


def nominal_kbps(model, variables, config):
  """The reference's bitrate: 16 bits x latent values of one training crop / its seconds."""
  crop = int(round(config.crop_s * config.sample_rate))
  shape = jax.eval_shape(lambda v, x: model.apply(v, x, method='encode'), variables,
                         jax.ShapeDtypeStruct((1, crop), jnp.float32)).shape
  return NOMINAL_BITS * float(np.prod(shape[1:])) / config.crop_s / 1000


def autoencode(model, variables, x, batch_size=8):
  """encode then decode, in batches: x float32 [N, T] at the model's rate -> [N, T]."""
  step = jax.jit(lambda v, x: model.apply(
      v, model.apply(v, x, method='encode'), x.shape[-1], method='decode'))
  return np.concatenate([np.asarray(step(variables, x[i:i + batch_size]))
                         for i in range(0, x.shape[0], batch_size)])


def encode_latents(model, variables, x, batch_size=8):
  """Latents of x float32 [N, T] at the model's rate -> [N, frames, channels]."""
  step = jax.jit(lambda v, x: model.apply(v, x, method='encode'))
  return np.concatenate([np.asarray(step(variables, x[i:i + batch_size]))
                         for i in range(0, x.shape[0], batch_size)])


def autoencoder_per_clip(workdir, clips, visqol_clips, keep_audio):
  """Scores of a float autoencoder on the clips: (per_clip, info, [(audio, rate)] kept)."""
  model, variables, config, step = load_autoencoder(workdir)
  rate = config.sample_rate
  x = np.stack([audio.resample(c.audio, c.rate, rate) for c in clips])  # [N, T] at the model's rate
  decoded = autoencode(model, variables, x)
  info = dict(model=config.model.name, base=config.model.name, step=int(step),
              seed=int(config.seed),
              latent_channels=int(config.model.latent_channels),
              kbps_nominal=nominal_kbps(model, variables, config),
              setting=f'float latent, {config.model.latent_channels} channels at {rate} Hz')
  return (_score_all(clips, decoded, rate, visqol_clips), info,
          [(y, rate) for y in decoded[:keep_audio]])


def nearest_by_kbps(rows, kbps, family):
  """Index of the `family` row whose plotted bitrate is nearest `kbps` on a log scale."""
  best = None
  for i, row in enumerate(rows):
    if row['family'] == family and plot_kbps(row):
      distance = abs(np.log(plot_kbps(row) / kbps))
      if best is None or distance < best[0]:
        best = (distance, i)
  return None if best is None else best[1]


def reference_table(rows):
  """The reference's table (C, its kbps, its RMSE) beside every row of ours built on freq_ae.

  Ours are the float freq_ae and its quantised versions (`base` 'freq_ae'), one entry each,
  next to the reference's line of the same C; a C only one side has gets an entry too.
  """
  ours = [i for i, r in enumerate(rows) if r.get('base') == 'freq_ae']
  sizes = sorted({c for c, _, _ in REFERENCE_TABLE} | {rows[i]['latent_channels'] for i in ours},
                 reverse=True)
  table = []
  for c in sizes:
    ref = next(((k, e) for cc, k, e in REFERENCE_TABLE if cc == c), (None, None))
    mine = sorted((i for i in ours if rows[i]['latent_channels'] == c),
                  key=lambda i: plot_kbps(rows[i]) or 0)
    for i in mine or [None]:
      row = rows[i] if i is not None else {}
      table.append({'latent_channels': c, 'reference_kbps': ref[0], 'reference_rmse': ref[1],
                    'row': i, 'name': row.get('name'),
                    'kbps_nominal': row.get('kbps_nominal'),
                    'kbps_measured': row.get('kbps_measured'),
                    'seed_spectral_rmse': row['metrics']['seed_spectral_rmse'] if row else None})
  return {'source': 'the reference study (FMA small, its random 70/30 split); its kbps count '
                    '16 bits per float latent value', 'split': 'test', 'rows': table}
