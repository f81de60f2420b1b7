"""Genre evaluation: segment and song accuracy, per-genre precision and recall, confusion.

A trained classifier reads `num_segments` evenly spaced segments of each test track (its own
crop length and rate; `fmacomp.datasets.pipeline.eval_batches`). Segment accuracy counts every
one of those segments; song accuracy takes a vote over a track's segments, ties broken by the
summed probabilities of the tied genres (the reference compared arrays of the wrong shape here).

`GenreEvaluator` reports classifier groups (runs differing by seed) for results.json.
`classify_latents` runs a latent classifier's head on latents given from outside (e.g. symbols
entropy-decoded from a file and dequantised) in place of its encoder's output: the encoder is
intercepted, not run, and no audio is reconstructed.
"""

import collections

import flax.linen as nn
import jax
import numpy as np

from fmacomp.datasets import pipeline
from fmacomp import errors
from fmacomp.evaluation import common
from fmacomp.evaluation import rows as rows_lib
from fmacomp.models import classifier as classifier_lib
from fmacomp.training import checkpointing


def song_votes(probs, track_ids):
  """Per-track vote: (track ids in first-seen order, predicted class per track).

  Args:
    probs: float [S, K] class probabilities of S segments.
    track_ids: [S] the track of each segment.

  Returns:
    (ids [N], predictions int [N]): the most voted class of each track's segments; among tied
    classes, the one with the largest summed probability.
  """
  probs = np.asarray(probs, np.float64)
  groups = collections.OrderedDict()
  for i, t in enumerate(track_ids):
    groups.setdefault(t, []).append(i)
  predictions = []
  for rows in groups.values():
    p = probs[rows]  # [s, K]
    votes = np.bincount(p.argmax(axis=1), minlength=p.shape[1])
    tied = votes == votes.max()
    predictions.append(int(np.argmax(np.where(tied, p.sum(axis=0), -np.inf))))
  return list(groups), np.asarray(predictions, np.int64)


def classification_report(y_true, y_pred, label_names):
  """Accuracy, confusion matrix and per-class precision/recall.

  Args:
    y_true, y_pred: int [N] class ids.
    label_names: [K] names of the class ids.

  Returns:
    {'accuracy', 'n', 'confusion': [K][K] (rows true, columns predicted),
     'per_class': [{'label', 'precision', 'recall', 'support', 'predicted'}]}; a precision or
    recall with nothing to divide by (no predictions / no examples of the class) is None.
  """
  y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
  k = len(label_names)
  confusion = np.zeros((k, k), np.int64)
  np.add.at(confusion, (y_true, y_pred), 1)
  per_class = []
  for c, name in enumerate(label_names):
    hit, support = int(confusion[c, c]), int(confusion[c].sum())
    predicted = int(confusion[:, c].sum())
    per_class.append({'label': name, 'precision': hit / predicted if predicted else None,
                      'recall': hit / support if support else None, 'support': support,
                      'predicted': predicted})
  return {'accuracy': float(np.mean(y_true == y_pred)) if len(y_true) else None,
          'n': int(len(y_true)), 'confusion': confusion.tolist(), 'per_class': per_class}


def load_classifier(workdir, label_names):
  """The `checkpointing.TrainedRun` of a classifier whose classes are `label_names`."""
  run = checkpointing.load_run(workdir)
  if run.model.n_classes != len(label_names):
    raise errors.InputError(workdir, f'the classifier has {run.model.n_classes} classes, the '
                                     f'dataset {len(label_names)}')
  return run


