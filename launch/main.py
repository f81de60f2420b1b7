r"""The main job: `python launch/main.py --workdir=DIR [--dataset=NAME] [--manual_dir=DIR]
[--smoke|--full]`.

Prepares the dataset (the embedded `synthetic_music` by default), prints its summary, and trains
the quick configs of every model (time_ae, freq_ae, the latent classifier and the log-mel
baseline), one seed, each in `DIR/<stage>/`. Re-running resumes. `--smoke` uses the tiny
configs (about a minute); `--full` the reference settings.
"""

import os

from absl import flags

from fmacomp import cli
from fmacomp import datasets
from fmacomp import errors
from fmacomp import study

flags.DEFINE_string('workdir', None, 'Where the study writes everything.')
flags.DEFINE_string('dataset', datasets.DEFAULT_DATASET, 'Dataset NAME (DESIGN.md).')
flags.DEFINE_string('manual_dir', '', 'FMA download or music folder.')
flags.DEFINE_string('data_dir', '', 'Where dataset builds live (default TFDS_DATA_DIR).')
flags.DEFINE_bool('smoke', False, 'Tiny configs: the end-to-end check.')
flags.DEFINE_bool('full', False, 'The reference settings (hours).')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.smoke and FLAGS.full:
    raise errors.InputError('--smoke/--full', 'choose at most one')
  size = 'smoke' if FLAGS.smoke else 'full' if FLAGS.full else 'quick'
  study.run_study(FLAGS.workdir, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
                  manual_dir=FLAGS.manual_dir, size=size)
  print(f'results={os.path.join(os.path.abspath(FLAGS.workdir), "study.json")}', flush=True)


if __name__ == '__main__':
  cli.run(main)
