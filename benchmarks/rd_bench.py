r"""Rate-distortion on real music: fmacomp's shipped codecs vs MP3, Opus and resampling.

  python benchmarks/rd_bench.py [--out=/tmp/rd] [--manual_dir=../shared/realmusic]
      [--models=music-6kbps,...] [--excerpt_s=10] [--excerpts=4] [--visqol_excerpts=2]

Clips: --excerpts evenly spaced --excerpt_s excerpts strictly inside every recording of the
folder's --split (splits.json; never a training recording; `clips.folder_excerpts`), downmixed
to mono at its stored rate: that is the reference every metric compares with (DESIGN.md
"Metrics"). ViSQOL, which costs about a second of CPU per audio second, runs on the
--visqol_excerpts excerpts nearest each recording's middle (all with -1), for the codecs in
--visqol_codecs, and for baselines only at targets up to --visqol_max_kbps when it is set.

- fmacomp: each operating point of each shipped model (or --models: names or workdirs; a
  rate-conditioned model's points are rows `NAME@p<i>`) codes the excerpt as a real file:
  the excerpt is written as a float WAV, `compress.encode_file` writes the .fmac and
  `compress.decode_file` decodes it; kbps = bytes of the .fmac file x 8 / seconds.
- MP3 (soundfile/LAME, constant bitrate, at the sample rate that measured best on validation for
  each bitrate: `baselines.mp3_setting`, benchmarks/mp3_rates.py), Opus (soundfile/libopus,
  48 kHz input, variable bitrate; its best input rate, same script) and the reference's
  resampling baseline (16 bits per kept sample: nominal, not a file): `evaluation.baselines`.

Every codec's output is scored the same way, as 16-bit PCM (`rows.as_pcm16`), with
`metrics.compute_all`. Per setting: the mean over clips and its bootstrap 95 % interval that
resamples recordings, not excerpts (`statistics.bootstrap_ci`). For each fmacomp point and each
baseline (MP3, Opus): the baseline at the same bitrate (linear in log kbps between its points;
below its lowest point, that point, i.e. more bits; none above its highest), the paired win rate
(clip by clip, each clip's baseline points interpolated to fmacomp's kbps on that clip), and the
BD-rate (`statistics.bd_rate`) of each point, of each several-point model's curve, and of the
single-point models as one curve ('music-*' for the older shipped ones), or `n/a (reason)` where it is undefined. Writes rd.md, rd.json (every clip) and
rd.png to --out and ends with `name=value` lines.
"""

import concurrent.futures
import json
import multiprocessing
import os
import tempfile

from absl import flags
from absl import logging
import numpy as np
import soundfile as sf

from fmacomp import audio
from fmacomp import errors
from fmacomp import files
from fmacomp import metrics
from fmacomp.evaluation import baselines
from fmacomp.evaluation import clips as clips_lib
from fmacomp.evaluation import rows as rows_lib
from fmacomp.evaluation import statistics
from fmacomp.fmac import compress
from fmacomp.fmac import model_store
import launcher

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DIR = flags.DEFINE_string('manual_dir', os.path.join(_REPO, '..', 'shared', 'realmusic'),
                           'Music folder with a splits.json.')
_SPLIT = flags.DEFINE_string('split', 'test', 'Split whose recordings are coded.')
_OUT = flags.DEFINE_string('out', '/tmp/rd_bench', 'Folder for rd.md, rd.json and rd.png.')
_MODELS = flags.DEFINE_list('models', [], 'Shipped names or workdirs (default: every shipped).')
_EXCERPT_S = flags.DEFINE_float('excerpt_s', 10.0, 'Seconds per clip.')
_EXCERPTS = flags.DEFINE_integer('excerpts', 4, 'Evenly spaced excerpts per recording.')
_VISQOL_EXCERPTS = flags.DEFINE_integer(
    'visqol_excerpts', -1, 'ViSQOL on this many excerpts per recording, nearest its middle '
    '(-1: all).')
_VISQOL_CODECS = flags.DEFINE_list('visqol_codecs', ['fmacomp', 'mp3', 'opus'],
                                   'Codecs that get ViSQOL (resampling is a band-limit ceiling).')
_VISQOL_MAX = flags.DEFINE_float('visqol_max_kbps', None,
                                 'ViSQOL on baseline targets up to this (fmacomp: always).')
_MP3 = flags.DEFINE_list('mp3_kbps', ['8', '16', '24', '32', '48', '64'], 'MP3 targets.')
_OPUS = flags.DEFINE_list('opus_kbps', ['6', '8', '12', '16', '24', '32', '64'], 'Opus targets.')
_RESAMPLING = flags.DEFINE_list('resampling_kbps', ['16', '32', '64', '128'],
                                'Resampling baseline targets (16 bits per kept sample).')
