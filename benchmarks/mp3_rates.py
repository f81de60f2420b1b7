r"""MP3's best sample rate per bitrate, and Opus's input rates, measured on validation excerpts.

  python benchmarks/mp3_rates.py [--out=runs/mp3_rates] [--split=validation] [--excerpts=2]

LAME codes a bitrate at any sample rate whose MPEG version allows it (MPEG-2.5: 8-12 kHz,
8-64 kbps; MPEG-2: 16-24 kHz, 8-160 kbps; MPEG-1: 32-48 kHz, 32-320 kbps). A low bitrate at a
high rate spends its bits on a band it cannot code, so the rate matters as much as the bitrate.
For every bitrate of the MP3 ladder this codes `--excerpts` evenly spaced excerpts of each
recording of the realmusic `--split` (validation: choosing a setting on test would tune the
baseline on the test set) at each rate up to the input's that allows it, and scores the mel
distance (DESIGN.md) of the 16-bit output, averaged over the clips; ViSQOL too, on the
`--visqol_top` best rates of the bitrates up to `--visqol_max_kbps`, as a check. The lowest mel
distance is the rate `baselines.mp3_setting` uses: this script prints the
`MP3_MEL_VALIDATION` table that `fmacomp/evaluation/baselines.py` carries.

Opus: soundfile's libopus takes no bandwidth or complexity setting, so the one choice left to a
user is the input rate (8, 12, 16, 24 or 48 kHz). Each Opus target is coded from each input
rate the same way; the table shows that 48 kHz input, where libopus picks the bandwidth itself,
is its best (or where it is not). For 48 kHz input it also reads the TOC byte of every Opus
packet (RFC 6716, 3.1) to show the mode and audio bandwidth libopus chose at each bitrate.

Writes mp3_rates.md and mp3_rates.json to --out; ends with `name=value` lines.
"""

import collections
import concurrent.futures
import json
import os

from absl import flags
from absl import logging
import numpy as np

import launcher
from fmacomp import files
from fmacomp import metrics
from fmacomp.evaluation import baselines
from fmacomp.evaluation import clips as clips_lib
from fmacomp.evaluation import rows as rows_lib

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DIR = flags.DEFINE_string('manual_dir', os.path.join(_REPO, '..', 'shared', 'realmusic'),
                           'Music folder with a splits.json.')
_SPLIT = flags.DEFINE_string('split', 'validation', 'Split whose recordings are coded.')
_OUT = flags.DEFINE_string('out', os.path.join(_REPO, 'runs', 'mp3_rates'), 'Output folder.')
_EXCERPT_S = flags.DEFINE_float('excerpt_s', 10.0, 'Seconds per excerpt.')
_EXCERPTS = flags.DEFINE_integer('excerpts', 2, 'Evenly spaced excerpts per recording.')
_MP3 = flags.DEFINE_list('mp3_kbps', [str(k) for k in baselines.LADDERS['full']['mp3']],
                         'MP3 bitrates.')
_OPUS = flags.DEFINE_list('opus_kbps', ['6', '8', '12', '16', '24', '32', '48', '64'],
                          'Opus targets.')
_VISQOL_MAX = flags.DEFINE_float('visqol_max_kbps', 32, 'ViSQOL for MP3 bitrates up to this.')
_VISQOL_TOP = flags.DEFINE_integer('visqol_top', 2, 'ViSQOL on this many best rates (by mel).')
_VISQOL_EXCERPTS = flags.DEFINE_integer('visqol_excerpts', 1,
                                        'ViSQOL on the first N excerpts of each recording.')
_WORKERS = flags.DEFINE_integer('workers', 2, 'Processes.')

# RFC 6716 3.1: TOC config (toc >> 3) -> (mode, audio bandwidth).
_OPUS_CONFIGS = ([('SILK', 'NB')] * 4 + [('SILK', 'MB')] * 4 + [('SILK', 'WB')] * 4 +
                 [('Hybrid', 'SWB')] * 2 + [('Hybrid', 'FB')] * 2 + [('CELT', 'NB')] * 4 +
                 [('CELT', 'WB')] * 4 + [('CELT', 'SWB')] * 4 + [('CELT', 'FB')] * 4)


