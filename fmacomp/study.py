"""The main job: the whole study in one call, resumable, each stage timed against a budget.

Stages, each writing under `<workdir>/` (re-running resumes: a finished stage is skipped):
  data            prepare the dataset and print its summary
  time_ae         the waveform autoencoder              } training stages: one workdir each,
  freq_ae         the STFT autoencoder                  } finished when their DONE file
  time_ae_q       time_ae quantised and entropy-coded   } exists (an unfinished one resumes
  freq_ae_q       freq_ae quantised and entropy-coded   } from its checkpoint)
  codec           the full-band frame-rate codec        }
  classifier      the genre head on time_ae's frozen latent
  classifier_mel  the same head on log-mel (the no-autoencoder baseline)
  evaluate        eval/results.json on the test split (`fmacomp.evaluation.evaluate`); finished
                  when eval/STAMP names the same trained runs and preset
  report          eval/results.md and report/report.html from results.json (`fmacomp.reporting`);
                  finished when report.html is newer than results.json

The codec stage trains `configs/stft_codec.py` (one network, several bitrates) at the dataset's
storage rate (`rate=`), and the evaluation scores each of its operating points through real
.fmac files.

Sizes: `smoke` (tiny configs, a small evaluation: the end-to-end test), `quick` (the default:
about 7.5 minutes on a quiet 2-core machine) and `full` (the reference settings: hours). Each
stage has a time budget for its size; the progress line says how long it took against it (a
stage over budget is reported, not cut short: its results would change).
"""

import dataclasses
import json
import os
import time

from absl import logging

from fmacomp.configs import classifier as classifier_config
from fmacomp.configs import freq_ae as freq_ae_config
from fmacomp.configs import quantised_ae as quantised_ae_config
from fmacomp.configs import stft_codec as stft_codec_config
from fmacomp.configs import time_ae as time_ae_config
from fmacomp import datasets
from fmacomp.datasets import summary as summary_lib
from fmacomp import errors
from fmacomp.evaluation import evaluate
from fmacomp import files
from fmacomp.reporting import report
from fmacomp.reporting import results_md
from fmacomp.training import sweep
from fmacomp.training import train

SIZES = {'smoke': 'tiny', 'quick': 'quick', 'full': ''}
DONE = sweep.DONE
STAMP = 'STAMP'


@dataclasses.dataclass
class Stage:
  name: str
  config_module: object
  arg: str = ''
  links: tuple = ()  # (config field, stage): the field names that earlier stage's workdir
  fine_tune: bool = False  # quick: a tenth of the steps (it starts from a trained model)
  follows_rate: bool = False  # passes `rate=<the dataset's storage rate>` to its config
  steps: tuple = ()  # (size, steps): the study's steps at that size instead of the config's


def _quantised(ae_stage, arg=''):
  """The quantised version of an autoencoder stage, fine-tuned from its checkpoint."""
  base = 'time_ae' if ae_stage.startswith('time_ae') else 'freq_ae'
  return Stage(f'{ae_stage}_q', quantised_ae_config, ','.join(filter(None, [f'ae={base}', arg])),
               links=(('ae_workdir', ae_stage),), fine_tune=True)


STAGES = (
    Stage('time_ae', time_ae_config),
    Stage('freq_ae', freq_ae_config),
    _quantised('time_ae'),
    _quantised('freq_ae'),
    # The config's full variant trains until cut by wall time (1M steps); a study stage must
    # end, so `full` stops at 200k steps (as the conv_codec stage it replaced did).
    Stage('codec', stft_codec_config, follows_rate=True, steps=(('full', 200_000),)),
    Stage('classifier', classifier_config, links=(('encoder_workdir', 'time_ae'),)),
    Stage('classifier_mel', classifier_config, arg='logmel'),
)


def stages(size):
  """The training stages of a study size: `full` trains freq_ae (and its quantised version)
  at each of the reference's latent sizes (its table, regenerated with measured bytes), the
  others at the config's default size only."""
  if size != 'full':
    return STAGES
  freq = [s for c in freq_ae_config.LATENT_SIZES for s in (
      Stage(f'freq_ae_c{c}', freq_ae_config, arg=f'latent={c}'),
      _quantised(f'freq_ae_c{c}', arg=f'latent={c}'))]
  return tuple(s for stage in STAGES if stage.name not in ('freq_ae', 'freq_ae_q')
               for s in (freq if stage.name == 'time_ae_q' else []) + [stage])
# Seconds per stage and size (measured here on 2 CPU cores, with some slack); full: no budget.
BUDGETS_S = {
    'smoke': {'data': 15, 'time_ae': 15, 'freq_ae': 20, 'time_ae_q': 15, 'freq_ae_q': 20,
              'codec': 25, 'classifier': 15, 'classifier_mel': 15, 'evaluate': 40, 'report': 15},
    'quick': {'data': 60, 'time_ae': 120, 'freq_ae': 120, 'time_ae_q': 40, 'freq_ae_q': 40,
              'codec': 240, 'classifier': 60, 'classifier_mel': 90, 'evaluate': 180,
              'report': 30},
}