_METRICS = flags.DEFINE_list('metrics', list(metrics.METRICS), 'Metrics to compute.')
_WORKERS = flags.DEFINE_integer('workers', 2, 'Scoring processes.')
GOAL_KBPS = 12.0
ORDER = {'fmacomp': 0, 'mp3': 1, 'opus': 2, 'resampling': 3}


def _visqol_excerpts(count):
  """Excerpt indices that get ViSQOL: the `count` nearest the recording's middle."""
  if _VISQOL_EXCERPTS.value < 0:
    return set(range(count))
  middle = (count - 1) / 2
  return set(sorted(range(count), key=lambda k: (abs(k - middle), k))[:_VISQOL_EXCERPTS.value])


def _score(job):
  """metrics of one decoded clip, its output as 16-bit PCM (run in a worker process)."""
  reference, decoded, rate, names = job
  return metrics.compute_all(reference, rows_lib.as_pcm16(decoded), rate, metrics=names)


def fmacomp_decoded(codec, excerpts, tmp):
  """[(decoded, kbps)] of the loaded operating point `codec` through real .fmac files."""
  out = []
  for clip in excerpts:
    wav, fmac, dec = (os.path.join(tmp, n) for n in ('in.wav', 'x.fmac', 'out.wav'))
    sf.write(wav, clip.audio, clip.rate, subtype='FLOAT')
    result = compress.encode_file(wav, fmac, codec)
    compress.decode_file(fmac, dec, model=codec, subtype='FLOAT')  # quantised when scored
    out.append((audio.read_audio(dec)[0], result.kbps))
  return out


def point_settings(spec):
  """[(setting, OperatingPoint)] of a shipped name or workdir: the model's name (a workdir's
  folder name), with `@p<index>` when it has several points (a rate-conditioned model)."""
  points = model_store.operating_points(spec)
  name = spec if spec in model_store.shipped_models() else os.path.basename(
      os.path.normpath(spec))
  return [(name if len(points) == 1 else f'{name}@p{p.index}', p) for p in points]


def settings(excerpts, tmp):
  """Yields (codec, setting, measured, [(decoded, kbps)]) for every point, one at a time."""
  for spec in _MODELS.value or model_store.shipped_models():
    for setting, point in point_settings(spec):
      yield 'fmacomp', setting, True, fmacomp_decoded(model_store.Codec(point), excerpts, tmp)
  for name, targets in (('mp3', _MP3.value), ('opus', _OPUS.value),
                        ('resampling', _RESAMPLING.value)):
    for kbps in map(float, targets):
      results = [baselines.BASELINES[name](c.audio, c.rate, kbps) for c in excerpts]
      yield name, f'{kbps:g}', results[0].measured, [(r.decoded, r.kbps) for r in results]


def clip_rows(excerpts, pool):
  """One row per (point, clip): codec, setting, clip, excerpt, kbps, measured, metrics."""
  rows = []
  per_recording = max(c.excerpt for c in excerpts) + 1
  with_visqol = _visqol_excerpts(per_recording)
  with tempfile.TemporaryDirectory() as tmp:
    for codec, setting, measured, decoded in settings(excerpts, tmp):
      jobs = []
      for clip, (y, _) in zip(excerpts, decoded):
        names = [m for m in _METRICS.value if m != 'visqol' or (
            clip.excerpt in with_visqol and codec in _VISQOL_CODECS.value and (
                codec == 'fmacomp' or _VISQOL_MAX.value is None
                or float(setting) <= _VISQOL_MAX.value))]
        jobs.append((clip.audio, y, clip.rate, names))
      for clip, (_, kbps), scores in zip(excerpts, decoded, pool.map(_score, jobs)):
        rows.append(dict(codec=codec, setting=setting, clip=clip.track_id,
                         excerpt=clip.excerpt, kbps=kbps, measured=measured, **scores))
      logging.info('%s %s: %.2f kbps', codec, setting, np.mean([k for _, k in decoded]))
  return rows


def summarise(rows):
  """Per (codec, setting): mean kbps, and per metric the mean, its 95 % interval and n."""
  groups = {}
  for row in rows:
    groups.setdefault((row['codec'], row['setting']), []).append(row)
  table = []
  for (codec, setting), members in groups.items():
    entry = dict(codec=codec, setting=setting, clips=len(members),
                 recordings=len({m['clip'] for m in members}),
                 kbps=float(np.mean([m['kbps'] for m in members])),
                 measured=all(m['measured'] for m in members))
    for name in _METRICS.value:
      scored = [(m[name], m['clip']) for m in members if name in m]
      entry[name] = float(np.mean([v for v, _ in scored])) if scored else None
      entry[f'{name}_ci95'] = list(statistics.bootstrap_ci(*zip(*scored))) if scored else None
      entry[f'{name}_n'] = len(scored)
    table.append(entry)
  return sorted(table, key=lambda e: (ORDER.get(e['codec'], 9), e['kbps']))


