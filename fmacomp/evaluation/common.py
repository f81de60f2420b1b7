"""What every evaluator shares: the runs found under a workdir, the context, the results.

An evaluator (as in big_vision's `evaluators/common.py`) has a `name` and a
`run(context) -> iterator of Result`: it reads what it needs from the `Context` (the dataset,
the test clips, the discovered runs, the options) and yields each record as it is ready, with
any audio a reader should hear beside it. `fmacomp.evaluation.evaluate` runs the evaluators in
order, times each one, puts each record where its `Result.section` says and writes the audio as
listening clips; an evaluator never writes files.

Runs are discovered under the evaluated workdir (`discover_runs`): the workdir itself when it is
a training run, each sub-directory that is one (a study's stages), and every run of a sweep
(`<dir>/sweep/<run>/`). Runs that differ only by seed form a group.
"""

import dataclasses
import os
from typing import Any, Iterator, Protocol

from fmacomp import errors
from fmacomp import models
from fmacomp.training import checkpointing


@dataclasses.dataclass
class Run:
  name: str      # path relative to the evaluated workdir ('freq_ae', 'x/sweep/seed=1')
  group: str     # runs of one group differ only by seed
  workdir: str
  config: object
  kind: str      # 'autoencoder' | 'classifier' | 'codec'


@dataclasses.dataclass(frozen=True)
class Context:
  """What evaluators read.

  Attributes:
    workdir: the evaluated workdir.
    builder: the runs' dataset (TFDS builder).
    label_names: its genre names, by label id.
    clips: the test clips every rate-distortion row scores (`fmacomp.evaluation.clips`).
    runs: the trained runs to evaluate.
    options: `fmacomp.evaluation.evaluate.Options`.
  """
  workdir: str
  builder: Any
  label_names: list
  clips: list
  runs: list
  options: Any

  def groups(self, kind):
    """{group: [runs]} of one kind, in discovery order."""
    out = {}
    for run in self.runs:
      if run.kind == kind:
        out.setdefault(run.group, []).append(run)
    return out


@dataclasses.dataclass(frozen=True)
class Result:
  """One record an evaluator yields.

  Attributes:
    section: where it goes in results.json, a dotted path: a list the record is appended to
      ('compression.rows') or a field it sets ('genre.compressed').
    record: the JSON-ready record.
    audio: the decoded listening clips of a compression row, [(float32 [T], rate)], one per
      listening clip in order; empty when it has none.
  """
  section: str
  record: Any
  audio: tuple = ()


class Evaluator(Protocol):
  """One part of the evaluation; `name` keys its time in results.json's timing_s."""
  name: str

  def run(self, context: Context) -> Iterator[Result]:
    ...


def _kind(config):
  name = config.model.name
  if name in models.AUTOENCODERS:
    return 'autoencoder'
  if name == 'classifier':
    return 'classifier'
  return 'codec' if name in models.CODECS else None


def _has_checkpoint(workdir):
  return any(os.path.isdir(checkpointing.checkpoint_dir(workdir, w)) and
             any(s.isdigit() for s in os.listdir(checkpointing.checkpoint_dir(workdir, w)))
             for w in (checkpointing.BEST, checkpointing.LATEST))


def _candidates(workdir, run_dirs):
  """[(name, group, dir)] of every directory holding a config.json (module docstring)."""
  candidates = []
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
  return candidates


def discover_runs(workdir, run_dirs=()):
  """(runs, skipped): every trained run under `workdir` (or exactly `run_dirs`).

  Returns:
    ([Run], [{'workdir', 'reason'}]): a run without a checkpoint, or of a model nothing
    evaluates, is skipped with the reason.

  Raises:
    errors.InputError: a directory that does not exist, or two runs with one name.
  """
  workdir = os.path.abspath(workdir)
  for path in [workdir, *run_dirs]:
    if not os.path.isdir(path):
      raise errors.InputError(path, 'no such directory')
  runs, skipped = [], []
  for name, group, path in _candidates(workdir, run_dirs):
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
