"""Figures and a written report (Markdown + self-contained HTML) from a study's results folder.

Usage::

    from reports import build_report
    path = build_report("results/my-study")          # -> results/my-study/report/report.md

or ``python -m reports build RESULTS_DIR [--out DIR]``. Only the files the harness wrote are read;
nothing is re-run.
"""
from .build import build_report
from .data import ReportInputError, load
from .document import parse_markdown_table
from .figures import FIGURE_NAMES

__all__ = ["build_report", "ReportInputError", "load", "parse_markdown_table", "FIGURE_NAMES"]