def _fmt(e, name):
  if e[name] is None:
    return 'n/a'
  low, high = e[f'{name}_ci95']
  return f'{e[name]:.3f} [{low:.3f}, {high:.3f}]'


def markdown(table):
  names = _METRICS.value
  lines = ['| codec | setting | kbps (measured) | ' + ' | '.join(names) + ' |',
           '|---|---|---:|' + '---:|' * len(names)]
  for e in table:
    kbps = f"{e['kbps']:.2f}" + ('' if e['measured'] else ' (nominal)')
    lines.append(f"| {e['codec']} | {e['setting']} | {kbps} | " +
                 ' | '.join(_fmt(e, n) for n in names) + ' |')
  return '\n'.join(lines) + '\n'


def baseline_at(table, codec, metric, kbps):
  """`codec`'s mean `metric` at `kbps` (`statistics.paired_baseline` on the means)."""
  points = [(e['kbps'], e[metric]) for e in table if e['codec'] == codec]
  return statistics.paired_baseline(kbps, *zip(*points)) if points else None


def win_rates(rows, setting, base, metric):
  """(wins, n) of fmacomp `setting` over `base`, clip by clip at fmacomp's kbps on the clip."""
  by_clip = {}
  for r in rows:
    by_clip.setdefault((r['clip'], r['excerpt']), []).append(r)
  ours, theirs = [], []
  for members in by_clip.values():
    mine = next((r for r in members if r['codec'] == 'fmacomp' and r['setting'] == setting),
                None)
    points = [(r['kbps'], r.get(metric)) for r in members if r['codec'] == base]
    if mine is None or mine.get(metric) is None or not points:
      continue
    ours.append(mine[metric])
    theirs.append(statistics.paired_baseline(mine['kbps'], *zip(*points)))
  return statistics.win_rate(ours, theirs, metric in metrics.HIGHER_IS_BETTER)


def curves(table):
  """{name: [settings]}: each fmacomp point alone, the points of each several-point model as
  its curve, and the single-point models as one curve ('music-*' for the older shipped ones)."""
  points = [e['setting'] for e in table if e['codec'] == 'fmacomp']
  out = {p: [p] for p in points}
  for name in dict.fromkeys(p.split('@')[0] for p in points if '@' in p):
    out[name] = [p for p in points if p.split('@')[0] == name]
  singles = [p for p in points if '@' not in p]
  if len(singles) > 1:
    prefix = os.path.commonprefix(singles).rsplit('-', 1)[0]
    out[f'{prefix}-*' if prefix else 'all'] = singles
  return out


def bd_rates(table):
  """name=value lines: BD-rate of each fmacomp curve against MP3 and Opus, per metric."""
  lines = []
  for name, members in curves(table).items():
    for base in ('mp3', 'opus'):
      for metric in ('mel_distance', 'visqol'):
        if metric not in _METRICS.value:
          continue
        higher = metric in metrics.HIGHER_IS_BETTER
        anchor = [(e['kbps'], e[metric]) for e in table if e['codec'] == base]
        test = [(e['kbps'], e[metric]) for e in table
                if e['codec'] == 'fmacomp' and e['setting'] in members]
        if not anchor or not test:
          continue
        value, reason = statistics.bd_rate(list(zip(*anchor)), list(zip(*test)), higher,
                                           names=(base, name))
        text = f'{value:.1f}' if value is not None else f'n/a ({reason})'
        lines.append(f'bd_rate_{name}_vs_{base}_{metric}={text}')
        if len(members) == 1 and test[0][1] is not None:
          kbps, reason = statistics.rate_at_quality(list(zip(*anchor)), test[0][1], higher)
          text = f'{kbps:.2f}' if kbps is not None else f'n/a ({reason})'
          lines.append(f'{base}_kbps_at_{name}_{metric}={text}')
  return lines


def comparisons(table, rows):
  """name=value lines for each fmacomp point against MP3 and Opus at its bitrate."""
  lines = []
  for e in (e for e in table if e['codec'] == 'fmacomp'):
    p = e['setting']
    lines.append(f"{p}_kbps={e['kbps']:.3f}")
    for metric in ('mel_distance', 'visqol'):
      if metric not in _METRICS.value or e[metric] is None:
        continue
      lines.append(f'{p}_{metric}={e[metric]:.4f}')
      lines.append(f'{p}_{metric}_ci95={e[metric + "_ci95"][0]:.4f},{e[metric + "_ci95"][1]:.4f}')
      for base in ('mp3', 'opus'):
        theirs = baseline_at(table, base, metric, e['kbps'])
        if theirs is None:
          continue
        lines.append(f'{base}_at_{p}_{metric}={theirs:.4f}')
        wins, n = win_rates(rows, p, base, metric)
        lines.append(f'{p}_{metric}_wins_vs_{base}={wins}/{n}')
        if e['kbps'] <= GOAL_KBPS:
          better = e[metric] > theirs if metric in metrics.HIGHER_IS_BETTER else e[metric] < theirs
          lines.append(f'{p}_{metric}_beats_{base}={int(better)}')
  return lines


