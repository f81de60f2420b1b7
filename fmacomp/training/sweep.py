"""Seed sweeps: run a config's `sweep()` one run after another, then summarise over seeds.

Each run lives in `<workdir>/sweep/<run>/` (run = its overrides, e.g. `model.latent_channels=64,
seed=1`) and is a normal training workdir. A finished run has a `DONE` file and is skipped, so
re-running the sweep resumes it (an unfinished run resumes from its own checkpoint).
`sweep.json` and `sweep.md` hold the mean and standard deviation over seeds of every final
validation metric, grouped by the non-seed overrides.
"""

import collections
import json
import os

import jax
import numpy as np

from fmacomp import files
from fmacomp.training import train

DONE = 'DONE'


def run_name(overrides):
  return ','.join(f'{k}={v}' for k, v in sorted(overrides.items()))


def run_config(base, overrides):
  config = base.copy_and_resolve_references()
  with config.unlocked():
    config.update_from_flattened_dict(dict(overrides))
  return config


def final_validation(workdir):
  """The last validation record of a run's metrics.jsonl (without step/split)."""
  last = {}
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    for line in f:
      record = json.loads(line)
      if record['split'] == 'validation':
        last = record
  return {k: v for k, v in last.items() if k not in ('step', 'split')}


def summarize(runs):
  """runs: [(overrides, metrics)] -> [{group, n_seeds, seeds, metrics: {k: {mean, std}}}]."""
  groups = collections.OrderedDict()
  for overrides, metrics in runs:
    key = run_name({k: v for k, v in overrides.items() if k != 'seed'}) or 'all'
    groups.setdefault(key, []).append((overrides.get('seed'), metrics))
  summary = []
  for key, members in groups.items():
    names = sorted(set().union(*(m.keys() for _, m in members)))
    stats = {}
    for name in names:
      values = np.array([m[name] for _, m in members if name in m], np.float64)
      stats[name] = {'mean': float(values.mean()), 'std': float(values.std(ddof=0)),
                     'n': int(values.size)}
    summary.append({'group': key, 'seeds': [s for s, _ in members], 'metrics': stats})
  return summary


def format_markdown(summary):
  lines = ['# Sweep summary (final validation metrics, mean ± std over seeds)', '']
  for group in summary:
    lines += [f'## {group["group"]} (seeds {group["seeds"]})', '', '| metric | mean | std | n |',
              '|---|---|---|---|']
    for name, s in group['metrics'].items():
      lines.append(f'| {name} | {s["mean"]:.6g} | {s["std"]:.3g} | {s["n"]} |')
    lines.append('')
  return '\n'.join(lines)


def run_sweep(base_config, sweep_overrides, workdir):
  """Runs every override set in turn (skipping finished ones) and writes the summaries."""
  runs = []
  for overrides in sweep_overrides:
    run_dir = os.path.join(workdir, 'sweep', run_name(overrides))
    done = os.path.join(run_dir, DONE)
    if not os.path.exists(done):
      checksum = train.train_and_evaluate(run_config(base_config, overrides), run_dir)
      if jax.process_index() == 0:
        files.write_text_atomic(done, f'params_checksum={checksum}\n')
    runs.append((dict(overrides), final_validation(run_dir)))
  summary = summarize(runs)
  if jax.process_index() == 0:
    files.write_text_atomic(os.path.join(workdir, 'sweep.json'), json.dumps(summary, indent=1))
    files.write_text_atomic(os.path.join(workdir, 'sweep.md'), format_markdown(summary))
  return summary
