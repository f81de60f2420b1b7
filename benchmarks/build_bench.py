"""Dataset build benchmark: throughput and peak memory of one build on each executor.

  nice python benchmarks/build_bench.py [--music_dir=../shared/realmusic] [--copies=4]

1. Makes a music folder of real size out of links: every file of --music_dir's splits.json,
   its `train` files --copies times under distinct names (`<name>.copyK.<ext>`, same sub-folder,
   so the same label), symlinked into a temporary folder (the music is never copied), with a
   splits.json of its own.
2. Builds it at 44.1 kHz with `launch/prepare.py` (a subprocess each, a fresh data_dir each) on
   every --executors entry: `workers=N` (the spawn pool; 1 = in process) or `beam` (Apache
   Beam's FnApiRunner in multi-processing mode with --beam_workers workers). Each build's
   x real time is the audio stored over its wall time (start-up and the summary included); its
   memory is (a) the peak of the summed RSS of the whole process tree, sampled every 0.2 s
   (the workers run at the same time, so this is what the machine must hold) and (b) the
   largest single process's `ru_maxrss` (wait4 of the build, children included). Its CPU
   seconds (user + system, children included) give x real time per CPU second: what one
   worker with a core of its own does, whatever else loads the machine.
3. Checks the done-when of issue 9 on the `workers=2` build: `tensorflow` cannot be imported,
   one split holds more than 1 GB of int16, the peak is under 3 GiB, and the prepare summary's
   examples, tracks and hours per split equal what the files' headers say (frames resampled to
   44.1 kHz, cut into 30-s records, a trailing piece under 1 s dropped).
4. Projects the build time of fma/large (3.2 M s of audio) and fma/full (29.6 M s) on 2, 16 and
   100 workers, one core each, from the one-worker build's x real time per CPU second (the
   work scales by shards, which share nothing).

Ends with `name=value` lines and a markdown table (stdout); logs go to stderr. The machine's
load (`os.getloadavg`) is printed beside each build: on a shared machine read the ratios.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from absl import flags
from absl import logging

import launcher
from fmacomp import audio
from fmacomp import errors
from fmacomp.datasets import music_folder

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MUSIC_DIR = flags.DEFINE_string(
    'music_dir', os.path.join(_REPO, '..', 'shared', 'realmusic'),
    'A music folder with a splits.json (its files are linked, never copied).')
_COPIES = flags.DEFINE_integer('copies', 4, 'Links per train file (the train split grows).',
                               lower_bound=1)
_EXECUTORS = flags.DEFINE_list('executors', ['workers=1', 'workers=2', 'beam'],
                               'Builds to run, in order: workers=N or beam.')
_BEAM_WORKERS = flags.DEFINE_integer('beam_workers', 2, 'FnApiRunner worker processes.')
_TMP_DIR = flags.DEFINE_string('tmp_dir', None, 'Where the links and builds go (default: the '
                               "system's temporary folder; builds are removed when measured).")
_MAX_PEAK_GIB = 3.0
_RATE = 44100
_RECORD_S = 30.0
_MIN_S = 5.0  # music_folder's min_duration_s
# Seconds of audio of FMA's large subset (30-s clips) and of its full-length tracks (issue 9).
PROJECTED = {'fma/large': 3.2e6, 'fma/full': 29.6e6}
PROJECTED_WORKERS = (2, 16, 100)
_BEAM_RUNNER = 'apache_beam.runners.portability.fn_api_runner.FnApiRunner'


def link_folder(source, dest, copies):
  """Links `source`'s listed files into `dest`, train files `copies` times; returns the split
  listing {split: [relpath]}."""
  listing = music_folder.read_splits_file(os.path.join(source, music_folder.SPLITS_FILE))
  splits = {}
  for rel, split in sorted(listing.items()):
    stem, ext = os.path.splitext(rel)
    names = [f'{stem}.copy{k}{ext}' for k in range(copies)] if split == 'train' else [rel]
    for name in names:
      os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
      os.symlink(os.path.join(source, rel), os.path.join(dest, name))
      splits.setdefault(split, []).append(name)
  with open(os.path.join(dest, music_folder.SPLITS_FILE), 'w') as f:
    json.dump(splits, f, indent=1)
  return splits


def stored_samples(frames, rate):
  """Samples a file of `frames` at `rate` stores at 44.1 kHz (soxr gives round(n * to / from))."""
  return frames if rate == _RATE else int(round(frames * _RATE / rate))


def expected_counts(folder, splits):
  """{split: {'examples', 'tracks', 'samples'}} from the files' headers (the build's rules)."""
  record = int(round(_RECORD_S * _RATE))
  out = {}
  for split, names in splits.items():
    entry = {'examples': 0, 'tracks': 0, 'samples': 0}
    for name in names:
      info = audio.audio_info(os.path.join(folder, name))
      length = stored_samples(info.frames, info.sample_rate)
      if length < _MIN_S * _RATE:
        continue
      pieces = [min(record, length - s) for s in range(0, length, record)]
      pieces = pieces[:1] + [p for p in pieces[1:] if p >= _RATE]  # trailing piece < 1 s
      entry['examples'] += len(pieces)
      entry['tracks'] += 1
      entry['samples'] += sum(pieces)
    out[split] = entry
  return out


def _tree_rss(root):
  """Bytes of resident memory of `root` and all its descendants (from /proc)."""
  children = {}
  for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
      with open(f'/proc/{pid}/stat') as f:
        ppid = int(f.read().rsplit(')', 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
      continue
    children.setdefault(ppid, []).append(int(pid))
  total, todo, page = 0, [root], os.sysconf('SC_PAGE_SIZE')
  while todo:
    pid = todo.pop()
    todo += children.get(pid, [])
    try:
      with open(f'/proc/{pid}/statm') as f:
        total += int(f.read().split()[1]) * page
    except (OSError, IndexError, ValueError):
      pass
  return total


def run_build(command):
  """Runs `command`; returns (wall s, CPU s, peak tree RSS bytes, ru_maxrss bytes, stdout)."""
  out = tempfile.TemporaryFile()
  t0 = time.perf_counter()
  proc = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, cwd=_REPO)
  peak, done = [0], threading.Event()

  def sample():
    while not done.wait(0.2):
      peak[0] = max(peak[0], _tree_rss(proc.pid))

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  # wait4, not Popen.wait: its rusage is this build's (children included), not the bench's.
  _, status, usage = os.wait4(proc.pid, 0)
  wall = time.perf_counter() - t0
  done.set()
  sampler.join()
  proc.returncode = os.waitstatus_to_exitcode(status)
  out.seek(0)
  text = out.read().decode()
  if proc.returncode:
    raise errors.RunError(' '.join(command), f'exit {proc.returncode}:\n{text}')
  return wall, usage.ru_utime + usage.ru_stime, peak[0], usage.ru_maxrss * 1024, text


def prepare_command(folder, data_dir, executor, beam_workers):
  command = [sys.executable, os.path.join(_REPO, 'launch', 'prepare.py'),
             '--dataset=music_folder', f'--manual_dir={folder}', f'--data_dir={data_dir}']
  if executor == 'beam':
    return command + [f'--beam_pipeline_options=runner={_BEAM_RUNNER},direct_num_workers='
                      f'{beam_workers},direct_running_mode=multi_processing']
  if not executor.startswith('workers='):
    raise errors.InputError(executor, 'an executor is workers=N or beam')
  return command + [f'--{executor}']


def parse_summary(text):
  """{split: {'examples', 'tracks', 'hours'}} from prepare.py's table."""
  out = {}
  for line in text.splitlines():
    cells = line.split()
    if len(cells) == 4 and cells[0] in music_folder.SPLIT_NAMES and cells[1].isdigit():
      out[cells[0]] = {'examples': int(cells[1]), 'tracks': int(cells[2]),
                       'hours': float(cells[3])}
  return out


