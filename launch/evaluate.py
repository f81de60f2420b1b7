r"""Evaluates trained runs on the test split and writes the report.

  python launch/evaluate.py --workdir=runs/study                 # every run under it
  python launch/evaluate.py --workdir=runs/fae --preset=full --visqol_clips=16
  python launch/evaluate.py --workdir=runs/x --runs=runs/study/freq_ae,runs/fae_sweep

Discovers the runs under --workdir (itself, its sub-directories, their sweep/ runs) or takes
--runs, evaluates them into `<workdir>/eval/results.json` and the listening clips (`eval/audio/`),
then reports: `eval/results.md` and `<workdir>/report/report.html`. stdout: `results=<path>` then
`report=<path>` (the last line). Presets set every option; a flag given overrides its preset.
"""

from absl import flags

import launcher
from fmacomp.evaluation import evaluate
from fmacomp.reporting import report
from fmacomp.reporting import results_md

flags.DEFINE_string('workdir', None, 'A study workdir or a training run.')
flags.DEFINE_list('runs', [], 'Run workdirs to evaluate (default: discover under --workdir).')
flags.DEFINE_enum('preset', 'quick', list(evaluate.PRESETS), 'Default sizes of what follows.')
flags.DEFINE_integer('clips', None, 'Rate-distortion clips from the test split.')
flags.DEFINE_float('clip_s', None, 'Length of each clip in seconds.')
flags.DEFINE_integer('visqol_clips', None, 'Clips that also get ViSQOL (slow; 0 turns it off).')
flags.DEFINE_integer('listen_clips', None, 'Clips with audio players in the report.')
flags.DEFINE_integer('genre_segments', None, 'Segments per test track for the song vote.')
flags.DEFINE_string('ladder', None, 'Baseline bitrate ladder: smoke, quick or full.')
flags.DEFINE_bool('report', True, 'Also write report/report.html.')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  options = evaluate.make_options(
      FLAGS.preset, clips=FLAGS.clips, clip_s=FLAGS.clip_s, visqol_clips=FLAGS.visqol_clips,
      listen_clips=FLAGS.listen_clips, genre_segments=FLAGS.genre_segments, ladder=FLAGS.ladder,
      runs=tuple(FLAGS.runs) or None)
  evaluate.evaluate(FLAGS.workdir, options)
  results_md.write_results_md(FLAGS.workdir)
  print(f'results={evaluate.results_path(FLAGS.workdir)}', flush=True)
  if FLAGS.report:
    print(f'report={report.write_report(FLAGS.workdir)}', flush=True)


if __name__ == '__main__':
  launcher.run(main)
