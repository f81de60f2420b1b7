r"""Rate-distortion on real music: fmacomp's shipped codecs vs MP3, Opus and resampling.

  python benchmarks/rd_bench.py [--out=/tmp/rd] [--manual_dir=../shared/realmusic]
      [--models=music-6kbps,...] [--excerpt_s=10]

Clips: a --excerpt_s excerpt from the middle of every recording of the folder's test split
(splits.json; never a training recording), downmixed to mono at its stored rate: that is the
reference every metric compares with (DESIGN.md "Metrics").

- fmacomp: each shipped model (or --models: names or workdirs) codes the excerpt as a real file:
  the excerpt is written as a float WAV, `compress.encode_file` writes the .fmac and
  `compress.decode_file` a 16-bit WAV (what `launch/decode.py` gives); kbps = bytes of the .fmac
  file x 8 / seconds.
- MP3 (soundfile/LAME, constant bitrate, the highest rate that allows the target), Opus
  (soundfile/libopus, 48 kHz, variable bitrate) and the reference's resampling baseline
  (16 bits per kept sample, nominal): `fmacomp.evaluation.baselines`, measured kbps.

Every point is scored with `metrics.compute_all` (mel distance, LSD, ViSQOL, SI-SDR, seed
spectral RMSE) and averaged over the clips. Writes rd.md (the table), rd.json (every clip) and
rd.png (the curves) to --out, and ends with `name=value` lines, including the issue's goals:
at or below 12 kbps, each fmacomp point against MP3 and Opus interpolated to its bitrate (log
kbps; a baseline that cannot go as low is taken at its lowest measured point, i.e. given more
bits).
"""

import json
import os
import tempfile

from absl import flags
from absl import logging
import numpy as np
import soundfile as sf

from fmacomp import audio
from fmacomp.evaluation import baselines
import launcher
from fmacomp.datasets import music_folder
from fmacomp import errors
from fmacomp import files
from fmacomp.fmac import compress
from fmacomp.fmac import model_store
from fmacomp import metrics

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DIR = flags.DEFINE_string('manual_dir', os.path.join(_REPO, '..', 'shared', 'realmusic'),
                           'Music folder with a splits.json.')
_SPLIT = flags.DEFINE_string('split', 'test', 'Split whose recordings are coded.')
_OUT = flags.DEFINE_string('out', '/tmp/rd_bench', 'Folder for rd.md, rd.json and rd.png.')
_MODELS = flags.DEFINE_list('models', [], 'Shipped names or workdirs (default: every shipped).')
_EXCERPT_S = flags.DEFINE_float('excerpt_s', 10.0, 'Seconds per clip.')
_MP3 = flags.DEFINE_list('mp3_kbps', ['8', '16', '24', '32', '48', '64'], 'MP3 targets.')
_OPUS = flags.DEFINE_list('opus_kbps', ['6', '8', '12', '16', '24', '32', '64'], 'Opus targets.')
_RESAMPLING = flags.DEFINE_list('resampling_kbps', ['16', '32', '64', '128'],
                                'Resampling baseline targets (16 bits per kept sample).')
_METRICS = flags.DEFINE_list('metrics', list(metrics.METRICS), 'Metrics to compute.')
GOAL_KBPS = 12.0


def clips(folder, split, seconds):
  """[(relpath, float32 [T] mono excerpt, rate)] from the middle of each recording of `split`."""
  splits = music_folder.read_splits_file(os.path.join(folder, music_folder.SPLITS_FILE))
  out = []
  for rel in sorted(p for p, s in splits.items() if s == split):
    path = os.path.join(folder, rel)
    info = audio.audio_info(path)
    start = max(0.0, (info.duration_s - seconds) / 2)
    x, rate = audio.read_audio(path, start_s=start, duration_s=seconds)
    out.append((rel, x, rate))
  if not out:
    raise errors.InputError(folder, f'no recordings in split {split!r}')
  return out


def _score(x, y, rate):
  return metrics.compute_all(x, y, rate, metrics=_METRICS.value)


def fmacomp_rows(spec, excerpts, tmp):
  """One row per clip: the shipped model (or workdir) `spec` through real .fmac files."""
  codec = model_store.load(spec)
  # A workdir's files carry the config's model name: the row is named after the workdir.
  setting = codec.point.model if spec in model_store.shipped_models() else os.path.basename(
      os.path.normpath(spec))
  rows = []
  for rel, x, rate in excerpts:
    wav, fmac, out = (os.path.join(tmp, n) for n in ('in.wav', 'x.fmac', 'out.wav'))
    sf.write(wav, x, rate, subtype='FLOAT')
    result = compress.encode_file(wav, fmac, codec)
    compress.decode_file(fmac, out, model=codec)
    y, _ = audio.read_audio(out)
    rows.append(dict(codec='fmacomp', setting=setting, clip=rel,
                     kbps=result.kbps, measured=True, **_score(x, y, rate)))
    logging.info('%s %s: %.2f kbps', setting, rel, result.kbps)
  return rows


def baseline_rows(excerpts):
  rows = []
  for name, targets in (('mp3', _MP3.value), ('opus', _OPUS.value),
                        ('resampling', _RESAMPLING.value)):
    for kbps in map(float, targets):
      for rel, x, rate in excerpts:
        r = baselines.BASELINES[name](x, rate, kbps)
        rows.append(dict(codec=name, setting=f'{kbps:g}', clip=rel, kbps=r.kbps,
                         measured=r.measured, **_score(x, r.decoded, rate)))
      logging.info('%s %g kbps done', name, kbps)
  return rows


