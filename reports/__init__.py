"""The library of a study's results folder: its format (reports.folder), the statistics of its tables
(reports.stats), and the figures and written report (Markdown + self-contained HTML) drawn from it, re-running
nothing. ``build_report("results/my-study")`` returns results/my-study/report/report.md; on the command line,
``python -m harness report RESULTS_DIR [--out DIR]``.

The drawing names below load on first use: the harness and its workers import reports.folder and reports.stats
without matplotlib."""
import importlib

_LAZY = {"build_report": "build", "ReportInputError": "data", "load": "data", "FIGURE_NAMES": "figures"}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'reports' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