def tensorflow_importable():
  code = subprocess.run([sys.executable, '-c', 'import tensorflow'], capture_output=True).returncode
  return code == 0


def done_when(results, expected, summary):
  """name -> value: issue 9's done-when on the workers=2 build."""
  checks = {'tensorflow_importable': tensorflow_importable()}
  largest = max(expected.values(), key=lambda e: e['samples'])
  checks['largest_split_int16_gb'] = round(2 * largest['samples'] / 1e9, 2)
  # The 0.2-s sampling can miss a short spike that ru_maxrss (one process) still sees.
  checks['peak_under_3gib'] = max(results['workers=2_peak_tree_gib'],
                                  results['workers=2_max_rss_gib']) < _MAX_PEAK_GIB
  exact = True
  for split, want in expected.items():
    got = summary.get(split, {})
    hours = round(want['samples'] / _RATE / 3600, 3)  # the table's precision
    exact &= (got.get('examples'), got.get('tracks'), got.get('hours')) == (
        want['examples'], want['tracks'], hours)
  checks['counts_exact'] = exact
  checks['done'] = (not checks['tensorflow_importable'] and checks['largest_split_int16_gb'] > 1
                    and checks['peak_under_3gib'] and exact)
  return checks


def projections(per_worker_x):
  """name -> hours to build each PROJECTED dataset on each worker count."""
  return {f'projected_h_{name}_{n}_workers': round(seconds / (per_worker_x * n) / 3600, 2)
          for name, seconds in PROJECTED.items() for n in PROJECTED_WORKERS}


