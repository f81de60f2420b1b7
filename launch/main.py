r"""The main job: `python launch/main.py --workdir=DIR [--dataset=NAME] [--manual_dir=DIR]
[--smoke|--full]`.

Prepares the dataset (the embedded `synthetic_music` by default) and prints its summary, trains
the quick configs of every model (time_ae, freq_ae and their quantised versions, the full-band
codec `stft_codec` at the dataset's rate, the latent classifier and the log-mel baseline; one
seed, each in `DIR/<stage>/`), evaluates them on the test split beside MP3, Opus
and resampling (`DIR/eval/results.json`) and writes the report. The last stdout line is
`report=DIR/report/report.html`. About 7.5 minutes on a quiet 2-core machine; re-running
resumes (finished stages are skipped). `--smoke` uses the tiny configs and a small evaluation
(under 2 minutes on `synthetic_music/tiny`); `--full` the reference settings (hours).
"""

from absl import flags

import launcher
from fmacomp import datasets
from fmacomp import errors
from fmacomp import study

flags.DEFINE_string('workdir', None, 'Where the study writes everything.')
flags.DEFINE_string('dataset', datasets.DEFAULT_DATASET, 'Dataset NAME (DESIGN.md).')
flags.DEFINE_string('manual_dir', '', 'FMA download or music folder.')
flags.DEFINE_string('data_dir', '', 'Where dataset builds live (default TFDS_DATA_DIR).')
flags.DEFINE_bool('smoke', False, 'Tiny configs and a small evaluation: the end-to-end check.')
flags.DEFINE_bool('full', False, 'The reference settings (hours).')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.smoke and FLAGS.full:
    raise errors.InputError('--smoke/--full', 'choose at most one')
  size = 'smoke' if FLAGS.smoke else 'full' if FLAGS.full else 'quick'
  path = study.run_study(FLAGS.workdir, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
                         manual_dir=FLAGS.manual_dir, size=size)
  print(f'report={path}', flush=True)


if __name__ == '__main__':
  launcher.run(main)
