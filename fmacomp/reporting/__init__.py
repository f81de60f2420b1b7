"""Reporting: eval/results.json -> results.md and a self-contained report.html.

Reads results.json only (evaluation writes it and never imports reporting).

  tables.py      each results table defined once: results.json -> title, columns, cells
  results_md.py  eval/results.md: the tables as Markdown
  report.py      report/report.html: the tables, figures and audio embedded
  figures.py     the plots
"""
