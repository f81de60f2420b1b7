"""Evaluation on the test split: `evaluate(workdir, options)` -> eval/results.json.

What is evaluated is discovered under the workdir (`common.discover_runs`): the workdir itself
when it is a training run, each sub-directory that is one (a study's stages), and every run of a
sweep (`<dir>/sweep/<run>/`). Runs that differ only by seed form a group, reported as the mean
and standard deviation over seeds.

The evaluators (`EVALUATORS`, each `run(context) -> iterator of common.Result`), in order:

  autoencoders      rate-distortion rows on the test clips (`rate_distortion`), the reference's
                    nominal bitrate beside a measured one (None: no file exists)
  codecs            rows from real .fmac bytes (`codec_eval`, through `fmacomp.fmac.compress`)
  baselines         MP3, Opus and resampling over a bitrate ladder, on the same clips
                    (`baselines`)
  genre             segment and song accuracy, per-genre precision and recall, confusion
                    (`genre`)
  compressed_genre  accuracy against bitrate where a classifier reads compressed files of a codec
                    that quantises its latent (`compressed_genre`)
  latents           PCA and t-SNE of each autoencoder's test latents, coloured by genre
                    (`projection`)

Each is timed on its own. Every number in results.json sits in a record that names its split,
its runs (whose configs and seeds are under `runs`) and how many clips or seeds it averages. The
listening clips of the report (the audio the compression rows yield) are written as FLAC under
eval/audio/. Evaluation never imports reporting: `fmacomp.reporting` reads results.json.
results.json (schema_version 3):

  dataset, settings, runs{name: {workdir, kind, group, model, seed, config}}, skipped, clips
  compression.rows[]      name, family (fmacomp|mp3|opus|resampling), kind, split, runs, seeds,
                          setting, kbps_nominal, kbps_measured (None: no file),
                          per_clip{metric: [value], recording: [track id]},
                          metrics{name: {mean, std, n, over: clips|seeds, ci95 (clips only:
                          bootstrap over tracks), recordings} or None}
                          and, for each operating point of a rate-conditioned codec (one
                          network, several bitrates; rows named '<group>@p<i>'): point, points,
                          curve (the group: its rows form one curve) and kbps_validation
  reference_table.rows[]  latent_channels, reference_kbps, reference_rmse, name, row (ours:
                          freq_ae or a quantised freq_ae), kbps_nominal, kbps_measured,
                          seed_spectral_rmse (a metrics record)
  win_rate                pairing, rows[]{row, name, baseline (mp3|opus), metric, kbps, wins, n,
                          rate}: clips on which a measured fmacomp row beats the baseline at
                          its bitrate (`comparisons`)
  bd_rate                 method, rows[]{codec, rows, anchor, metric, bd_rate (% bits, None
                          where undefined), reason, equal_quality_kbps (single rows)}
  genre.classifiers[]     name, frontend, encoder, segment_accuracy, song_accuracy (records),
                          runs[]{run, seed, step, segment|song: {accuracy, n, confusion,
                          per_class[]{label, precision, recall, support, predicted}}}
  genre.compressed        status (pending|done), reason, rows[]{name, classifier, codec, runs,
                          kbps_measured, segment_accuracy, song_accuracy, segment, song}
  latent.projections[]    name, run, n, labels, label_names, pca|tsne: {points,
                          neighbour_agreement}
  listening[]             clip, track_id, label, items[]{name, row, sample_rate, path}
  timing_s                seconds: setup (runs, dataset, clips), each evaluator by name,
                          listening (writing the clips), total

Schema versions: 3 adds win_rate, bd_rate, the metrics' ci95 and recordings, per_clip's
recording and settings.clips_per_track, and scores every row's output as 16-bit PCM (float
before), and later, still as 3, the optional fields of operating-point rows (absent from other
rows and from older files: readers use .get) and bd_rate's '<group> (all points)' curves;
2 times each evaluator (timing_s had fmacomp_rows, baselines, genre and projections before);
every other field is as in 1.
"""

import dataclasses
import functools
import json
import os
import re
import shutil
import time

from absl import logging

from fmacomp import audio
from fmacomp import datasets
from fmacomp import errors
from fmacomp.evaluation import baselines
from fmacomp.evaluation import clips as clips_lib
from fmacomp.evaluation import codec_eval
from fmacomp.evaluation import comparisons
from fmacomp.evaluation import common
from fmacomp.evaluation import compressed_genre
from fmacomp.evaluation import genre
from fmacomp.evaluation import projection
from fmacomp.evaluation import rate_distortion
from fmacomp.evaluation import rows as rows_lib
from fmacomp import files

