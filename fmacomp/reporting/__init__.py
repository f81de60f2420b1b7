"""Reporting: eval/results.json -> results.md and a self-contained report.html.

  results_md.py  the results tables as Markdown
  report.py      report/report.html (figures and audio embedded)
  figures.py     the plots
"""
