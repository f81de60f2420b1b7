"""Evaluation on the test split: `evaluate(workdir, options)` -> eval/results.json + results.md.

What is evaluated is discovered under the workdir (`discover_runs`): the workdir itself when it
is a training run, each sub-directory that is one (a study's stages), and every run of a sweep
(`<dir>/sweep/<run>/`). Runs that differ only by seed form a group, reported as the mean and
standard deviation over seeds.

  autoencoders  rate-distortion rows on the test clips (`fmacomp.evaluation.rate_distortion`), the
                reference's nominal bitrate beside a measured one (None: no file exists)
  codecs        rows from real .fmac bytes (`fmacomp.evaluation.codec_eval`, through `fmacomp.fmac.compress`)
  baselines     MP3, Opus and resampling over a bitrate ladder, on the same clips
  classifiers   segment and song accuracy, per-genre precision and recall, confusion
                (`fmacomp.evaluation.genre`); and accuracy against bitrate where the classifier reads
                compressed files of a codec that quantises its latent (`compressed_genre`)
  latents       PCA and t-SNE of each autoencoder's test latents, coloured by genre

Every number in results.json sits in a record that names its split, its runs (whose configs
and seeds are under `runs`) and how many clips or seeds it averages. The listening clips of
the report are written as FLAC under eval/audio/. results.json (schema_version 1):

  dataset, settings, runs{name: {workdir, kind, group, model, seed, config}}, skipped, clips
  compression.rows[]      name, family (fmacomp|mp3|opus|resampling), kind, split, runs, seeds,
                          setting, kbps_nominal, kbps_measured (None: no file), per_clip,
                          metrics{name: {mean, std, n, over: clips|seeds} or None}
  reference_table.rows[]  latent_channels, reference_kbps, reference_rmse, name, row (ours:
                          freq_ae or a quantised freq_ae), kbps_nominal, kbps_measured,
                          seed_spectral_rmse (a metrics record)
  genre.classifiers[]     name, frontend, encoder, segment_accuracy, song_accuracy (records),
                          runs[]{run, seed, step, segment|song: {accuracy, n, confusion,
                          per_class[]{label, precision, recall, support, predicted}}}
  genre.compressed        status (pending|done), reason, rows[]{name, classifier, codec, runs,
                          kbps_measured, segment_accuracy, song_accuracy, segment, song}
  latent.projections[]    name, run, n, labels, label_names, pca|tsne: {points,
                          neighbour_agreement}
  listening[]             clip, track_id, label, items[]{name, row, sample_rate, path}
  timing_s                seconds per part
"""

import dataclasses
import json
import os
import re
import shutil
import time

from absl import logging
import numpy as np

from fmacomp import audio
from fmacomp import datasets
from fmacomp.datasets import pipeline
from fmacomp import errors
from fmacomp.evaluation import codec_eval
from fmacomp.evaluation import compressed_genre
from fmacomp.evaluation import genre
from fmacomp.evaluation import projection
from fmacomp.evaluation import rate_distortion as rd
from fmacomp import files
from fmacomp import models
from fmacomp.reporting import results_md
from fmacomp.training import checkpointing

REFERENCE_GENRE = {'song_accuracy': 0.45, 'segment_accuracy': 0.42}
SCHEMA_VERSION = 1


@dataclasses.dataclass
class Options:
  """What an evaluation computes (presets: `PRESETS`)."""
  clips: int = 6            # rate-distortion clips from the test split
  clip_s: float = 3.0       # their length
  visqol_clips: int = 1     # the first N clips also get ViSQOL (slow: ~2 s per audio second)
  ladder: str = 'quick'     # baseline bitrates: a key of rate_distortion.LADDERS
  listen_clips: int = 2     # clips whose decoded audio goes to eval/audio for the report
  genre_segments: int = 5   # evenly spaced segments per test track for the song vote
  projection_points: int = 400  # at most this many latents per t-SNE
  runs: tuple = ()          # run workdirs to evaluate; empty: discover under the workdir


PRESETS = {
    'smoke': Options(clips=2, clip_s=2.0, visqol_clips=0, ladder='smoke', listen_clips=1,
                     projection_points=120),
    'quick': Options(),
    'full': Options(clips=32, clip_s=10.0, visqol_clips=8, ladder='full', listen_clips=4,
                    projection_points=600),
}


