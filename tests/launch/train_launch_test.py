"""launch/train.py and launch/sweep.py as a user runs them, in subprocesses.

Named train_launch_test.py: tests/train_test.py (fmacomp/train.py) holds the basename
train_test, and pytest's default import mode needs unique basenames.

The reference run (tests/conftest.py) is time_ae tiny for 12 steps with a checkpoint every
step; the resume, multi-device, multi-process and non-finite runs reuse its flags and compare
themselves with it. launch/main.py --smoke is tested in tests/study_test.py.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import jax
import numpy as np
import portpicker
import pytest

from fmacomp.training import checkpointing
from fmacomp.training import provenance

TMP_MARK = '.orbax-checkpoint-tmp'


def load_latest(workdir):
  return checkpointing.load_params(str(workdir), which=checkpointing.LATEST)


def assert_params_close(actual, expected, rtol=1e-5):
  """Every leaf's max abs difference within `rtol` of the leaf's scale (its max abs value)."""
  flat_a = dict(jax.tree_util.tree_flatten_with_path(actual)[0])
  flat_e = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
  assert flat_a.keys() == flat_e.keys()
  for path, e in flat_e.items():
    a = flat_a[path]
    assert a.shape == e.shape and a.dtype == e.dtype, jax.tree_util.keystr(path)
    scale = max(float(np.abs(e).max()), 1e-6)
    diff = float(np.abs(a - e).max())
    assert diff <= rtol * scale, f'{jax.tree_util.keystr(path)}: {diff} > {rtol} x {scale}'


def records(workdir, split):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [r for r in map(json.loads, f) if r['split'] == split]


def tmp_dirs(workdir):
  root = os.path.join(workdir, 'checkpoints')
  return [os.path.join(d, n) for d, names, _ in os.walk(root) for n in names if TMP_MARK in n]


def error_lines(stderr):
  return [line for line in stderr.splitlines() if line.startswith('fmacomp: error:')]


# --- Bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize('args, expect', [
    (['--config={configs}/time_ae.py:tiny'], '--workdir'),
    (['--config={configs}/time_ae.py:tiny,nope=1', '--workdir={tmp}/w'], "'nope'"),
    (['--config={configs}/time_ae.py:tiny', '--config.data.name=no_such_set', '--workdir={tmp}/w'],
     'no_such_set: unknown dataset'),
    (['--config={configs}/no_such_config.py', '--workdir={tmp}/w'],
     '--config: [Errno 2] No such file'),
    (['--config={configs}/time_ae.py:tiny', '--config.no_such_key=3', '--workdir={tmp}/w'],
     '--config: unknown config key'),
], ids=['missing_workdir', 'bad_config_arg', 'unknown_dataset', 'missing_config_file',
        'unknown_config_key'])
def test_bad_input_is_one_line_and_exit_2(launcher, tmp_path, args, expect):
  args = [a.format(configs=launcher.configs, tmp=tmp_path) for a in args]
  result = launcher.run('train.py', *args)
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stdout == ''
  assert 'Traceback' not in result.stderr.split('fmacomp: error:')[0]
  lines = error_lines(result.stderr)
  assert len(lines) == 1 and lines[0] == result.stderr.splitlines()[-1]
  assert expect in lines[0]
  assert not (tmp_path / 'w' / 'checkpoints').exists()


def test_a_batch_the_devices_cannot_split_is_one_line_and_exit_2(launcher, tiny_data_dir,
                                                                  tmp_path):
  result = launcher.run(
      'train.py', f'--config={launcher.configs}/time_ae.py:tiny',
      '--config.data.name=synthetic_music/tiny', f'--config.data.data_dir={tiny_data_dir}',
      '--config.batch_size=6', f'--workdir={tmp_path / "w"}',
      env=launcher.env(XLA_FLAGS='--xla_force_host_platform_device_count=4'))
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stdout == ''
  assert error_lines(result.stderr) == [result.stderr.splitlines()[-1]] == [
      'fmacomp: error: config.batch_size: 6 is not divisible by the 4 devices of the data axis']


# --- Resume ---------------------------------------------------------------------------------

def _kill_during_a_save(launcher, flags, workdir, log, after_step):
  """Starts a run and SIGKILLs it while an async save is in flight, after `after_step`'s.

  Returns the finished steps seen when it was killed.
  """
  latest = os.path.join(workdir, 'checkpoints', checkpointing.LATEST)
  with open(log, 'w') as stderr:
    proc = subprocess.Popen(launcher.command('train.py', *flags, f'--workdir={workdir}'),
                            stdout=subprocess.DEVNULL, stderr=stderr, cwd=launcher.repo,
                            env=launcher.env())
  deadline = time.time() + launcher.timeout_s
  try:
    while proc.poll() is None and time.time() < deadline:
      names = os.listdir(latest) if os.path.isdir(latest) else []
      finished = sorted(int(n) for n in names if n.isdigit())
      if finished and finished[-1] >= after_step and any(TMP_MARK in n for n in names):
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        return finished
      time.sleep(0.001)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait(30)
  pytest.fail(f'the run ended (rc {proc.returncode}) before a save could be interrupted')


def test_sigkill_during_a_save_then_resume_gives_the_same_checksum(launcher, reference_run,
                                                                   tmp_path):
  workdir = tmp_path / 'wd'
  finished = _kill_during_a_save(launcher, reference_run.flags, workdir, tmp_path / 'killed.log',
                                after_step=5)
  assert 5 <= finished[-1] < 12
  assert tmp_dirs(workdir), 'the kill should land during a save'

  resumed = launcher.run('train.py', *reference_run.flags, f'--workdir={workdir}')
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  step = int(re.search(r'Resuming from step (\d+)', resumed.stderr).group(1))
  assert finished[-1] <= step < 12
  assert launcher.last_line(resumed.stdout) == f'params_checksum={reference_run.checksum}'
  # Both launches are on record, the resumed one with the step it restored.
  assert [r['start_step'] for r in provenance.read_launches(workdir)] == [0, step]
  assert not tmp_dirs(workdir)  # the killed save's leftovers are cleaned up
  # What the killed run logged after its checkpoint is dropped: every step is logged once.
  reference = reference_run.workdir
  assert ([r['step'] for r in records(workdir, 'train')] ==
          [r['step'] for r in records(reference, 'train')])
  for got, want in zip(records(workdir, 'validation'), records(reference, 'validation'),
                       strict=True):
    assert got['step'] == want['step']
    np.testing.assert_allclose(got['loss'], want['loss'], rtol=1e-6)


# --- Multi-device and multi-host ------------------------------------------------------------

def test_four_fake_devices_equal_one_device(launcher, reference_run, tmp_path):
  workdir = tmp_path / 'wd'
  result = launcher.run('train.py', *reference_run.flags, f'--workdir={workdir}', env=launcher.env(
      XLA_FLAGS='--xla_force_host_platform_device_count=4'))
  assert result.returncode == 0, result.stderr[-3000:]
  assert '4 local / 4 global devices' in result.stderr
  (params, step), (expected, ref_step) = load_latest(workdir), load_latest(reference_run.workdir)
  assert step == ref_step == 12
  assert_params_close(params, expected)
  validation = records(workdir, 'validation')
  assert validation  # a strict zip of two empty lists would pass without comparing anything
  for got, want in zip(validation, records(reference_run.workdir, 'validation'), strict=True):
    assert got['step'] == want['step']
    assert got['examples'] == want['examples'] == 184  # every segment once, padding masked
    np.testing.assert_allclose(got['loss'], want['loss'], rtol=1e-4)
  (launch,) = provenance.read_launches(workdir)
  assert launch['devices']['count'] == 4 and launch['processes'] == 1


def test_two_processes_on_localhost_equal_one_process(launcher, reference_run, tmp_path):
  workdir = tmp_path / 'wd'
  port = portpicker.pick_unused_port()
  procs, logs = [], []
  for i in range(2):
    logs.append((open(tmp_path / f'out{i}', 'w+'), open(tmp_path / f'err{i}', 'w+')))
    procs.append(subprocess.Popen(
        launcher.command('train.py', *reference_run.flags, f'--workdir={workdir}',
                         f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
                         f'--process_id={i}'),
        stdout=logs[i][0], stderr=logs[i][1], cwd=launcher.repo, env=launcher.env()))
  try:
    for proc in procs:
      proc.wait(launcher.timeout_s)
  finally:
    for proc in procs:  # a process whose peer died waits at a barrier; SIGTERM is caught there
      if proc.poll() is None:
        proc.kill()
  outs, errs = [], []
  for out, err in logs:
    out.seek(0), err.seek(0)
    outs.append(out.read()), errs.append(err.read())
    out.close(), err.close()
  for i, proc in enumerate(procs):
    assert proc.returncode == 0, errs[i][-3000:]
    assert f'Process {i} of 2, 1 local / 2 global devices' in errs[i]
  checksums = [launcher.last_line(out) for out in outs]
  assert checksums[0] == checksums[1] and checksums[0].startswith('params_checksum=')
  (params, step), (expected, _) = load_latest(workdir), load_latest(reference_run.workdir)
  assert step == 12
  assert_params_close(params, expected)
  # Process 0 alone writes metrics; validation covers the whole split across both hosts.
  train = records(workdir, 'train')
  assert [r['step'] for r in train] == [r['step'] for r in records(reference_run.workdir,
                                                                   'train')]
  validation = records(workdir, 'validation')
  assert validation  # a strict zip of two empty lists would pass without comparing anything
  for got, want in zip(validation, records(reference_run.workdir, 'validation'), strict=True):
    assert got['step'] == want['step']
    assert got['examples'] == want['examples']
    np.testing.assert_allclose(got['loss'], want['loss'], rtol=1e-4)
  # Process 0 alone records the launch, with both processes' devices.
  (launch,) = provenance.read_launches(workdir)
  assert launch['processes'] == 2 and launch['devices'] == dict(
      launch['devices'], count=2, local=1)
  # Every process saved its own iterator state in the same checkpoint.
  data = os.path.join(workdir, 'checkpoints', 'latest', '12', 'data')
  assert sorted(n for n in os.listdir(data) if n.endswith('.json')) == [
      'process_0-of-2.json', 'process_1-of-2.json']


# --- Non-finite loss ------------------------------------------------------------------------

def test_non_finite_loss_exits_1_with_one_line_and_keeps_the_last_checkpoint(
    launcher, reference_run, tmp_path):
  """Resumes a copy of the reference at step 12 with a learning rate that blows up."""
  workdir = tmp_path / 'wd'
  shutil.copytree(reference_run.workdir, workdir)
  expected, _ = load_latest(reference_run.workdir)
  result = launcher.run('train.py', *reference_run.flags, f'--workdir={workdir}',
                        '--config.steps=20', '--config.checkpoint_every=4',
                        '--config.optimizer.lr=1e30')
  assert result.returncode == 1, result.stderr[-3000:]
  assert result.stdout == ''
  assert 'Resuming from step 12' in result.stderr
  lines = error_lines(result.stderr)
  assert len(lines) == 1 and lines[0] == result.stderr.splitlines()[-1]
  match = re.fullmatch(r'fmacomp: error: step (\d+): non-finite loss .*', lines[0])
  assert match and 12 < int(match.group(1)) < 16, lines[0]
  assert 'Traceback' not in result.stderr
  # The last good checkpoint is intact: still step 12, the same parameters, restorable.
  params, step = load_latest(workdir)
  assert step == 12
  assert_params_close(params, expected, rtol=0)
  assert sorted(os.listdir(workdir / 'checkpoints' / 'latest')) == ['11', '12']
  assert not tmp_dirs(workdir)
  # config.json is the latest launch's config; launches.jsonl keeps the one that made step 12.
  first, second = provenance.read_launches(workdir)
  assert (first['start_step'], second['start_step']) == (0, 12)
  assert first['config'] == json.loads((reference_run.workdir / 'config.json').read_text())
  assert (second['config']['steps'], second['config']['optimizer']['lr']) == (20, 1e30)
  assert json.loads((workdir / 'config.json').read_text()) == second['config']
  assert first['data'] == second['data'] and first['data']['dataset'] == 'synthetic_music'


# --- Sweeps ---------------------------------------------------------------------------------

SWEEP_CONFIG = '''
from fmacomp.configs import freq_ae


def get_config(arg=None):
  config = freq_ae.get_config('tiny')
  config.data.name = 'synthetic_music/tiny'
  config.data.data_dir = {data_dir!r}
  return config


def sweep():
  return [{{'seed': 0}}, {{'seed': 1}}]
'''


def test_sweep_summarises_seeds_and_skips_finished_runs(launcher, tiny_data_dir, tmp_path):
  config = tmp_path / 'sweep_config.py'
  config.write_text(SWEEP_CONFIG.format(data_dir=str(tiny_data_dir)))
  workdir = tmp_path / 'sweep'
  first = launcher.run('sweep.py', f'--config={config}', f'--workdir={workdir}')
  assert first.returncode == 0, first.stderr[-3000:]
  assert launcher.last_line(first.stdout) == f'sweep={workdir / "sweep.md"}'

  finals = []
  for seed in (0, 1):
    run = workdir / 'sweep' / f'seed={seed}'
    assert (run / 'DONE').read_text().startswith('params_checksum=')
    assert (run / 'checkpoints' / 'latest' / '6').is_dir()
    finals.append(records(run, 'validation')[-1])
  summary = json.loads((workdir / 'sweep.json').read_text())
  assert [g['group'] for g in summary] == ['all'] and summary[0]['seeds'] == [0, 1]
  for name in ('loss', 'seed_spectral_rmse'):
    values = [f[name] for f in finals]
    stats = summary[0]['metrics'][name]
    assert stats['n'] == 2
    np.testing.assert_allclose([stats['mean'], stats['std']], [np.mean(values), np.std(values)])
  assert values[0] != values[1]  # two seeds, two models
  markdown = (workdir / 'sweep.md').read_text()
  assert '| loss |' in markdown and 'seeds [0, 1]' in markdown

  mtimes = {p: p.stat().st_mtime_ns for p in workdir.rglob('metrics.jsonl')}
  second = launcher.run('sweep.py', f'--config={config}', f'--workdir={workdir}')
  assert second.returncode == 0, second.stderr[-3000:]
  assert 'training steps' not in second.stderr  # finished runs are skipped, not resumed
  assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
  assert json.loads((workdir / 'sweep.json').read_text()) == summary