def ogg_packets(data):
  """The packets of an Ogg stream (bytes), in order."""
  packets, partial, pos = [], b'', 0
  while pos + 27 <= len(data) and data[pos:pos + 4] == b'OggS':
    n_segments = data[pos + 26]
    lacing = data[pos + 27:pos + 27 + n_segments]
    pos += 27 + n_segments
    for size in lacing:
      partial += data[pos:pos + size]
      pos += size
      if size < 255:  # a lacing value below 255 ends a packet
        packets.append(partial)
        partial = b''
  return packets


def opus_modes(data):
  """{'mode bandwidth': fraction of audio packets} of an Ogg Opus file."""
  audio_packets = [p for p in ogg_packets(data)[2:] if p]  # after OpusHead and OpusTags
  counts = collections.Counter(' '.join(_OPUS_CONFIGS[p[0] >> 3]) for p in audio_packets)
  return {k: v / len(audio_packets) for k, v in counts.most_common()}


def _code(job):
  """One (codec, kbps, rate) over the clips: mean kbps, per-clip mel (and ViSQOL)."""
  codec, kbps, rate, clips, visqol = job
  out = {'kbps': [], 'mel_distance': [], 'visqol': [], 'modes': []}
  for clip in clips:
    fn = baselines.mp3 if codec == 'mp3' else baselines.opus
    result = fn(clip.audio, clip.rate, kbps, rate=rate)
    y = rows_lib.as_pcm16(result.decoded)  # every codec is scored on 16-bit output
    out['kbps'].append(result.kbps)
    names = ['visqol'] if visqol else ['mel_distance']
    scores = metrics.compute_all(clip.audio, y, clip.rate, metrics=names)
    for name in names:
      out[name].append(scores[name])
    if codec == 'opus' and rate == baselines.OPUS_RATE and not visqol:
      out['modes'].append(_opus_file_modes(clip, kbps))
  return job[:3], out


def _opus_file_modes(clip, kbps):
  import io  # pylint: disable=g-import-not-at-top
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  from fmacomp import audio  # pylint: disable=g-import-not-at-top
  buf = io.BytesIO()
  with sf.SoundFile(buf, 'w', baselines.OPUS_RATE, 1, format='OGG', subtype='OPUS',
                    compression_level=baselines.opus_compression_level(kbps)) as f:
    f.write(audio.resample(clip.audio, clip.rate, baselines.OPUS_RATE))
  return opus_modes(buf.getvalue())


def _run(jobs):
  with concurrent.futures.ProcessPoolExecutor(_WORKERS.value) as pool:
    results = {}
    for key, out in pool.map(_code, jobs):
      results[key] = out
      logging.info('%s %g kbps at %d Hz: %s', *key,
                   {k: round(float(np.mean(v)), 3) for k, v in out.items() if v and k != 'modes'})
    return results


def _mean_modes(modes):
  total = collections.Counter()
  for m in modes:
    total.update(m)
  return {k: v / len(modes) for k, v in total.most_common()}