REFERENCE_GENRE = {'song_accuracy': 0.45, 'segment_accuracy': 0.42}
SCHEMA_VERSION = 3
# In this order: compression rows are numbered as they come (fmacomp models, then baselines).
EVALUATORS = (rate_distortion.AutoencoderEvaluator(), codec_eval.CodecEvaluator(),
              baselines.BaselineEvaluator(), genre.GenreEvaluator(),
              compressed_genre.CompressedGenreEvaluator(), projection.LatentEvaluator())
ROWS = 'compression.rows'


@dataclasses.dataclass
class Options:
  """What an evaluation computes (presets: `PRESETS`)."""
  clips: int = 6            # test tracks whose excerpts every rate-distortion row scores
  clip_s: float = 3.0       # each excerpt's length
  clips_per_track: int = 1  # evenly spaced excerpts per track (intervals resample tracks)
  visqol_clips: int = 1     # the first N clips also get ViSQOL (slow: ~2 s per audio second)
  ladder: str = 'quick'     # baseline bitrates: a key of baselines.LADDERS
  listen_clips: int = 2     # clips whose decoded audio goes to eval/audio for the report
  genre_segments: int = 5   # evenly spaced segments per test track for the song vote
  projection_points: int = 400  # at most this many latents per t-SNE
  runs: tuple = ()          # run workdirs to evaluate; empty: discover under the workdir


PRESETS = {
    'smoke': Options(clips=2, clip_s=2.0, visqol_clips=0, ladder='smoke', listen_clips=1,
                     projection_points=120),
    'quick': Options(),
    'full': Options(clips=32, clip_s=10.0, clips_per_track=4, visqol_clips=8, ladder='full',
                    listen_clips=4, projection_points=600),
}


def make_options(preset='quick', **overrides):
  """A preset's options with the given (non-None) fields replaced, checked."""
  if preset not in PRESETS:
    raise errors.InputError(f'preset={preset}', f'choose from {", ".join(PRESETS)}')
  options = dataclasses.replace(PRESETS[preset],
                                **{k: v for k, v in overrides.items() if v is not None})
  if options.ladder not in baselines.LADDERS:
    raise errors.InputError(f'ladder={options.ladder}',
                            f'choose from {", ".join(baselines.LADDERS)}')
  for name in ('clips', 'clips_per_track', 'genre_segments'):
    if getattr(options, name) < 1:
      raise errors.InputError(f'{name}={getattr(options, name)}', 'must be at least 1')
  if options.clip_s <= 0 or min(options.visqol_clips, options.listen_clips) < 0:
    raise errors.InputError('options', 'clip_s must be > 0, visqol_clips and listen_clips >= 0')
  return options


def results_path(workdir):
  return os.path.join(os.path.abspath(workdir), 'eval', 'results.json')


def _builder(runs, workdir):
  keys = {(r.config.data.name, r.config.data.data_dir, r.config.data.manual_dir) for r in runs}
  if len(keys) != 1:
    raise errors.InputError(workdir, f'runs use different datasets: {sorted(keys)}')
  name, data_dir, manual_dir = keys.pop()
  return datasets.prepare(name, data_dir=data_dir or None, manual_dir=manual_dir or None)


def _context(workdir, options):
  """(context, skipped runs): the runs, their dataset and its test clips."""
  runs, skipped = common.discover_runs(workdir, options.runs)
  if not runs:
    raise errors.InputError(workdir, 'no trained run to evaluate (no config.json with checkpoints)')
  builder = _builder(runs, workdir)
  clips = clips_lib.test_clips(builder, options.clips, options.clip_s,
                               per_track=options.clips_per_track)
  if not clips:
    raise errors.InputError(workdir, 'the test split has no tracks')
  label_names = list(builder.info.features['label'].names)
  return common.Context(workdir, builder, label_names, clips, runs, options), skipped


def _store(sections, result):
  """Puts a result's record where its section says: appended to a list, or set."""
  *parents, last = result.section.split('.')
  parent = functools.reduce(lambda tree, key: tree[key], parents, sections)
  if isinstance(parent.get(last), list):
    parent[last].append(result.record)
  else:
    parent[last] = result.record


def _run_evaluators(evaluators, context, timing):
  """Runs the evaluators, timing each: (results.json's sections, each compression row's audio)."""
  sections = {'compression': {'split': 'test', 'rows': []},
              'genre': {'split': 'test', 'classifiers': [], 'compressed': None,
                        'reference': REFERENCE_GENRE},
              'latent': {'projections': []}}
  row_audio = []  # per compression row, in row order: its [(audio, rate)], one per listening clip
  for evaluator in evaluators:
    start = time.time()
    for result in evaluator.run(context):
      _store(sections, result)
      if result.section == ROWS:
        row_audio.append(result.audio)
    timing[evaluator.name] = time.time() - start
    logging.info('evaluate: %s took %.1f s', evaluator.name, timing[evaluator.name])
  return sections, row_audio


