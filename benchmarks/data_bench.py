"""Data benchmark: decode + resample speed, and the training pipeline's crops per second.

  python benchmarks/data_bench.py [--music_dir=../shared/realmusic] [--sample_rates=8000,44100]

1. Decode + downmix + resample every file of --music_dir to each rate, with
   `fmacomp.audio.read_audio` (libsndfile + soxr) and with an ffmpeg subprocess, the loader the
   FMA authors used (`ffmpeg -i FILE -f f32le -ac 1 -ar RATE -`), in the same run, file by file
   in alternation; the best of --repeats per file. Speed is x real time (audio s / wall s).
2. Builds --dataset from the same folder (a temporary data_dir unless --data_dir) and times
   `pipeline.train_loader` batches for each --crops spec (`crop_s@rate`; the defaults are the
   freq_ae, time_ae and classifier crops) after one warm-up batch; then the same batches
   through `pipeline.DevicePrefetch` as global arrays on this host's devices (what the train
   loop takes). From the loader's crops/s: how many input processes a host needs to feed each
   --step_rates (examples/s over the host's devices), ceil(rate / crops per s per process).

Ends with `name=value` lines (stdout); logs go to stderr.
"""

import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import flags
from absl import logging
import jax
import numpy as np

from fmacomp import audio
import launcher
from fmacomp import datasets
from fmacomp.datasets import music_folder
from fmacomp.datasets import pipeline
from fmacomp import errors

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MUSIC_DIR = flags.DEFINE_string(
    'music_dir', os.path.join(_REPO, '..', 'shared', 'realmusic'), 'Folder of audio files.')
_SAMPLE_RATES = flags.DEFINE_list('sample_rates', ['8000', '44100'], 'Decode target rates.')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Decodes per file and loader (the best counts).')
_DATASET = flags.DEFINE_string('dataset', 'music_folder', 'Dataset for the pipeline timing '
                               '(built from --music_dir when it is a music_folder).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Where to build it (default: a temp dir).')
_CROPS = flags.DEFINE_list('crops', ['8.192@8000', '1.486@44100', '2.972@44100'],
                           'Training crops to time, as crop_s@sample_rate.')
_BATCH = flags.DEFINE_integer('batch_size', 16, 'Global batch size of the timed loader.')
_BATCHES = flags.DEFINE_integer('batches', 20, 'Batches timed per crop spec.')
_WORKERS = flags.DEFINE_integer('worker_count', 0, 'grain worker processes.')
_THREADS = flags.DEFINE_integer('num_threads', None, 'Reader threads per process (default: '
                                "train_loader's).")
_STEP_RATES = flags.DEFINE_list('step_rates', ['2000', '10000', '50000'],
                                'Examples/s a host trains at: how many input processes feed it.')
_FFMPEG_TIMEOUT_S = 300


def ffmpeg_load(path, rate):
  """The FMA authors' loader: ffmpeg decodes, downmixes and resamples to float32 [T]."""
  cmd = ['ffmpeg', '-nostdin', '-v', 'error', '-i', path, '-f', 'f32le', '-ac', '1',
         '-ar', str(rate), '-']
  out = subprocess.run(cmd, capture_output=True, check=True, timeout=_FFMPEG_TIMEOUT_S)
  return np.frombuffer(out.stdout, np.float32)


def fmacomp_load(path, rate):
  return audio.read_audio(path, sample_rate=rate)[0]


def best_time(load, path, rate, repeats):
  """(best wall seconds, samples) of `repeats` loads."""
  best, samples = float('inf'), None
  for _ in range(repeats):
    t0 = time.perf_counter()
    samples = load(path, rate)
    best = min(best, time.perf_counter() - t0)
  return best, samples


