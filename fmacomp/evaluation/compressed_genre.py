"""Genre accuracy against bitrate when a classifier reads compressed files.

For every pair of a latent classifier and a codec that quantises the latent it reads (a
quantised autoencoder whose `base` is the classifier's encoder, at the classifier's rate), each
test track is compressed whole to a .fmac file (`fmacomp.fmac.compress.encode_file`); the file's
symbols are entropy-decoded and dequantised (`codec_eval.fmac_latents`, no decoder, no audio
reconstructed) and the classifier's head reads `segments` evenly spaced windows of that latent
(`genre.classify_latents`), each as long as the latent of one of its crops. Segment and song
accuracy are reported beside the file's measured bitrate (its bytes x 8 / seconds).

The windows are whole latent frames, so a window starts on a multiple of the codec's hop; the
float classifier's own evaluation (`fmacomp.evaluation.genre`) places its segments at sample
precision.
"""

import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from fmacomp import audio
from fmacomp.evaluation import clips as clips_lib
from fmacomp.evaluation import codec_eval
from fmacomp.evaluation import common
from fmacomp.evaluation import genre
from fmacomp import models
from fmacomp.training import checkpointing

PENDING = ('no codec quantises the latent a classifier reads (train a quantised_ae whose base is '
           "the classifier's encoder, e.g. configs/quantised_ae.py with ae_workdir=<its "
           'encoder_workdir>)')


def _encoder_shape(reader, crop):
  """(frames, channels) of the output of a classifier run's encoder for one crop."""
  encoder = models.from_config(checkpointing.load_config(reader.config.encoder_workdir).model)
  x = jax.ShapeDtypeStruct((1, crop), jnp.float32)
  z = jax.eval_shape(lambda x: encoder.init_with_output(jax.random.key(0), x,
                                                        method='encode')[0], x)
  return z.shape[1:]


def pairs(runs):
  """[(classifier run, codec run)]: each latent classifier with each codec of its latent."""
  out = []
  for reader in (r for r in runs if r.kind == 'classifier'):
    if reader.config.model.frontend != 'latent':
      continue
    encoder = checkpointing.load_config(reader.config.encoder_workdir)
    for codec in (r for r in runs if r.kind == 'codec'):
      if (codec.config.model.get('base') == encoder.model.name and
          codec.config.sample_rate == reader.config.sample_rate):
        out.append((reader, codec))
  return out


def _track_probs(model, variables, crop, shape, codec, x, rate, segments, directory):
  """Class probabilities [segments, K] of one track read from its .fmac file, and its bytes."""
  from fmacomp.fmac import compress  # pylint: disable=g-import-not-at-top
  x = np.pad(x, (0, max(0, int(np.ceil(crop * rate / codec.sample_rate)) - len(x))))
  wav, fmac = os.path.join(directory, 'track.wav'), os.path.join(directory, 'track.fmac')
  audio.write_audio(wav, x, rate, subtype='FLOAT')
  size = compress.encode_file(wav, fmac, codec).bytes
  z = codec_eval.fmac_latents(fmac, codec)  # [frames in the file, C]
  frames, channels = shape
  if z.shape[1] != channels or z.shape[0] < frames:
    raise ValueError(f'the file holds a [{z.shape[0]}, {z.shape[1]}] latent, the classifier '
                     f'reads [{frames}, {channels}] windows')
  starts = np.round(np.linspace(0, z.shape[0] - frames, segments)).astype(int)
  windows = np.stack([z[s:s + frames] for s in starts])  # [segments, frames, C]
  logits = genre.classify_latents(model, variables, jnp.asarray(windows), crop)
  return np.asarray(jax.nn.softmax(logits, axis=-1)), size, len(x) / rate


def evaluate_pair(reader, codec_run, builder, tracks, segments):
  """One row: the classifier `reader` on `codec_run`'s files of every test track."""
  label_names = list(builder.info.features['label'].names)
  run = genre.load_classifier(reader.workdir, label_names)
  crop = int(round(run.config.crop_s * run.config.sample_rate))
  codec = codec_eval.load(codec_run.workdir)
  rate = int(builder.info.metadata['sample_rate'])
  shape = _encoder_shape(reader, crop)
  out = {'probs': [], 'labels': [], 'track_ids': []}
  n_bytes, seconds = 0, 0.0
  with tempfile.TemporaryDirectory() as directory:
    for track_id, label, x in tracks:
      probs, size, duration = _track_probs(run.model, run.variables, crop, shape, codec, x, rate,
                                           segments, directory)
      out['probs'].append(probs)
      out['labels'] += [label] * len(probs)
      out['track_ids'] += [track_id] * len(probs)
      n_bytes, seconds = n_bytes + size, seconds + duration
  out['probs'] = np.concatenate(out['probs'])
  report = genre.genre_report(out, label_names)
  return dict(name=f'{reader.group} reading {codec_run.group}', classifier=reader.group,
              codec=codec_run.group, runs=[reader.name, codec_run.name], split='test',
              seed=int(run.config.seed), step=run.step, segments_per_track=segments,
              kbps_measured=8 * n_bytes / seconds / 1000,
              segment_accuracy=report['segment']['accuracy'],
              song_accuracy=report['song']['accuracy'], **report)


def compressed_genre(runs, builder, segments):
  """{'status': 'done', 'rows': [...]} over every pair, or 'pending' with the reason."""
  found = pairs(runs)
  if not found:
    return {'status': 'pending', 'reason': PENDING, 'rows': []}
  # Read one track at a time, again for each pair: the test split is never held in memory.
  tracks = clips_lib.test_tracks(builder)
  rows = [evaluate_pair(reader, codec, builder, tracks, segments) for reader, codec in found]
  return {'status': 'done', 'split': 'test', 'tracks': len(tracks), 'rows': rows}


class CompressedGenreEvaluator:
  """Genre accuracy from compressed files: results.json's `genre.compressed`."""
  name = 'compressed_genre'

  def run(self, context):
    yield common.Result('genre.compressed', compressed_genre(
        context.runs, context.builder, context.options.genre_segments))