def _slug(name):
  return re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_').lower()


def _listened_rows(rows, row_audio):
  """Rows with players: fmacomp's, then the MP3 and Opus rows nearest each one's bitrate."""
  ours = [i for i, r in enumerate(rows) if r['family'] == 'fmacomp' and row_audio[i]]
  matched = []
  for i in ours:
    for family in ('mp3', 'opus'):
      j = rows_lib.nearest_by_kbps(rows, rows_lib.plot_kbps(rows[i]), family)
      if j is not None and j not in matched and row_audio[j]:
        matched.append(j)
  return ours + matched


def _listening(rows, row_audio, context, audio_dir):
  """Writes the listening clips (FLAC) and returns their index: original, fmacomp, matched."""
  entries = []
  listened = _listened_rows(rows, row_audio)
  for k, clip in enumerate(context.clips[:context.options.listen_clips]):
    items = [(None, 'original', clip.audio, clip.rate)]
    items += [(i, rows[i]['name'], *row_audio[i][k]) for i in listened if k < len(row_audio[i])]
    listed = []
    for row, name, x, rate in items:
      path = os.path.join(audio_dir, f'clip{k}_{_slug(name)}.flac')
      audio.write_audio(path, x, rate)
      listed.append({'name': name, 'row': row, 'sample_rate': int(rate),
                     'path': os.path.join('audio', os.path.basename(path))})
    entries.append({'clip': k, 'track_id': clip.track_id,
                    'label': context.label_names[clip.label], 'items': listed})
  return entries


def _header(context, skipped):
  """results.json's fields before the evaluators' sections."""
  options, clips, label_names = context.options, context.clips, context.label_names
  return {
      'schema_version': SCHEMA_VERSION, 'workdir': context.workdir,
      'dataset': {'name': context.runs[0].config.data.name, 'split': 'test',
                  'label_names': label_names, 'storage_rate': clips[0].rate},
      'settings': dict(dataclasses.asdict(options), runs=list(options.runs),
                       ladder_kbps=baselines.LADDERS[options.ladder],
                       clip_policy=clips_lib.CLIP_POLICY),
      'runs': {r.name: {'workdir': r.workdir, 'kind': r.kind, 'group': r.group,
                        'model': r.config.model.name, 'seed': int(r.config.seed),
                        'config': r.config.to_dict()} for r in context.runs},
      'skipped': skipped,
      'clips': [{'index': i, 'track_id': c.track_id, 'label': label_names[c.label],
                 'duration_s': c.duration_s} for i, c in enumerate(clips)],
  }


def evaluate(workdir, options=None):
  """Evaluates every run under `workdir`; writes eval/results.json and eval/audio/.

  Args:
    workdir: a study workdir or a training run.
    options: `Options` (default: the quick preset's).

  Returns:
    The results, as written to results.json.
  """
  options = options or Options()
  workdir = os.path.abspath(workdir)
  t0, timing = time.time(), {}
  context, skipped = _context(workdir, options)
  timing['setup'] = time.time() - t0
  logging.info('evaluate: %d runs, %d clips of %g s', len(context.runs), len(context.clips),
               options.clip_s)
  sections, row_audio = _run_evaluators(EVALUATORS, context, timing)
  start = time.time()
  audio_tmp = os.path.join(workdir, 'eval', 'audio.tmp')
  shutil.rmtree(audio_tmp, ignore_errors=True)
  rows = sections['compression']['rows']
  listening = _listening(rows, row_audio, context, audio_tmp)
  timing['listening'] = time.time() - start
  results = dict(_header(context, skipped), compression=sections['compression'],
                 reference_table=rate_distortion.reference_table(rows),
                 win_rate=comparisons.win_rates(rows), bd_rate=comparisons.bd_rates(rows),
                 genre=sections['genre'],
                 latent=sections['latent'], listening=listening)
  timing['total'] = time.time() - t0
  results['timing_s'] = timing
  _write(workdir, results, audio_tmp)
  logging.info('evaluate: done in %.0f s', timing['total'])
  return results


def _write(workdir, results, audio_tmp):
  """Moves the listening clips into eval/audio/, then writes results.json."""
  eval_dir = os.path.join(workdir, 'eval')
  audio_dir = os.path.join(eval_dir, 'audio')
  shutil.rmtree(audio_dir, ignore_errors=True)
  os.replace(audio_tmp, audio_dir)
  files.write_text_atomic(os.path.join(eval_dir, 'results.json'),
                          json.dumps(results, indent=1, default=_json_default))


def _json_default(value):
  if hasattr(value, 'tolist'):
    return value.tolist()
  raise TypeError(f'not JSON serialisable: {type(value)}')