def segment_outputs(model, variables, builder, config, split='test', num_segments=5,
                    batch_size=8):
  """Class probabilities of `num_segments` evenly spaced segments of every track of `split`.

  Returns:
    {'probs': float [S, K], 'labels': int [S], 'track_ids': [S], 'segment_index': int [S]}.
  """
  apply = jax.jit(lambda v, x: jax.nn.softmax(model.apply(v, x), axis=-1))
  out = collections.defaultdict(list)
  for batch in pipeline.eval_batches(
      builder, split=split, segment_s=config.crop_s, sample_rate=config.sample_rate,
      batch_size=batch_size, num_segments=num_segments,
      label_filter=config.get('label_filter') or None, process_index=0, process_count=1):
    mask = batch['mask']
    if not mask.any():
      continue
    out['probs'].append(np.asarray(apply(variables, batch['audio']))[mask])
    for key in ('label', 'track_id', 'segment_index'):
      out[key].append(batch[key][mask])
  if not out:
    return {'probs': np.zeros((0, 0)), 'labels': np.zeros(0, np.int64), 'track_ids': [],
            'segment_index': np.zeros(0, np.int64)}
  return {'probs': np.concatenate(out['probs']), 'labels': np.concatenate(out['label']),
          'track_ids': list(np.concatenate(out['track_id'])),
          'segment_index': np.concatenate(out['segment_index'])}


def genre_report(outputs, label_names):
  """{'segment': report, 'song': report} from `segment_outputs`."""
  probs, labels = outputs['probs'], np.asarray(outputs['labels'])
  segment = classification_report(labels, probs.argmax(axis=1) if len(labels) else labels,
                                  label_names)
  ids, predictions = song_votes(probs, outputs['track_ids'])
  truth = {t: int(l) for t, l in zip(outputs['track_ids'], labels)}
  song = classification_report([truth[t] for t in ids], predictions, label_names)
  return {'segment': segment, 'song': song}


def evaluate_group(group, members, builder, segments):
  """The test-split record of one classifier group (runs differing by seed)."""
  label_names = list(builder.info.features['label'].names)
  reports = []
  for member in members:
    run = load_classifier(member.workdir, label_names)
    outputs = segment_outputs(run.model, run.variables, builder, run.config,
                              num_segments=segments)
    reports.append(dict(genre_report(outputs, label_names), run=member.name,
                        seed=int(run.config.seed), step=run.step))
  config = members[0].config
  encoder = (checkpointing.load_config(config.encoder_workdir).model.name
             if config.model.frontend == 'latent' else None)
  over_seeds = lambda level: rows_lib.over_seeds([r[level]['accuracy'] for r in reports])
  return {'name': group, 'frontend': config.model.frontend, 'encoder': encoder,
          'split': 'test', 'segments_per_track': segments, 'runs': reports,
          'segment_accuracy': over_seeds('segment'), 'song_accuracy': over_seeds('song')}


class GenreEvaluator:
  """Segment and song accuracy, per-genre precision and recall of each classifier group."""
  name = 'genre'

  def run(self, context):
    for group, members in context.groups('classifier').items():
      record = evaluate_group(group, members, context.builder, context.options.genre_segments)
      yield common.Result('genre.classifiers', record)


def classify_latents(model, variables, latents, input_length):
  """Logits of a latent classifier whose encoder output is replaced by `latents`.

  The encoder's `encode` is intercepted and returns `latents` (e.g. dequantised symbols from a
  file), so neither the encoder nor any decoder runs: the head reads the given latents.

  Args:
    model: a `Classifier` with frontend 'latent'.
    variables: its variables.
    latents: float [B, frames, channels], as the encoder would produce.
    input_length: the audio length (samples) the latents stand for (shapes only).

  Returns:
    logits [B, n_classes].
  """
  if model.frontend != 'latent':
    raise ValueError('classify_latents needs a latent classifier, not a log-mel one')

  def interceptor(next_fun, args, kwargs, context):
    if (context.method_name == 'encode' and
        context.module.name == classifier_lib.ENCODER):
      return latents
    return next_fun(*args, **kwargs)

  unused_audio = np.zeros((latents.shape[0], input_length), np.float32)  # [B, T]
  with nn.intercept_methods(interceptor):
    return model.apply(variables, unused_audio)
