"""The main job: the whole study in one call, resumable, each stage with a progress line.

Stages (each one a normal workdir under `<workdir>/`, so re-running resumes instead of
starting over):
  data            prepare the dataset and print its summary
  time_ae         the waveform autoencoder
  freq_ae         the STFT autoencoder
  classifier      the genre head on time_ae's frozen latent
  classifier_mel  the same head on log-mel (the no-autoencoder baseline)

Sizes: `smoke` (tiny configs: the end-to-end test), `quick` (the default: minutes here) and
`full` (the reference settings).
"""

import dataclasses
import json
import os
import time

from absl import logging

from fmacomp import datasets
from fmacomp import files
from fmacomp import sweep
from fmacomp import train
from fmacomp.configs import classifier as classifier_config
from fmacomp.configs import freq_ae as freq_ae_config
from fmacomp.configs import time_ae as time_ae_config
from fmacomp.datasets import summary as summary_lib

SIZES = {'smoke': 'tiny', 'quick': 'quick', 'full': ''}


@dataclasses.dataclass
class Stage:
  name: str
  config_module: object
  arg: str = ''
  encoder: str = ''  # the stage whose workdir provides the encoder


STAGES = (
    Stage('time_ae', time_ae_config),
    Stage('freq_ae', freq_ae_config),
    Stage('classifier', classifier_config, encoder='time_ae'),
    Stage('classifier_mel', classifier_config, arg='logmel'),
)


def stage_config(stage, size, workdir, dataset, data_dir='', manual_dir=''):
  """The config of one stage at a study size, pointed at the study's data."""
  arg = ','.join(filter(None, [SIZES[size], stage.arg]))
  config = stage.config_module.get_config(arg)
  config.data.name = dataset
  config.data.data_dir = data_dir or ''
  config.data.manual_dir = manual_dir or ''
  if stage.encoder:
    config.encoder_workdir = os.path.join(workdir, stage.encoder)
  return config


def _progress(index, total, name, t0):
  logging.info('[study %d/%d] %s (%.0f s elapsed)', index, total, name, time.time() - t0)


def run_study(workdir, dataset=datasets.DEFAULT_DATASET, data_dir='', manual_dir='',
              size='quick', out=print):
  """Runs every stage; returns {stage: final validation metrics}. `out` prints results."""
  if size not in SIZES:
    raise ValueError(f'size must be one of {sorted(SIZES)}')
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  t0 = time.time()
  total = len(STAGES) + 1

  _progress(1, total, f'data: {dataset}', t0)
  builder = datasets.prepare(dataset, data_dir=data_dir or None, manual_dir=manual_dir or None)
  out(summary_lib.format_summary(summary_lib.summarize(builder)))

  results = {}
  for i, stage in enumerate(STAGES, start=2):
    _progress(i, total, stage.name, t0)
    stage_dir = os.path.join(workdir, stage.name)
    config = stage_config(stage, size, workdir, dataset, data_dir, manual_dir)
    train.train_and_evaluate(config, stage_dir)
    results[stage.name] = sweep.final_validation(stage_dir)
    out(' '.join([f'stage={stage.name}'] +
                 [f'{k}={v:.6g}' for k, v in sorted(results[stage.name].items())]))
  files.write_text_atomic(os.path.join(workdir, 'study.json'),
                         json.dumps({'dataset': dataset, 'size': size, 'results': results},
                                    indent=1))
  logging.info('[study] done in %.0f s', time.time() - t0)
  return results