def main(argv):
  del argv
  clips = clips_lib.folder_excerpts(_DIR.value, _SPLIT.value, _EXCERPT_S.value, _EXCERPTS.value)
  top_rate = min(c.rate for c in clips)
  logging.info('%d excerpts of %g s from %s', len(clips), _EXCERPT_S.value, _SPLIT.value)
  mp3_kbps = [int(k) for k in _MP3.value]
  jobs = [('mp3', b, r, clips, False) for b in mp3_kbps
          for r in baselines.mp3_candidates(b, max(c.rate for c in clips))]
  jobs += [('opus', float(k), r, clips, False) for k in _OPUS.value
           for r in baselines.OPUS_INPUT_RATES]
  mel = _run(jobs)
  mp3_table = {}
  for (codec, b, r), out in mel.items():
    if codec == 'mp3':
      mp3_table.setdefault(b, {})[r] = round(float(np.mean(out['mel_distance'])), 3)
  # ViSQOL on the best few rates of the low bitrates, where the choice matters.
  visqol_clips = [c for c in clips if c.excerpt < _VISQOL_EXCERPTS.value]
  vjobs = [('mp3', b, r, visqol_clips, True) for b in mp3_kbps if b <= _VISQOL_MAX.value
           for r in sorted(mp3_table[b], key=mp3_table[b].get)[:_VISQOL_TOP.value]]
  visqol = {k[:3]: v for k, v in _run(vjobs).items()} if vjobs else {}
  report = dict(split=_SPLIT.value, clips=[(c.track_id, c.excerpt) for c in clips],
                excerpt_s=_EXCERPT_S.value, top_rate=top_rate,
                mp3={f'{b} {r}': dict(kbps=float(np.mean(o['kbps'])),
                                      mel_distance=float(np.mean(o['mel_distance'])),
                                      per_clip=o['mel_distance'])
                     for (c, b, r), o in mel.items() if c == 'mp3'},
                mp3_visqol={f'{b} {r}': dict(visqol=float(np.mean(o['visqol'])),
                                             per_clip=o['visqol'])
                            for (_, b, r), o in visqol.items()},
                opus={f'{k:g} {r}': dict(kbps=float(np.mean(o['kbps'])),
                                         mel_distance=float(np.mean(o['mel_distance'])),
                                         per_clip=o['mel_distance'],
                                         modes=_mean_modes(o['modes']) if o['modes'] else None)
                      for (c, k, r), o in mel.items() if c == 'opus'},
                mp3_table=mp3_table)
  text = markdown(report, mp3_kbps)
  os.makedirs(_OUT.value, exist_ok=True)
  files.write_text_atomic(os.path.join(_OUT.value, 'mp3_rates.json'), json.dumps(report, indent=1))
  files.write_text_atomic(os.path.join(_OUT.value, 'mp3_rates.md'), text)
  print(text)
  print('MP3_MEL_VALIDATION = ' + repr(mp3_table))
  for b, by_rate in mp3_table.items():
    print(f'mp3_best_rate_{b}kbps={min(by_rate, key=by_rate.get)}')
  for k in _OPUS.value:
    by_rate = {r: report['opus'][f'{float(k):g} {r}']['mel_distance']
               for r in baselines.OPUS_INPUT_RATES}
    print(f'opus_best_rate_{k}kbps={min(by_rate, key=by_rate.get)}')
  print(f'clips={len(clips)}')


def markdown(report, mp3_kbps):
  """The two tables: MP3 mel distance by bitrate and rate; Opus by target and input rate."""
  rates = sorted({int(k.split()[1]) for k in report['mp3']})
  lines = ['MP3 (CBR): mel distance by sample rate (kHz); ViSQOL in brackets where measured; '
           'best per bitrate in bold', '',
           '| kbps | ' + ' | '.join(f'{r / 1000:g}' for r in rates) + ' | best |',
           '|---:|' + '---:|' * (len(rates) + 1)]
  for b in mp3_kbps:
    by_rate = report['mp3_table'][b]
    best = min(by_rate, key=by_rate.get)
    cells = []
    for r in rates:
      if r not in by_rate:
        cells.append('-')
        continue
      cell = f'{by_rate[r]:.3f}'
      cell = f'**{cell}**' if r == best else cell
      v = report['mp3_visqol'].get(f'{b} {r}')
      cells.append(cell + (f' [{v["visqol"]:.2f}]' if v else ''))
    lines.append(f'| {b} | ' + ' | '.join(cells) + f' | {best / 1000:g} kHz |')
  orates = baselines.OPUS_INPUT_RATES
  lines += ['', 'Opus (VBR): mel distance / measured kbps by input rate (kHz); libopus mode and '
            'bandwidth at 48 kHz input (share of packets)', '',
            '| target kbps | ' + ' | '.join(f'{r / 1000:g}' for r in orates) +
            ' | best | 48 kHz: mode bandwidth |', '|---:|' + '---:|' * (len(orates) + 1) + '---|']
  targets = sorted({float(k.split()[0]) for k in report['opus']})
  for k in targets:
    entries = {r: report['opus'][f'{k:g} {r}'] for r in orates}
    best = min(orates, key=lambda r: entries[r]['mel_distance'])
    cells = [(f'**{e["mel_distance"]:.3f}**' if r == best else f'{e["mel_distance"]:.3f}') +
             f' / {e["kbps"]:.1f}' for r, e in entries.items()]
    modes = entries[baselines.OPUS_RATE]['modes'] or {}
    mode_text = ', '.join(f'{m} {v:.0%}' for m, v in modes.items() if v >= 0.01)
    lines.append(f'| {k:g} | ' + ' | '.join(cells) + f' | {best / 1000:g} kHz | {mode_text} |')
  return '\n'.join(lines) + '\n'


if __name__ == '__main__':
  launcher.run(main)