def stage_config(stage, size, workdir, dataset, data_dir='', manual_dir='', rate=0):
  """The config of one stage at a study size, pointed at the study's data.

  `rate` is the dataset's storage rate: a stage that `follows_rate` runs at it (0: the
  config's own rate).
  """
  arg = ','.join(filter(None, [SIZES[size], stage.arg,
                               f'rate={rate}' if stage.follows_rate and rate else '']))
  config = stage.config_module.get_config(arg)
  config.data.name = dataset
  config.data.data_dir = data_dir or ''
  config.data.manual_dir = manual_dir or ''
  for field, source in stage.links:
    config[field] = os.path.join(workdir, source)
  if stage.fine_tune and size == 'quick':
    config.steps = max(config.steps // 10, 1)
  config.steps = dict(stage.steps).get(size, config.steps)
  return config


class _Progress:
  """One log line as each stage starts and ends, with its time against its budget.

  `timings` holds each stage's seconds; a skipped stage keeps the time of the run that did it.
  """

  def __init__(self, size, names, timings):
    self.budgets, self.names, self.t0 = BUDGETS_S.get(size, {}), names, time.time()
    self.timings = dict(timings)

  def start(self, name, note=''):
    self.name, self.started = name, time.time()
    budget = self.budgets.get(name)
    logging.info('[study %d/%d] %s%s (budget %s, %.0f s elapsed)', self.names.index(name) + 1,
                 len(self.names), name, note, f'{budget} s' if budget else 'none',
                 self.started - self.t0)

  def end(self, skipped=False):
    took, budget = time.time() - self.started, self.budgets.get(self.name)
    if skipped:
      logging.info('[study] %s: already done, skipped', self.name)
      return
    self.timings[self.name] = took
    if budget and took > budget:
      logging.warning('[study] %s took %.0f s, over its %d s budget', self.name, took, budget)
    else:
      logging.info('[study] %s took %.0f s', self.name, took)


def _check_same_config(config, stage_dir):
  """A stage's workdir must hold this config (not another size's or dataset's)."""
  path = os.path.join(stage_dir, 'config.json')
  if os.path.exists(path):
    with open(path) as f:
      if json.load(f) != json.loads(config.to_json()):
        raise errors.InputError(stage_dir, 'holds a run of another config (another size or '
                                'dataset?); use a new --workdir')


def _train_stage(stage, config, stage_dir):
  """Trains unless DONE; returns (params_checksum, trained_now)."""
  _check_same_config(config, stage_dir)
  done = os.path.join(stage_dir, DONE)
  if os.path.exists(done):
    with open(done) as f:
      return f.read().strip().partition('=')[2], False
  checksum = train.train_and_evaluate(config, stage_dir)
  files.write_text_atomic(done, f'params_checksum={checksum}\n')
  return checksum, True


def _evaluate_stage(workdir, size, checksums):
  """Evaluates unless eval/STAMP records the same trained runs and preset; True if it ran."""
  stamp_path = os.path.join(workdir, 'eval', STAMP)
  stamp = json.dumps({'preset': size, 'runs': checksums, 'schema': evaluate.SCHEMA_VERSION},
                     sort_keys=True)
  if os.path.exists(stamp_path) and os.path.exists(evaluate.results_path(workdir)):
    with open(stamp_path) as f:
      if f.read() == stamp:
        return False
  evaluate.evaluate(workdir, evaluate.make_options(size))
  files.write_text_atomic(stamp_path, stamp)
  return True


def _report_stage(workdir):
  """Writes results.md and the report unless the report is newer than results.json.

  Returns:
    (the report's path, whether it was written).
  """
  path = os.path.join(workdir, 'report', 'report.html')
  if (os.path.exists(path) and
      os.path.getmtime(path) >= os.path.getmtime(evaluate.results_path(workdir))):
    return path, False
  results_md.write_results_md(workdir)
  return report.write_report(workdir), True


def _previous_timings(workdir):
  """Stage times of an earlier run of this study (a resumed stage keeps its time)."""
  path = os.path.join(workdir, 'study.json')
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f).get('timing_s', {})


def run_study(workdir, dataset=datasets.DEFAULT_DATASET, data_dir='', manual_dir='',
              size='quick', out=print):
  """Runs (or resumes) every stage; returns the report's path. `out` prints result lines."""
  if size not in SIZES:
    raise ValueError(f'size must be one of {sorted(SIZES)}')
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  names = ['data'] + [s.name for s in stages(size)] + ['evaluate', 'report']
  progress = _Progress(size, names, _previous_timings(workdir))

  progress.start('data', f': {dataset}')
  builder = datasets.prepare(dataset, data_dir=data_dir or None, manual_dir=manual_dir or None)
  summary = summary_lib.summarize(builder)
  out(summary_lib.format_summary(summary))
  progress.end()

  results, checksums = {}, {}
  for stage in stages(size):
    progress.start(stage.name)
    stage_dir = os.path.join(workdir, stage.name)
    config = stage_config(stage, size, workdir, dataset, data_dir, manual_dir,
                          rate=summary['storage_rate'])
    checksums[stage.name], trained = _train_stage(stage, config, stage_dir)
    progress.end(skipped=not trained)
    results[stage.name] = sweep.final_validation(stage_dir)
    out(' '.join([f'stage={stage.name}'] +
                 [f'{k}={v:.6g}' for k, v in sorted(results[stage.name].items())]))

  progress.start('evaluate')
  ran = _evaluate_stage(workdir, size, checksums)
  progress.end(skipped=not ran)
  out(f'stage=evaluate results={evaluate.results_path(workdir)}')
  progress.start('report')
  path, ran = _report_stage(workdir)
  progress.end(skipped=not ran)

  files.write_text_atomic(os.path.join(workdir, 'study.json'), json.dumps(
      {'dataset': dataset, 'size': size, 'validation': results, 'results':
       evaluate.results_path(workdir), 'report': path, 'timing_s': progress.timings},
      indent=1))
  logging.info('[study] done in %.0f s', time.time() - progress.t0)
  return path