def main(argv):
  if len(argv) > 1:
    raise errors.InputError(argv[1], 'unexpected argument (build_bench.py takes flags only)')
  source = os.path.realpath(_MUSIC_DIR.value)
  if not os.path.isfile(os.path.join(source, music_folder.SPLITS_FILE)):
    raise errors.InputError(source, 'needs a music folder with a splits.json (--music_dir)')
  root = tempfile.mkdtemp(prefix='build_bench_', dir=_TMP_DIR.value)
  try:
    folder = os.path.join(root, 'music')
    splits = link_folder(source, folder, _COPIES.value)
    expected = expected_counts(folder, splits)
    audio_s = sum(e['samples'] for e in expected.values()) / _RATE
    results = {'files': sum(len(v) for v in splits.values()), 'audio_h': round(audio_s / 3600, 3)}
    for split, entry in expected.items():
      results[f'expected_{split}'] = (f"{entry['examples']} examples, {entry['tracks']} tracks, "
                                      f"{entry['samples'] / _RATE / 3600:.3f} h")
    summary = None
    for executor in _EXECUTORS.value:
      data_dir = os.path.join(root, 'data')
      load = os.getloadavg()[0]
      wall, cpu, peak, maxrss, text = run_build(prepare_command(folder, data_dir, executor,
                                                           _BEAM_WORKERS.value))
      logging.info('%s: %.0f s', executor, wall)
      results.update({f'{executor}_wall_s': round(wall, 1),
                      f'{executor}_x_realtime': round(audio_s / wall, 1),
                      f'{executor}_cpu_s': round(cpu, 1),
                      f'{executor}_x_realtime_per_cpu_s': round(audio_s / cpu, 1),
                      f'{executor}_peak_tree_gib': round(peak / 2**30, 2),
                      f'{executor}_max_rss_gib': round(maxrss / 2**30, 2),
                      f'{executor}_load_before': round(load, 1),
                      f'{executor}_load_after': round(os.getloadavg()[0], 1)})
      if executor == 'workers=2':
        summary = parse_summary(text)
      shutil.rmtree(data_dir)
    one = results.get('workers=1_x_realtime')
    if one and 'workers=2_x_realtime' in results:
      results['ratio_2_workers_over_1'] = round(results['workers=2_x_realtime'] / one, 2)
    if one and 'beam_x_realtime' in results:
      results['ratio_beam_over_1'] = round(results['beam_x_realtime'] / one, 2)
    if summary is not None:
      results.update(done_when(results, expected, summary))
    per_cpu = results.get('workers=1_x_realtime_per_cpu_s')
    if per_cpu:
      results.update(projections(per_cpu))
  finally:
    shutil.rmtree(root, ignore_errors=True)
  results['cpu_count'] = os.cpu_count()
  for name, value in results.items():
    print(f'{name}={value}')
  print(markdown(results))


def markdown(results):
  """The executors' table for BENCHMARKS.md."""
  lines = ['| build | wall (s) | x real time | CPU (s) | x real time per CPU s | peak RSS, '
           'process tree (GiB) | largest process (GiB) | load before / after |',
           '|---|---|---|---|---|---|---|---|']
  for executor in _EXECUTORS.value:
    if f'{executor}_wall_s' in results:
      lines.append(f"| {executor} | {results[f'{executor}_wall_s']} | "
                   f"{results[f'{executor}_x_realtime']} | {results[f'{executor}_cpu_s']} | "
                   f"{results[f'{executor}_x_realtime_per_cpu_s']} | "
                   f"{results[f'{executor}_peak_tree_gib']} | "
                   f"{results[f'{executor}_max_rss_gib']} | "
                   f"{results[f'{executor}_load_before']} / {results[f'{executor}_load_after']} |")
  return '\n'.join(lines)


if __name__ == '__main__':
  launcher.run(main)