def decode_bench(folder, rates, repeats):
  """name -> value for the decode comparison."""
  paths = [os.path.join(folder, p) for p in music_folder.find_audio(folder)]
  if not paths:
    raise errors.InputError(folder, 'no audio files')
  has_ffmpeg = shutil.which('ffmpeg') is not None
  if not has_ffmpeg:
    logging.warning('ffmpeg not found: only fmacomp.audio.read_audio is timed')
  results = {'decode_files': len(paths)}
  for rate in rates:
    seconds = {'read_audio': 0.0, 'ffmpeg': 0.0}
    audio_s, length_gap = 0.0, 0
    for path in paths:
      wall, ours = best_time(fmacomp_load, path, rate, repeats)
      seconds['read_audio'] += wall
      audio_s += len(ours) / rate
      if has_ffmpeg:
        wall, theirs = best_time(ffmpeg_load, path, rate, repeats)
        seconds['ffmpeg'] += wall
        length_gap = max(length_gap, abs(len(theirs) - len(ours)))
    results[f'decode_audio_s_{rate}'] = round(audio_s, 1)
    results[f'read_audio_x_realtime_{rate}'] = round(audio_s / seconds['read_audio'], 1)
    if has_ffmpeg:
      results[f'ffmpeg_x_realtime_{rate}'] = round(audio_s / seconds['ffmpeg'], 1)
      results[f'read_audio_over_ffmpeg_{rate}'] = round(seconds['ffmpeg'] /
                                                        seconds['read_audio'], 2)
      results[f'ffmpeg_max_length_gap_samples_{rate}'] = length_gap
    logging.info('decoded %.0f s of audio at %d Hz', audio_s, rate)
  if not has_ffmpeg:
    results['ffmpeg'] = 'unavailable'
  return results


def _loader(builder, crop_s, rate, batch_size, worker_count, num_threads):
  threads = {} if num_threads is None else {'num_threads': num_threads}
  return pipeline.train_loader(
      builder, crop_s=crop_s, sample_rate=rate, global_batch_size=batch_size, seed=0,
      process_index=0, process_count=1, worker_count=worker_count, **threads)


def _crops_per_s(iterator, batches, batch_size):
  """Crops/s of `batches` batches after one warm-up batch (files opened, readers started)."""
  next(iterator)
  t0 = time.perf_counter()
  for _ in range(batches):
    batch = next(iterator)
  jax.block_until_ready(batch)
  return batches * batch_size / (time.perf_counter() - t0), batch


def pipeline_bench(builder, specs, batch_size, batches, worker_count, num_threads, step_rates):
  """name -> value: crops/s of train_loader (and through DevicePrefetch) per `crop_s@rate`."""
  results = {}
  mesh = jax.make_mesh((jax.device_count(),), ('data',))
  sharding = jax.NamedSharding(mesh, jax.P('data'))
  for spec in specs:
    crop_s, rate = spec.split('@')
    crop_s, rate = float(crop_s), int(rate)
    name = f'{int(round(crop_s * 1000))}ms_{rate}hz'
    iterator = iter(_loader(builder, crop_s, rate, batch_size, worker_count, num_threads))
    crops, batch = _crops_per_s(iterator, batches, batch_size)
    assert batch['audio'].shape == (batch_size, int(round(crop_s * rate)))
    results[f'pipeline_crops_per_s_{name}'] = round(crops, 1)
    results[f'pipeline_x_realtime_{name}'] = round(crops * crop_s, 1)
    if hasattr(iterator, 'close'):
      iterator.close()
    for step_rate in step_rates:
      results[f'pipeline_processes_for_{step_rate}_examples_per_s_{name}'] = math.ceil(
          step_rate / crops)
    prefetch = pipeline.DevicePrefetch(
        iter(_loader(builder, crop_s, rate, batch_size, worker_count, num_threads)), sharding)
    crops, _ = _crops_per_s(prefetch, batches, batch_size)
    results[f'pipeline_to_devices_crops_per_s_{name}'] = round(crops, 1)
    prefetch.close()
  return results


def main(argv):
  if len(argv) > 1:
    raise errors.InputError(argv[1], 'unexpected argument (data_bench.py takes flags only)')
  folder = os.path.realpath(_MUSIC_DIR.value)
  if not os.path.isdir(folder):
    raise errors.InputError(folder, 'no such folder (set --music_dir)')
  results = decode_bench(folder, [int(r) for r in _SAMPLE_RATES.value], _REPEATS.value)
  data_dir = _DATA_DIR.value or tempfile.mkdtemp(prefix='data_bench_')
  try:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # TFDS progress is not a result
      builder = datasets.prepare(_DATASET.value, data_dir=data_dir, manual_dir=folder)
    results['dataset_prepare_s'] = round(time.perf_counter() - t0, 1)
    results['dataset_storage_rate'] = builder.info.metadata['sample_rate']
    results.update(pipeline_bench(builder, _CROPS.value, _BATCH.value, _BATCHES.value,
                                  _WORKERS.value, _THREADS.value,
                                  [int(r) for r in _STEP_RATES.value]))
  finally:
    if not _DATA_DIR.value:
      shutil.rmtree(data_dir, ignore_errors=True)
  results['cpu_count'] = os.cpu_count()
  results['load_average_1min'] = round(os.getloadavg()[0], 1)
  for name, value in results.items():
    print(f'{name}={value}')


if __name__ == '__main__':
  launcher.run(main)
