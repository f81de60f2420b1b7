"""Training: `train.train_and_evaluate(config, workdir)` and what it needs.

  train.py          the loop: mesh from config, sharded state, jit steps, resume, metrics
  tasks.py          what each model is trained to do: its loss and its validation
  checkpointing.py  orbax managers (latest N + best), params_checksum, load_params
  sweep.py          seed sweeps over a config's `sweep()`
"""