def make_options(preset='quick', **overrides):
  """A preset's options with the given (non-None) fields replaced, checked."""
  if preset not in PRESETS:
    raise errors.InputError(f'preset={preset}', f'choose from {", ".join(PRESETS)}')
  options = dataclasses.replace(PRESETS[preset],
                                **{k: v for k, v in overrides.items() if v is not None})
  if options.ladder not in rd.LADDERS:
    raise errors.InputError(f'ladder={options.ladder}', f'choose from {", ".join(rd.LADDERS)}')
  for name in ('clips', 'genre_segments'):
    if getattr(options, name) < 1:
      raise errors.InputError(f'{name}={getattr(options, name)}', 'must be at least 1')
  if options.clip_s <= 0 or min(options.visqol_clips, options.listen_clips) < 0:
    raise errors.InputError('options', 'clip_s must be > 0, visqol_clips and listen_clips >= 0')
  return options


@dataclasses.dataclass
class Run:
  name: str      # path relative to the evaluated workdir ('freq_ae', 'x/sweep/seed=1')
  group: str     # runs of one group differ only by seed
  workdir: str
  config: object
  kind: str      # 'autoencoder' | 'classifier' | 'codec'


def _kind(config):
  name = config.model.name
  if name in models.AUTOENCODERS:
    return 'autoencoder'
  if name == 'classifier':
    return 'classifier'
  return 'codec' if codec_eval.is_codec(config) else None


def _has_checkpoint(workdir):
  return any(os.path.isdir(checkpointing.checkpoint_dir(workdir, w)) and
             any(s.isdigit() for s in os.listdir(checkpointing.checkpoint_dir(workdir, w)))
             for w in (checkpointing.BEST, checkpointing.LATEST))


def discover_runs(workdir, run_dirs=()):
  """(runs, skipped): every trained run under `workdir` (or exactly `run_dirs`)."""
  workdir = os.path.abspath(workdir)
  for path in [workdir, *run_dirs]:
    if not os.path.isdir(path):
      raise errors.InputError(path, 'no such directory')
  candidates = []  # (name, group, dir)
  tops = list(run_dirs) or [workdir] + sorted(
      os.path.join(workdir, d) for d in os.listdir(workdir)
      if os.path.isdir(os.path.join(workdir, d)) and d not in ('eval', 'report', 'sweep'))
  for top in map(os.path.abspath, tops):
    rel = os.path.relpath(top, workdir)
    rel = os.path.basename(top) if rel == '.' or rel.startswith('..') else rel
    if os.path.isfile(os.path.join(top, 'config.json')):
      candidates.append((rel, rel, top))
    sweep_dir = os.path.join(top, 'sweep')
    for run in sorted(os.listdir(sweep_dir)) if os.path.isdir(sweep_dir) else ():
      if os.path.isfile(os.path.join(sweep_dir, run, 'config.json')):
        group = ','.join(p for p in run.split(',') if not p.startswith('seed='))
        candidates.append((f'{rel}/sweep/{run}', f'{rel}/sweep' + (f'/{group}' if group else ''),
                           os.path.join(sweep_dir, run)))
  runs, skipped = [], []
  for name, group, path in candidates:
    config = checkpointing.load_config(path)
    kind = _kind(config)
    reason = (None if kind and _has_checkpoint(path) else
              'no checkpoint yet' if kind else f'no evaluation for model {config.model.name!r}')
    if reason:
      skipped.append({'workdir': path, 'reason': reason})
    else:
      runs.append(Run(name, group, path, config, kind))
  names = [r.name for r in runs]
  if len(set(names)) != len(names):
    raise errors.InputError(workdir, f'two runs share a name: {sorted(names)}')
  return runs, skipped


def _builder(runs, workdir):
  keys = {(r.config.data.name, r.config.data.data_dir, r.config.data.manual_dir) for r in runs}
  if len(keys) != 1:
    raise errors.InputError(workdir, f'runs use different datasets: {sorted(keys)}')
  name, data_dir, manual_dir = keys.pop()
  return datasets.prepare(name, data_dir=data_dir or None, manual_dir=manual_dir or None)


def _groups(runs, kind):
  out = {}
  for run in runs:
    if run.kind == kind:
      out.setdefault(run.group, []).append(run)
  return out


