"""eval/results.md: the tables of eval/results.json (`fmacomp.reporting.tables`) as Markdown.

The same tables as report.html, cell for cell (the numbers formatted by `tables.number`), for
reading in a terminal or a code review. `write_results_md(workdir)` reads results.json and writes
results.md beside it; evaluation itself never writes it.
"""

import os

from fmacomp import files
from fmacomp import metrics as metrics_lib
from fmacomp.reporting import tables


def _escape(cell_text):
  return cell_text.replace('|', '\\|')


def table_lines(table):
  """A `tables.Table` as Markdown lines: heading, note, table (when it has rows), blank line."""
  lines = ['#' * table.level + ' ' + table.title, '']
  if table.note:
    lines += [table.note, '']
  if not table.rows:
    return lines
  lines += ['| ' + ' | '.join(table.columns) + ' |', '|' + '---|' * len(table.columns)]
  lines += ['| ' + ' | '.join(_escape(tables.text(c)) for c in row) + ' |'
            for row in table.rows]
  return lines + ['']


def format_results(results):
  """The whole results.md."""
  lines = [f'# fmacomp evaluation: {results["dataset"]["name"]}', '',
           f'Metrics: {", ".join(metrics_lib.METRICS)} (DESIGN.md). Runs: '
           f'{", ".join(sorted(results["runs"]))}.', '']
  for table in tables.all_tables(results):
    lines += table_lines(table)
  if results['skipped']:
    lines += ['## Skipped', ''] + [f'- {s["workdir"]}: {s["reason"]}' for s in results['skipped']]
  return '\n'.join(lines) + '\n'


def write_results_md(workdir):
  """Writes `<workdir>/eval/results.md` from `<workdir>/eval/results.json`; returns its path."""
  out = os.path.join(tables.eval_dir(workdir), 'results.md')
  files.write_text_atomic(out, format_results(tables.read_results(workdir)))
  return out
