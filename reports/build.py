"""Build the report of a results folder: the figures, report.md from templates/report.md.j2 (the prose
and tables) with the views of the data it shows, and report.html."""
from __future__ import annotations

import datetime
import math
from pathlib import Path

import pandas as pd

from harness.files import write_text_atomic
from harness.schema import CELL_KEY, FASTER, OK, PHASES, SLOWER, UNCLEAR, variant_descriptions
from harness.summary import N_RESAMPLES, NOISY_REL_IQR

from . import article, machines, style
from .data import StudyData, accuracy_curves, choose_threshold, load, phase_table, rows, select, time_to_accuracy_table
from .document import markdown_table, templates, to_html, unwrap
from .figures import draw_all


class Report:
    """The views of the data the template shows: cells of summary.csv (``ok``: those with a time) and
    the facts its sentences state. Texts speak of the most threads (``main_threads``); tables show all."""

    def __init__(self, data: StudyData, threshold: float):
        self.d, self.threshold = data, threshold
        self.ok = data.stats[data.stats["n_ok"] > 0]
        self.several = len(data.threads_values) > 1
        self.main_threads = data.threads_values[0]
        self.peers = [f for f in data.frameworks if f != "numpy"]  # with successful runs, in report order
        self.present = sorted(set(data.runs["framework"]), key=style.framework_rank)  # with any runs

    def rows(self, frame: pd.DataFrame | None = None, **equal) -> list[pd.Series]:
        return rows(select(self.ok if frame is None else frame, **equal))

    def best(self, b: int, t: int, framework: str, metric: str = "wall_median_s") -> pd.Series | None:
        s = select(self.ok, batch_size=b, threads=t, framework=framework)
        s = s[s[metric].notna()]
        return None if s.empty else s.loc[s[metric].idxmin()]

    def row(self, name, b: int, t: int) -> pd.Series | None:
        """The cell of a 'framework/variant' name (summary.csv's best_peer) at batch b, threads t."""
        if not (isinstance(name, str) and "/" in name):
            return None
        s = select(self.ok, framework=name.split("/")[0], variant=name.split("/", 1)[1], batch_size=b, threads=t)
        return None if s.empty else s.iloc[0]

    def combos(self, framework: str | None = None, main: bool = True) -> list[tuple[int, int]]:
        """(batch size, threads) of the cells with a time; ``main``: at the main thread setting if it has any."""
        frame = self.ok if framework is None else select(self.ok, framework=framework)
        combos = [(int(b), int(t)) for b, t in dict.fromkeys(zip(frame["batch_size"], frame["threads"]))]
        return [c for c in combos if c[1] == self.main_threads or not main] or combos

    def at(self, b: int, t: int) -> str:
        return f"batch {b:,}" + (f" ({style.threads_label(t)})" if self.several else "")

    def table(self, headers: list[str], body: list[list], align: str) -> str:
        """A Markdown table led by Batch (and Threads with several thread settings): each row of ``body``
        starts with its batch size and threads."""
        lead = ["Batch"] + (["Threads"] if self.several else [])
        return markdown_table(lead + headers, [self.lead(*r[:2]) + r[2:] for r in body], "r" * len(lead) + align)

    def lead(self, b, t) -> list[str]:
        return [f"{b:,}"] + ([str(t)] if self.several else [])

    def walls(self, cell) -> str:
        return ", ".join(style.fmt_s(w) for w in sorted(select(self.d.timing_runs, **cell[CELL_KEY])["wall_s"]))

    def threads_of(self, frame: pd.DataFrame) -> int:
        return self.main_threads if (frame["threads"] == self.main_threads).any() else int(frame["threads"].iloc[0])

    def first_on_ladder(self, cells) -> str:
        return min((c["variant"] for c in cells), key=lambda v: style.variant_rank("numpy", v))

    # -- facts of the sentences ------------------------------------------------------------------
    def phases(self):
        """Per batch size, each instrumented NumPy variant's phases, epoch total, largest phase and its
        share; whether thread settings differ; the batch sizes and variants that ran in row shares."""
        table = phase_table(self.d)
        by_batch = []
        for b, g in select(table, threads=self.threads_of(table)).groupby("batch_size", sort=True):
            cells = [dict(c, total=sum(c[p] for p in (*PHASES, "other")), top=max(PHASES, key=c.get))
                     for c in g.to_dict("records")]
            by_batch.append((b, [dict(c, share=c[c["top"]] / c["total"] if c["total"] > 0 else None) for c in cells]))
        runs, shared = self.d.runs, None
        if "row_threads" in runs:
            sel = runs[runs["instrumented"] & (pd.to_numeric(runs["row_threads"], errors="coerce") > 1)]
            shared = (sorted(sel["batch_size"].unique()), sorted(sel["variant"].unique())) if len(sel) else None
        return self.threads_of(table), by_batch, table["threads"].nunique() > 1, shared

    def final_accuracies(self) -> list[tuple[int, list]]:
        out = []
        for b, g in accuracy_curves(self.d).groupby("batch_size"):
            last = g.sort_values("epoch").groupby(["framework", "variant"]).tail(1)
            if last["test_acc"].notna().any():
                out.append((b, rows(last[last["test_acc"].notna()])))
        return out

    def times_to_accuracy(self):
        """Per batch size: the cells that reach the threshold (fastest first), those that do not, and the
        best median test accuracy of any cell."""
        table, curves = time_to_accuracy_table(self.d, self.threshold), accuracy_curves(self.d)
        out = []
        for b, g in select(table, threads=self.threads_of(table)).groupby("batch_size", sort=True):
            g, c = g.sort_values("time_s", ascending=True), curves[curves["batch_size"] == b]
            reached = g["time_s"].map(math.isfinite)
            out.append((b, rows(g[reached]), rows(g[~reached]),
                        c.loc[c["test_acc"].idxmax()] if c["test_acc"].notna().any() else None))
        return self.threads_of(table), out, table["threads"].nunique() > 1


