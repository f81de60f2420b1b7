"""What every experiment config shares: argument parsing and the common blocks.

A config file is one experiment: `get_config(arg)` takes a string of comma-separated `key=value`
pairs (bare words are booleans set to True), parsed against typed defaults:

  python launch/train.py --config=fmacomp/configs/freq_ae.py:quick,latent=128 --workdir=/tmp/w

Audio constants (`sample_rate`, `crop_s`, ...) are set once at the top level of a config and
referenced with `config.get_ref` wherever else they are needed (data pipeline, frontend, model),
so a sweep over one of them reaches every consumer (STYLE.md item 3). A value computed from
others (a codec's crop, a whole number of latent frames of hop = product of strides) is a
`derived` reference, so it follows them too.
"""

import ml_collections
from ml_collections.config_dict import config_dict

VARIANTS = ('full', 'quick', 'tiny')


def parse_arg(arg, **spec):
  """Parses 'quick,latent=128' against typed defaults `spec` into a ConfigDict.

  Args:
    arg: the string after `:` in `--config=file.py:ARG` (may be None or empty).
    **spec: name -> default value; the default's type is used to parse the string.

  Returns:
    A ConfigDict with every name in `spec`.

  Raises:
    ValueError: an unknown key, or a value that does not parse as its default's type.
  """
  result = ml_collections.ConfigDict(dict(spec))
  for item in filter(None, (arg or '').split(',')):
    key, eq, value = item.partition('=')
    key = key.strip()
    if key not in spec:
      raise ValueError(f'unknown config argument {key!r} (known: {", ".join(sorted(spec))})')
    default = spec[key]
    if not eq:
      value = True
    elif isinstance(default, bool):
      if value.lower() not in ('true', 'false', '1', '0'):
        raise ValueError(f'config argument {key!r} expects a boolean, got {value!r}')
      value = value.lower() in ('true', '1')
    elif default is not None:
      value = type(default)(value)
    result[key] = value
  return result


def variant(args):
  """The size variant named by the arguments: 'tiny', 'quick' or 'full' (the default)."""
  chosen = [v for v in ('tiny', 'quick') if args.get(v)]
  if len(chosen) > 1:
    raise ValueError('choose at most one of tiny, quick')
  return chosen[0] if chosen else 'full'


def _apply(unused_default, fn, *values):
  return fn(*values)


def derived(fn, *refs, field_type=float):
  """A reference whose value is `fn(*values of refs)`, computed each time it is read.

  ml_collections' own arithmetic on references (`ref * 2`) covers one operator at a time; this
  covers any function of several fields (a hop that is the product of the strides), so a
  change of one of them (a size variant, `--config.model.strides=...`) reaches every field
  derived from it. Assigning a plain value to the derived field later replaces the rule.

  Args:
    fn: a picklable function of the referenced values (module level, or a partial of one).
    *refs: `config.get_ref(...)` references (plain values are passed through).
    field_type: the type of the result.

  Returns:
    An `ml_collections.FieldReference` to assign to a config field.
  """
  # `op` is FieldReference's documented hook for lazy values; `_Op` is its (fn, args) record.
  op = config_dict._Op(_apply, [fn, *refs])  # pylint: disable=protected-access
  return ml_collections.FieldReference(field_type(), field_type=field_type, op=op)


def data_config(name='synthetic_music'):
  """The data block: which dataset, where builds live, where a manual download is."""
  return ml_collections.ConfigDict(dict(
      name=name,
      data_dir='',     # '' -> TFDS_DATA_DIR or ~/tensorflow_datasets
      manual_dir='',   # FMA download or a music folder
      workers=0,       # processes that build it; 0 -> os.cpu_count()
  ))


def optimizer_config(lr=1e-3):
  """Adam as the reference used it, plus the knobs a research run wants."""
  return ml_collections.ConfigDict(dict(
      name='adam',
      lr=lr,
      schedule='constant',  # 'constant' | 'cosine' (with warmup)
      warmup_steps=0,
      weight_decay=0.0,     # > 0 switches to AdamW
      grad_clip_norm=0.0,   # 0 disables clipping
      b1=0.9,
      b2=0.999,
  ))


def base_config(seed=0):
  """Fields every training run has; experiment files fill in the rest."""
  config = ml_collections.ConfigDict()
  config.seed = seed
  config.data = data_config()
  config.optimizer = optimizer_config()
  config.batch_size = 16        # global, over all hosts and devices
  config.steps = 1000
  config.log_every = 50
  config.eval_every = 250
  config.eval_batches = 8       # validation batches per evaluation (0 = the whole split)
  config.checkpoint_every = 250
  config.keep_checkpoints = 2   # latest N; the best on validation is kept beside them
  config.worker_count = 0       # grain worker processes (0-1 on a 2-core machine)
  config.label_filter = ''      # e.g. 'Unknown': drop records with this label
  config.mesh = ml_collections.ConfigDict(dict(data=-1))  # -1: every device on the data axis
  return config


def shrink(config, *, steps, batch_size, eval_every, log_every=None, eval_batches=2):
  """Applies the common quick/tiny reductions in place."""
  config.steps = steps
  config.batch_size = batch_size
  config.eval_every = eval_every
  config.checkpoint_every = eval_every
  config.log_every = log_every or max(1, eval_every // 2)
  config.eval_batches = eval_batches
  return config
