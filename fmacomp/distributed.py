"""Multi-host start-up: `jax.distributed` on TPU VM pods, multi-GPU hosts and CPU localhost.

Launchers call `initialize(...)` first thing in main (launch/launcher.py maps their flags onto
its arguments). On a TPU VM pod (or under Slurm or Open MPI) pass `--distributed`: JAX detects
the cluster. On GPU
hosts and on CPU, pass the coordinator address, the number of processes and this process's id;
on CPU the cross-process collectives use gloo, which is how fmacomp tests two processes on
127.0.0.1. With none of these flags the run is a single process.
"""

from absl import logging
import jax


def initialize(coordinator_address='', num_processes=0, process_id=-1, cpu_collectives='gloo',
               auto_detect=False):
  """Initialises jax.distributed when more than one process is asked for.

  Args:
    coordinator_address: 'host:port' of process 0; '' for single process or auto-detection.
    num_processes: total number of processes (0: auto-detect or single process).
    process_id: this process's index (-1: auto-detect).
    cpu_collectives: collectives implementation for the CPU backend.
    auto_detect: initialise even without the arguments above, letting JAX detect the cluster
      (TPU VM pods, Slurm, Open MPI).
  """
  if auto_detect or num_processes > 1 or coordinator_address:
    # Only the CPU client reads this; it must be set before any backend exists.
    jax.config.update('jax_cpu_collectives_implementation', cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=coordinator_address or None,
        num_processes=num_processes or None,
        process_id=process_id if process_id >= 0 else None)
  logging.info('JAX process %d of %d; %d local devices, %d in all (%s)',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), jax.default_backend())