def _autoencoder_rows(runs, clips, options, kept):
  """One row per autoencoder group; the first run's decoded listening clips go to `kept`."""
  rows = []
  for group, members in _groups(runs, 'autoencoder').items():
    per_seed = []
    for run in members:
      per_clip, info, audio_kept = rd.autoencoder_per_clip(
          run.workdir, clips, options.visqol_clips, options.listen_clips)
      kbps = info.pop('kbps_nominal')
      per_seed.append(rd.make_row(group, 'fmacomp', per_clip, kbps_nominal=kbps,
                                  kind='autoencoder', runs=[run.name], seeds=[info['seed']],
                                  **info))
      if run is members[0]:
        kept[len(rows)] = audio_kept
    rows.append(rd.combine_seeds(group, per_seed))
  return rows


def _name_latent_sizes(rows):
  """Rows built on freq_ae name their latent size C (unless the group name already does)."""
  for row in rows:
    if row.get('base') == 'freq_ae' and str(row['latent_channels']) not in row['name']:
      row['name'] = f'{row["name"]} C={row["latent_channels"]}'


def _test_latents(model, variables, builder, config, num_segments, max_points):
  """Latents of test segments averaged over frames: (float [N, C], labels int [N])."""
  feats, labels = [], []
  for batch in pipeline.eval_batches(
      builder, split='test', segment_s=config.crop_s, sample_rate=config.sample_rate,
      batch_size=8, num_segments=num_segments, label_filter='Unknown', process_index=0,
      process_count=1):
    mask = batch['mask']
    if mask.any():
      z = rd.encode_latents(model, variables, batch['audio'][mask])  # [b, frames, C]
      feats.append(z.mean(axis=1))
      labels.append(batch['label'][mask])
  if not feats:
    return np.zeros((0, 0)), np.zeros(0, np.int64)
  feats, labels = np.concatenate(feats), np.concatenate(labels)
  if len(labels) > max_points:
    keep = np.unique(np.round(np.linspace(0, len(labels) - 1, max_points)).astype(int))
    feats, labels = feats[keep], labels[keep]
  return feats, labels


def _projections(runs, builder, options):
  """PCA and t-SNE of each autoencoder group's (first run's) test latents."""
  label_names = list(builder.info.features['label'].names)
  out = []
  for group, members in _groups(runs, 'autoencoder').items():
    run = members[0]
    model, variables, config, _ = rd.load_autoencoder(run.workdir)
    z, labels = _test_latents(model, variables, builder, config, options.genre_segments,
                              options.projection_points)
    if len(labels) < 4:
      continue
    entry = {'name': group, 'run': run.name, 'split': 'test', 'n': int(len(labels)),
             'labels': labels.tolist(), 'label_names': label_names,
             'features': 'latent averaged over frames'}
    for method, points in (('pca', projection.pca(z)[0]), ('tsne', projection.tsne(z))):
      entry[method] = {'points': points.round(5).tolist(),
                       'neighbour_agreement': projection.neighbour_agreement(points, labels)}
    out.append(entry)
  return out


def _slug(name):
  return re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_').lower()


def _listening(rows, kept, clips, audio_dir, options, label_names):
  """Writes the listening clips (FLAC) and returns their index: original, fmacomp, matched."""
  entries = []
  ours = [i for i, r in enumerate(rows) if r['family'] == 'fmacomp' and i in kept]
  matched = []
  for i in ours:
    for family in ('mp3', 'opus'):
      j = rd.nearest_by_kbps(rows, rd.plot_kbps(rows[i]), family)
      if j is not None and j not in matched and j in kept:
        matched.append(j)
  for k, clip in enumerate(clips[:options.listen_clips]):
    items = [(None, 'original', clip.audio, clip.rate)]
    items += [(i, rows[i]['name'], *kept[i][k]) for i in ours + matched if k < len(kept[i])]
    listed = []
    for row, name, x, rate in items:
      path = os.path.join(audio_dir, f'clip{k}_{_slug(name)}.flac')
      audio.write_audio(path, x, rate)
      listed.append({'name': name, 'row': row, 'sample_rate': int(rate),
                     'path': os.path.join('audio', os.path.basename(path))})
    entries.append({'clip': k, 'track_id': clip.track_id, 'label': label_names[clip.label],
                    'items': listed})
  return entries


