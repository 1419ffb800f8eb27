"""Figures and a written report (Markdown + self-contained HTML) from a study's results folder: reads only the
files the harness wrote, re-runs nothing. ``build_report("results/my-study")`` returns
results/my-study/report/report.md; on the command line, ``python -m reports build RESULTS_DIR [--out DIR]``."""
from .build import build_report
from .data import ReportInputError, load
from .figures import FIGURE_NAMES

__all__ = ["build_report", "ReportInputError", "load", "FIGURE_NAMES"]
