"""Training-step benchmark: fmacomp's jitted train step, beside a PyTorch eager peer.

  python benchmarks/train_bench.py --model=time_ae --batch=16 --rounds=5 --torch
  python benchmarks/train_bench.py --model=freq_ae --batch=8 --rounds=5 --torch

Times `fmacomp.training.train.train_step` (the loop's own step: value_and_grad, Adam, norms,
donation) on random audio of the model's full reference crop (freq_ae: 65,536 samples at
8 kHz, latent --latent; time_ae: 65,536 at 44.1 kHz), after compilation, whose time is
reported apart. With --torch the same architecture, batch, loss and optimiser (Adam, 1e-3)
run in PyTorch eager mode in a subprocess of their own per round (in one process with JAX,
the two runtimes' thread pools starve torch: it ran 25x slower), alternating with fmacomp's
rounds of --steps steps; each side's warm-up steps are excluded. Both frameworks are held to
--threads CPUs (process affinity, inherited by the peer, and torch.set_num_threads). Reported:
each side's median examples per second over the rounds, its spread (min-max), and `ratio` =
the ratio of the medians, fmacomp / torch. torch is a benchmark-only dependency
(`pip install torch==2.13.0`).

Ends with `name=value` lines on stdout, the last one `examples_per_s=<fmacomp's median>`.
"""

import functools
import os
import statistics
import subprocess
import sys
import time

from absl import flags
from absl import logging
import numpy as np

import launcher
from fmacomp import errors

_MODEL = flags.DEFINE_enum('model', 'freq_ae', ['freq_ae', 'time_ae'], 'Model to train.')
_BATCH = flags.DEFINE_integer('batch', 0, 'Batch size (0: the full config\'s).')
_STEPS = flags.DEFINE_integer('steps', 5, 'Timed steps per round (after 2 warm-up steps).')
_ROUNDS = flags.DEFINE_integer('rounds', 5, 'Alternating timing rounds; medians are reported.')
_LATENT = flags.DEFINE_integer('latent', 128, 'freq_ae latent channels C.')
_THREADS = flags.DEFINE_integer('threads', 2, 'CPU threads for both frameworks.')
_TORCH = flags.DEFINE_bool('torch', False, 'Also time the PyTorch eager peer.')
_PEER = flags.DEFINE_bool('peer', False, 'Internal: time one round of the PyTorch peer in this '
                          'process and print its seconds per step.')
_WARMUP = 2


def _config():
  from fmacomp.configs import freq_ae, time_ae  # pylint: disable=g-import-not-at-top
  if _MODEL.value == 'freq_ae':
    return freq_ae.get_config(f'latent={_LATENT.value}')
  return time_ae.get_config('')


def _audio(batch, length, seed=0):
  return (0.1 * np.random.default_rng(seed).standard_normal((batch, length))).astype(np.float32)


class _Stepper:
  """Runs a framework's training step; `seconds_per_step(n)` times n steps after warm-up."""

  def __init__(self, step, state, batch):
    self.step, self.state, self.batch = step, state, batch
    self.seconds_per_step(_WARMUP)

  def seconds_per_step(self, steps):
    start = time.perf_counter()
    for _ in range(steps):
      self.state, out = self.step(self.state, self.batch)
    if hasattr(out, 'block_until_ready'):
      out.block_until_ready()  # jax dispatches asynchronously; torch on CPU does not
    return (time.perf_counter() - start) / steps


def fmacomp_stepper(config, batch_size):
  """(stepper, compile seconds) of `train.train_step` at the config's crop, on random audio."""
  import jax  # pylint: disable=g-import-not-at-top
  from fmacomp import models  # pylint: disable=g-import-not-at-top
  from fmacomp.training import tasks, train  # pylint: disable=g-import-not-at-top

  model = models.get_model(config.model.name, **tasks.model_kwargs(config.model))
  length = int(round(config.crop_s * config.sample_rate))
  x = jax.numpy.asarray(_audio(batch_size, length))
  variables = model.init(jax.random.key(0), x[:1])
  params = variables.pop('params')
  state = train.TrainState.create(apply_fn=None, params=params, tx=train.make_optimizer(config),
                                  non_trainable=variables,
                                  loss_fn=functools.partial(tasks.autoencoder_loss, model))
  rng = jax.random.key(1)
  start = time.perf_counter()
  compiled = jax.jit(train.train_step, donate_argnums=(0,)).lower(
      state, {'audio': x}, rng).compile()
  compile_s = time.perf_counter() - start

  def step(state, batch):
    state, metrics = compiled(state, batch, rng)
    return state, metrics['loss']

  return _Stepper(step, state, {'audio': x}), compile_s