def results_path(workdir):
  return os.path.join(os.path.abspath(workdir), 'eval', 'results.json')


def evaluate(workdir, options=None):
  """Evaluates every run under `workdir`; writes eval/results.json and .md; returns results."""
  options = options or Options()
  workdir = os.path.abspath(workdir)
  t0, timing = time.time(), {}
  runs, skipped = discover_runs(workdir, options.runs)
  if not runs:
    raise errors.InputError(workdir, 'no trained run to evaluate (no config.json with checkpoints)')
  builder = _builder(runs, workdir)
  label_names = list(builder.info.features['label'].names)
  clips = rd.test_clips(builder, options.clips, options.clip_s)
  if not clips:
    raise errors.InputError(workdir, 'the test split has no tracks')

  kept = {}
  logging.info('evaluate: %d runs, %d clips of %g s', len(runs), len(clips), options.clip_s)
  rows = _autoencoder_rows(runs, clips, options, kept)
  rows += codec_eval.codec_rows(_groups(runs, 'codec'), clips, options, kept, len(rows))
  _name_latent_sizes(rows)
  timing['fmacomp_rows'] = time.time() - t0
  base_rows, base_kept = rd.baseline_rows(clips, rd.LADDERS[options.ladder],
                                          options.visqol_clips, options.listen_clips)
  kept.update({len(rows) + i: v for i, v in base_kept.items()})
  rows += base_rows
  timing['baselines'] = time.time() - t0 - sum(timing.values())
  classifiers = genre.evaluate_groups(_groups(runs, 'classifier'), builder,
                                      options.genre_segments)
  compressed = compressed_genre.compressed_genre(runs, builder, options.genre_segments)
  timing['genre'] = time.time() - t0 - sum(timing.values())
  projections = _projections(runs, builder, options)
  timing['projections'] = time.time() - t0 - sum(timing.values())

  audio_tmp = os.path.join(workdir, 'eval', 'audio.tmp')
  shutil.rmtree(audio_tmp, ignore_errors=True)
  listening = _listening(rows, kept, clips, audio_tmp, options, label_names)
  results = {
      'schema_version': SCHEMA_VERSION, 'workdir': workdir,
      'dataset': {'name': runs[0].config.data.name, 'split': 'test', 'label_names': label_names,
                  'storage_rate': clips[0].rate},
      'settings': dict(dataclasses.asdict(options), runs=list(options.runs),
                       ladder_kbps=rd.LADDERS[options.ladder],
                       clip_policy='middle of 3 evenly spaced segments per track, tracks '
                                   'evenly spread over the sorted test split'),
      'runs': {r.name: {'workdir': r.workdir, 'kind': r.kind, 'group': r.group,
                        'model': r.config.model.name, 'seed': int(r.config.seed),
                        'config': r.config.to_dict()} for r in runs},
      'skipped': skipped,
      'clips': [{'index': i, 'track_id': c.track_id, 'label': label_names[c.label],
                 'duration_s': len(c.audio) / c.rate} for i, c in enumerate(clips)],
      'compression': {'split': 'test', 'rows': rows},
      'reference_table': rd.reference_table(rows),
      'genre': {'split': 'test', 'classifiers': classifiers, 'compressed': compressed,
                'reference': REFERENCE_GENRE},
      'latent': {'projections': projections},
      'listening': listening,
  }
  timing['total'] = time.time() - t0
  results['timing_s'] = timing
  _write(workdir, results, audio_tmp)
  logging.info('evaluate: done in %.0f s', timing['total'])
  return results


def _write(workdir, results, audio_tmp):
  """Moves the listening clips into eval/audio/, then writes results.json and results.md."""
  eval_dir = os.path.join(workdir, 'eval')
  audio_dir = os.path.join(eval_dir, 'audio')
  shutil.rmtree(audio_dir, ignore_errors=True)
  os.replace(audio_tmp, audio_dir)
  files.write_text_atomic(os.path.join(eval_dir, 'results.json'),
                         json.dumps(results, indent=1, default=_json_default))
  files.write_text_atomic(os.path.join(eval_dir, 'results.md'), results_md.format_results(results))


def _json_default(value):
  if hasattr(value, 'tolist'):
    return value.tolist()
  raise TypeError(f'not JSON serialisable: {type(value)}')
