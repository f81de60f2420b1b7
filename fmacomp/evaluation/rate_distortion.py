"""Float autoencoders on the test clips, and the reference's table beside ours.

`AutoencoderEvaluator` scores each autoencoder group (freq_ae, time_ae; runs differing by seed
are one row, mean and std over seeds) on the test clips (`fmacomp.evaluation.clips`): each clip
is resampled to the model's rate, encoded, decoded and scored against the full-band original
(`fmacomp.evaluation.rows`). A float latent is not a file, so its row has no measured bitrate,
only the reference's nominal one (`nominal_kbps`: 16 bits per latent value).

`reference_table(rows)` puts the reference study's published table (latent channels C, its
"kbps", its spectral RMSE) beside every row of ours built on freq_ae, float or quantised.
"""

import jax
import jax.numpy as jnp
import numpy as np

from fmacomp import audio
from fmacomp.evaluation import common
from fmacomp.evaluation import rows as rows_lib
from fmacomp.training import checkpointing

# The reference's published table: latent channels C -> (its "kbps", its spectral RMSE).
REFERENCE_TABLE = ((512, 126.0, 0.867), (256, 63.0, 0.803), (128, 31.5, 0.929),
                   (64, 15.7, 1.24), (32, 7.9, 1.61))


def nominal_kbps(model, variables, config):
  """The reference's bitrate: 16 bits x latent values of one training crop / its seconds."""
  crop = int(round(config.crop_s * config.sample_rate))
  shape = jax.eval_shape(lambda v, x: model.apply(v, x, method='encode'), variables,
                         jax.ShapeDtypeStruct((1, crop), jnp.float32)).shape
  return rows_lib.NOMINAL_BITS * float(np.prod(shape[1:])) / config.crop_s / 1000


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
  run = checkpointing.load_run(workdir)
  model, variables, config = run.model, run.variables, run.config
  rate = config.sample_rate
  x = np.stack([audio.resample(c.audio, c.rate, rate) for c in clips])  # [N, T] at `rate`
  decoded = autoencode(model, variables, x)
  info = dict(model=config.model.name, base=config.model.name, step=run.step,
              seed=int(config.seed),
              latent_channels=int(config.model.latent_channels),
              kbps_nominal=nominal_kbps(model, variables, config),
              setting=f'float latent, {config.model.latent_channels} channels at {rate} Hz')
  return (rows_lib.score_all(clips, decoded, rate, visqol_clips), info,
          [(y, rate) for y in decoded[:keep_audio]])


class AutoencoderEvaluator:
  """One compression row per autoencoder group; its first run's decoded clips as its audio."""
  name = 'autoencoders'

  def run(self, context):
    options = context.options
    for group, members in context.groups('autoencoder').items():
      per_seed, listening = [], ()
      for run in members:
        per_clip, info, decoded = autoencoder_per_clip(
            run.workdir, context.clips, options.visqol_clips, options.listen_clips)
        kbps = info.pop('kbps_nominal')
        per_seed.append(rows_lib.make_row(
            group, 'fmacomp', per_clip, kbps_nominal=kbps, kind='autoencoder',
            runs=[run.name], seeds=[info['seed']], **info))
        if run is members[0]:
          listening = tuple(decoded)
      row = rows_lib.name_latent_size(rows_lib.combine_seeds(group, per_seed))
      yield common.Result('compression.rows', row, listening)


def reference_table(rows):
  """The reference's table (C, its kbps, its RMSE) beside every row of ours built on freq_ae.

  Ours are the float freq_ae and its quantised versions (`base` 'freq_ae'), one entry each,
  next to the reference's line of the same C; a C only one side has gets an entry too.

  Args:
    rows: results.json's compression rows (an entry's `row` indexes them).

  Returns:
    results.json's `reference_table`.
  """
  ours = [i for i, r in enumerate(rows) if r.get('base') == 'freq_ae']
  sizes = sorted({c for c, _, _ in REFERENCE_TABLE} | {rows[i]['latent_channels'] for i in ours},
                 reverse=True)
  table = []
  for c in sizes:
    ref = next(((k, e) for cc, k, e in REFERENCE_TABLE if cc == c), (None, None))
    mine = sorted((i for i in ours if rows[i]['latent_channels'] == c),
                  key=lambda i: rows_lib.plot_kbps(rows[i]) or 0)
    for i in mine or [None]:
      row = rows[i] if i is not None else {}
      table.append({'latent_channels': c, 'reference_kbps': ref[0], 'reference_rmse': ref[1],
                    'row': i, 'name': row.get('name'),
                    'kbps_nominal': row.get('kbps_nominal'),
                    'kbps_measured': row.get('kbps_measured'),
                    'seed_spectral_rmse': row['metrics']['seed_spectral_rmse'] if row else None})
  return {'source': 'the reference study (FMA small, its random 70/30 split); its kbps count '
                    '16 bits per float latent value', 'split': 'test', 'rows': table}
