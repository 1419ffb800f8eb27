"""Build the report of a results folder: the figures, report.md from templates/report.md.j2 (the prose)
with what reports.sections, reports.findings and reports.answer prepare from the data, and report.html."""
from __future__ import annotations

import datetime
from pathlib import Path

from . import answer, findings, machines
from .data import load
from .document import templates, to_html, unwrap
from .figures import draw_all
from .folder.files import write_text_atomic
from .sections import Report, guard
from .stats.epoch_stats import reached_threshold
from .stats.summary import N_RESAMPLES, NOISY_REL_IQR, busy_sentence


def build_report(results_dir, out_dir=None, accuracy_threshold: float | None = None) -> Path:
    """Write report.md, a self-contained report.html (with the per-cell tables report.md leaves out, to stay short)
    and figures/*.png|svg to ``out_dir`` (default results_dir/report) and return report.md's path;
    ReportInputError for a missing or unusable folder or runs.csv. ``accuracy_threshold``
    fixes the time-to-accuracy threshold (default: the highest of 0.95, 0.94, ... that most variants reach)."""
    data = load(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "report"
    threshold = accuracy_threshold if accuracy_threshold is not None else reached_threshold(data.counted_epochs)
    figures = draw_all(data, out / "figures", threshold, auto_threshold=accuracy_threshold is None)
    machine = machines.section(data, out / "figures", sum(not o.left_out for o in figures.values()) + 1)
    report = Report(data, threshold)
    facts = dict(
        d=data, r=report, answer=answer.build(data, report.main_threads), figures=figures, guard=guard,
        findings=findings.texts(report, figures, guard), machine=machine,
        NOISY_REL_IQR=NOISY_REL_IQR, N_RESAMPLES=N_RESAMPLES, busy=busy_sentence(data.stats),
        now=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    template = templates().get_template("report.md.j2")
    md, full = (unwrap(template.render(details=details, **facts)) for details in (False, True))
    write_text_atomic(out / "report.html", to_html(full, out / "figures"))
    return write_text_atomic(out / "report.md", md)