def _torch_model(name, config):
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  class TimeAE(nn.Module):
    """Conv1d 1->64 (512, /256), ReLU, 1x1 -> 32, ReLU; mirrored decoder. MSE on x/std."""

    def __init__(self, m):
      super().__init__()
      self.enc = nn.Sequential(nn.Conv1d(1, m.hidden_channels, m.kernel_size, m.stride),
                               nn.ReLU(), nn.Conv1d(m.hidden_channels, m.latent_channels, 1),
                               nn.ReLU())
      self.dec = nn.Sequential(nn.ConvTranspose1d(m.latent_channels, m.hidden_channels, 1),
                               nn.ReLU(),
                               nn.ConvTranspose1d(m.hidden_channels, 1, m.kernel_size, m.stride))

    def forward(self, x):
      target = x[:, None]  # normalisation statistics are constants: (x - 0) / 1 here
      return self.dec(self.enc(target)), target

  class FreqAE(nn.Module):
    """STFT re/im -> Conv2d 2->8->32 (5x5, /2) -> (62x1) -> C; mirrored decoder. MSE on STFT."""

    def __init__(self, m):
      super().__init__()
      self.n_fft, self.hop = m.n_fft, m.hop
      self.register_buffer('window', torch.hann_window(m.n_fft))
      w1, w2 = m.widths
      height = ((m.n_fft // 2 + 1 - 5) // 2 + 1 - 5) // 2 + 1  # 62
      self.enc = nn.Sequential(nn.Conv2d(2, w1, 5, 2), nn.ReLU(), nn.Conv2d(w1, w2, 5, 2),
                               nn.ReLU(), nn.Conv2d(w2, m.latent_channels, (height, 1)),
                               nn.ReLU())
      self.dec = nn.Sequential(nn.ConvTranspose2d(m.latent_channels, w2, (height, 1)),
                               nn.ReLU(), nn.ConvTranspose2d(w2, w1, 5, 2), nn.ReLU(),
                               nn.ConvTranspose2d(w1, 2, 5, 2))

    def forward(self, x):
      spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True,
                        pad_mode='reflect', return_complex=True)  # [B, 257, 513]
      target = torch.stack([spec.real, spec.imag], 1)  # [B, 2, 257, 513]
      return self.dec(self.enc(target)), target

  return {'time_ae': TimeAE, 'freq_ae': FreqAE}[name](config.model)


def torch_stepper(config, batch_size, threads):
  """The PyTorch eager peer's stepper: forward, MSE, backward, Adam."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  model = _torch_model(config.model.name, config)
  optimizer = torch.optim.Adam(model.parameters(), lr=config.optimizer.lr,
                               betas=(config.optimizer.b1, config.optimizer.b2))
  length = int(round(config.crop_s * config.sample_rate))
  x = torch.from_numpy(_audio(batch_size, length))
  with torch.no_grad():
    prediction, target = model(x)
  if prediction.shape != target.shape:
    raise errors.RunError('torch peer', f'{tuple(prediction.shape)} != {tuple(target.shape)}')

  def step(state, batch):
    optimizer.zero_grad(set_to_none=True)
    prediction, target = model(batch)
    loss = torch.mean(torch.square(prediction - target))
    loss.backward()
    optimizer.step()
    return state, loss.detach()

  return _Stepper(step, None, x)


def _peer_round(batch):
  """Seconds per step of one torch round, in a fresh subprocess (it inherits the affinity)."""
  args = [sys.executable, os.path.abspath(__file__), '--peer', f'--model={_MODEL.value}',
          f'--batch={batch}', f'--steps={_STEPS.value}', f'--latent={_LATENT.value}',
          f'--threads={_THREADS.value}']
  # The peer runs with torch's own threading defaults, its best on a quiet machine (forcing
  # OMP_WAIT_POLICY=PASSIVE cost it 11 %: 830 against 928 examples/s on time_ae). Its default
  # spin-waiting collapses when other jobs load the cores, so compare on a quiet machine.
  out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
  return float(out.strip().splitlines()[-1].split('=')[1])


def measure(config, batch, steps, rounds, with_torch):
  """Seconds per step of each framework in each of `rounds` alternating rounds of `steps`.

  Alternating rounds make the ratio of medians robust to a shared machine's load, which
  drifts over minutes.
  """
  ours, compile_s = fmacomp_stepper(config, batch)
  seconds = {'fmacomp': [], 'torch': []}
  for r in range(rounds):
    seconds['fmacomp'].append(ours.seconds_per_step(steps))
    if with_torch:
      seconds['torch'].append(_peer_round(batch))
    logging.info('round %d: s/step %s', r + 1, {k: v[-1] for k, v in seconds.items() if v})
  return seconds, compile_s


def _rates(batch, seconds):
  """Examples per second: the median and the spread (min-max) over rounds."""
  rates = [batch / s for s in seconds]
  return statistics.median(rates), min(rates), max(rates)


def main(argv):
  del argv
  available = sorted(os.sched_getaffinity(0))
  if _THREADS.value < len(available):
    os.sched_setaffinity(0, available[:_THREADS.value])  # before XLA's thread pool exists
  config = _config()
  batch = _BATCH.value or config.batch_size
  if _PEER.value:
    peer = torch_stepper(config, batch, _THREADS.value)  # warms up before timing
    print(f'seconds_per_step={peer.seconds_per_step(_STEPS.value)}', flush=True)
    return
  logging.info('%s, batch %d, crop %d samples at %d Hz, %d threads', _MODEL.value, batch,
               int(round(config.crop_s * config.sample_rate)), config.sample_rate,
               _THREADS.value)
  seconds, compile_s = measure(config, batch, _STEPS.value, _ROUNDS.value, _TORCH.value)
  ours = _rates(batch, seconds['fmacomp'])
  results = {'model': _MODEL.value, 'batch': batch, 'threads': _THREADS.value,
             'rounds': _ROUNDS.value, 'compile_s': f'{compile_s:.2f}',
             'steps_per_s': f'{ours[0] / batch:.3f}',
             'examples_per_s_spread': f'{ours[1]:.2f}-{ours[2]:.2f}'}
  if _TORCH.value:
    theirs = _rates(batch, seconds['torch'])
    results['torch_examples_per_s'] = f'{theirs[0]:.2f}'
    results['torch_examples_per_s_spread'] = f'{theirs[1]:.2f}-{theirs[2]:.2f}'
    results['ratio'] = f'{ours[0] / theirs[0]:.3f}'
  results['examples_per_s'] = f'{ours[0]:.2f}'
  for name, value in results.items():
    print(f'{name}={value}', flush=True)


if __name__ == '__main__':
  launcher.run(main)