def guard(part, *args) -> str:
    """A part of the report, or in its place why it could not be computed: one part must not lose the
    whole report."""
    try:
        return part(*args)
    except Exception as exc:  # noqa: BLE001
        return f"(This part could not be computed from the data: {type(exc).__name__}: {exc}.)"


def render(data: StudyData, outcomes: dict, threshold: float) -> str:
    env, report = templates(), Report(data, threshold)
    env.filters.update(phase_name=lambda p: style.PHASE_LABELS[p].split(" (")[0], name_at=lambda r: (
        f"{style.label(r['framework'], r['variant'])} at {report.at(r['batch_size'], r['threads'])}"))
    return unwrap(env.get_template("report.md.j2").render(
        d=data, r=report, figures=outcomes, threshold=threshold, machines=machines, guard=guard, select=select,
        rows=rows, table=markdown_table, sort_series=style.sort_series, variant_descriptions=variant_descriptions,
        label=style.label, andjoin=style.and_join, interval=style.fmt_interval, article=article, style=style,
        machine_sections=machines.sections(data, len(outcomes) + 1), OK=OK, FASTER=FASTER, SLOWER=SLOWER,
        UNCLEAR=UNCLEAR, NOISY_REL_IQR=NOISY_REL_IQR, N_RESAMPLES=N_RESAMPLES,
        now=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")))


def build_report(results_dir, out_dir=None, accuracy_threshold: float | None = None) -> Path:
    """Write report.md, a self-contained report.html and figures/*.png|svg to ``out_dir`` (default results_dir/report)
    and return report.md's path; ReportInputError for a missing or unusable folder or runs.csv. ``accuracy_threshold``
    fixes the time-to-accuracy threshold (default: the highest of 0.95, 0.94, ... that most variants reach)."""
    data = load(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "report"
    threshold = accuracy_threshold if accuracy_threshold is not None else choose_threshold(data)
    outcomes = draw_all(data, out / "figures", threshold, auto_threshold=accuracy_threshold is None)
    machines.draw(data, out / "figures")
    md = render(data, outcomes, threshold)
    write_text_atomic(out / "report.html", to_html(md, out / "figures"))
    return write_text_atomic(out / "report.md", md)