def _curve(entry):
  """The plotted line an entry belongs to: its model for a several-point fmacomp model, 'fmacomp
  (single-point models)' for the others, the codec for a baseline."""
  if entry['codec'] != 'fmacomp':
    return entry['codec']
  return entry['setting'].split('@')[0] if '@' in entry['setting'] else (
      'fmacomp (single-point models)')


def plot(table, path):
  """The curves per metric; resampling's nominal points hollow and labelled, intervals drawn."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  shown = [m for m in ('mel_distance', 'log_spectral_distance', 'visqol', 'si_sdr')
           if m in _METRICS.value]
  fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.8), squeeze=False)
  styles = {'fmacomp': ('tab:red', 'o', '-'), 'mp3': ('tab:blue', 's', '--'),
            'opus': ('tab:green', '^', '--'), 'resampling': ('tab:gray', 'D', ':')}
  # One line per curve: each several-point fmacomp model, the single-point ones together, and
  # each baseline (a line through points of different models would zigzag between them).
  series = [(c, n, styles[c]) for c, n in dict.fromkeys(
      (e['codec'], _curve(e)) for e in table if e['codec'] in styles)]
  shades = iter(('tab:red', 'tab:orange', 'tab:purple', 'tab:brown'))
  series = [(c, n, (next(shades),) + style[1:] if c == 'fmacomp' else style)
            for c, n, style in series]
  for ax, metric in zip(axes[0], shown):
    for codec, name, (color, marker, line) in series:
      points = sorted((e['kbps'], e[metric], e[metric + '_ci95'], e['measured']) for e in table
                      if e['codec'] == codec and _curve(e) == name and e[metric] is not None)
      if not points:
        continue
      kbps, values, ci, measured = zip(*points)
      errors_ = np.abs(np.asarray(ci).T - np.asarray(values))  # [2, K]
      nominal = not all(measured)
      ax.errorbar(kbps, values, yerr=errors_, fmt=line, color=color, capsize=2, lw=1,
                  label=name + (' (nominal kbps)' if nominal else ''))
      ax.scatter(kbps, values, marker=marker, color=color, s=22, zorder=3,
                 facecolors='none' if nominal else color)
    ax.set_xscale('log')
    ax.set_xlabel('kbps (measured file; hollow: nominal 16 bits/sample)', fontsize=8)
    ax.set_title(metric + (' (higher is better)' if metric in metrics.HIGHER_IS_BETTER else
                           ' (lower is better)'), fontsize=9)
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=7)
  fig.suptitle('mean over clips, bars: bootstrap 95 % interval over recordings', fontsize=8)
  fig.tight_layout()
  with files.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=110, format='png')
  plt.close(fig)


def main(argv):
  del argv
  excerpts = clips_lib.folder_excerpts(_DIR.value, _SPLIT.value, _EXCERPT_S.value,
                                       _EXCERPTS.value)
  logging.info('%d clips of %.0f s from %s', len(excerpts), _EXCERPT_S.value, _SPLIT.value)
  if not (_MODELS.value or model_store.shipped_models()):
    raise errors.InputError('--models', 'no shipped model and none given')
  # Spawned workers: forking a process that has started JAX's threads can deadlock.
  with concurrent.futures.ProcessPoolExecutor(
      _WORKERS.value, mp_context=multiprocessing.get_context('spawn')) as pool:
    rows = clip_rows(excerpts, pool)
  table = summarise(rows)
  os.makedirs(_OUT.value, exist_ok=True)
  text = markdown(table)
  lines = comparisons(table, rows) + bd_rates(table)
  recordings = len({c.track_id for c in excerpts})
  lines += [f'clips={len(excerpts)}', f'recordings={recordings}', f'out={_OUT.value}']
  files.write_text_atomic(os.path.join(_OUT.value, 'rd.md'), text)
  files.write_text_atomic(os.path.join(_OUT.value, 'rd.json'), json.dumps(
      dict(table=table, clips=rows, lines=lines), indent=1))
  plot(table, os.path.join(_OUT.value, 'rd.png'))
  print(text)
  for line in lines:
    print(line)


if __name__ == '__main__':
  launcher.run(main)