def summarise(rows):
  """Mean kbps and metrics per (codec, setting), ordered by codec then bitrate."""
  groups = {}
  for row in rows:
    groups.setdefault((row['codec'], row['setting']), []).append(row)
  table = []
  for (codec, setting), members in groups.items():
    entry = dict(codec=codec, setting=setting, clips=len(members),
                 kbps=float(np.mean([m['kbps'] for m in members])),
                 measured=all(m['measured'] for m in members))
    for name in _METRICS.value:
      values = [m[name] for m in members if name in m]
      entry[name] = float(np.mean(values)) if values else float('nan')
    table.append(entry)
  order = {'fmacomp': 0, 'mp3': 1, 'opus': 2, 'resampling': 3}
  return sorted(table, key=lambda e: (order.get(e['codec'], 9), e['kbps']))


def markdown(table):
  names = _METRICS.value
  lines = ['| codec | setting | kbps (measured) | ' + ' | '.join(names) + ' |',
           '|---|---|---:|' + '---:|' * len(names)]
  for e in table:
    kbps = f"{e['kbps']:.2f}" + ('' if e['measured'] else ' (nominal)')
    lines.append(f"| {e['codec']} | {e['setting']} | {kbps} | " +
                 ' | '.join(f'{e[n]:.3f}' for n in names) + ' |')
  return '\n'.join(lines) + '\n'


def interpolate(table, codec, metric, kbps):
  """`codec`'s `metric` at `kbps` (linear in log kbps; clamped to its measured range)."""
  points = sorted((e['kbps'], e[metric]) for e in table if e['codec'] == codec)
  if not points:
    return float('nan')
  xs, ys = zip(*points)
  return float(np.interp(np.log(kbps), np.log(xs), ys))


def plot(table, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  shown = [m for m in ('mel_distance', 'log_spectral_distance', 'visqol', 'si_sdr')
           if m in _METRICS.value]
  fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6), squeeze=False)
  styles = {'fmacomp': 'o-', 'mp3': 's--', 'opus': '^--', 'resampling': 'x:'}
  for ax, metric in zip(axes[0], shown):
    for codec, style in styles.items():
      points = [(e['kbps'], e[metric]) for e in table if e['codec'] == codec]
      if points:
        ax.plot(*zip(*sorted(points)), style, label=codec)
    ax.set_xscale('log')
    ax.set_xlabel('measured kbps')
    ax.set_title(metric + (' (higher is better)' if metric in metrics.HIGHER_IS_BETTER else
                           ' (lower is better)'), fontsize=9)
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=8)
  fig.tight_layout()
  with files.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=110, format='png')
  plt.close(fig)


def goals(table):
  """name=value lines for each fmacomp point at or below GOAL_KBPS against MP3 and Opus."""
  lines = []
  for e in (e for e in table if e['codec'] == 'fmacomp'):
    p = e['setting']
    lines.append(f"{p}_kbps={e['kbps']:.3f}")
    for metric in ('mel_distance', 'visqol'):
      if metric not in _METRICS.value:
        continue
      lines.append(f'{p}_{metric}={e[metric]:.4f}')
      for base in ('mp3', 'opus'):
        lines.append(f"{base}_at_{p}_{metric}={interpolate(table, base, metric, e['kbps']):.4f}")
    if e['kbps'] <= GOAL_KBPS and 'mel_distance' in _METRICS.value:
      for base in ('mp3', 'opus'):
        theirs = interpolate(table, base, 'mel_distance', e['kbps'])
        if not np.isnan(theirs):  # no goal line against a baseline that was not run
          lines.append(f"{p}_mel_beats_{base}={int(e['mel_distance'] < theirs)}")
      theirs = interpolate(table, 'opus', 'visqol', e['kbps'])
      if 'visqol' in _METRICS.value and not np.isnan(theirs):
        lines.append(f"{p}_visqol_beats_opus={int(e['visqol'] > theirs)}")
  return lines


def main(argv):
  del argv
  excerpts = clips(_DIR.value, _SPLIT.value, _EXCERPT_S.value)
  logging.info('%d clips of %.0f s from %s', len(excerpts), _EXCERPT_S.value, _SPLIT.value)
  specs = _MODELS.value or model_store.shipped_models()
  if not specs:
    raise errors.InputError('--models', 'no shipped model and none given')
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for spec in specs:
      rows += fmacomp_rows(spec, excerpts, tmp)
  rows += baseline_rows(excerpts)
  table = summarise(rows)
  os.makedirs(_OUT.value, exist_ok=True)
  text = markdown(table)
  for name, content in (('rd.md', text), ('rd.json', json.dumps(dict(table=table, clips=rows),
                                                                 indent=1))):
    with files.atomic_path(os.path.join(_OUT.value, name)) as tmp_path:
      with open(tmp_path, 'w') as f:
        f.write(content)
  plot(table, os.path.join(_OUT.value, 'rd.png'))
  print(text)
  for line in goals(table) + [f'clips={len(excerpts)}', f'out={_OUT.value}']:
    print(line)


if __name__ == '__main__':
  launcher.run(main)
