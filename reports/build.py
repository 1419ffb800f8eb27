"""Build the report of a results folder: the figures, report.md from templates/report.md.j2 (the prose
and tables) with the views of the data it shows, and report.html."""
from __future__ import annotations

import datetime
from pathlib import Path

import pandas as pd

from . import answer, article, machines, style
from .data import StudyData, accuracy_curves, load, phase_table, rows, select, time_to_accuracy_table
from .document import markdown_table, templates, to_html, unwrap
from .figures import draw_all
from .folder.files import write_text_atomic
from .folder.schema import CELL_KEY, FASTER, OK, PHASES, SLOWER, UNCLEAR, variant_descriptions
from .stats.epoch_stats import reached_threshold
from .stats.summary import N_RESAMPLES, NOISY_REL_IQR, busy_sentence


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

    # -- the run counts and lists the template shows (pandas stays here) -------------------------------
    def counts(self) -> dict:
        """Runs, successful runs, instrumented runs and repeats of the study."""
        runs = self.d.runs
        return dict(runs=len(runs), ok=int((runs["status"] == OK).sum()), instrumented=int(runs["instrumented"].sum()),
                    repeats=self.d.study.get("repeats") or int(runs["repeat"].max()) + 1)

    def compared(self) -> list[list[str]]:
        """'What is compared': each variant that ran or is registered, its description, runs ok / runs."""
        registry, runs = variant_descriptions(), self.d.runs
        pairs = set(zip(runs["framework"], runs["variant"])) | {(f, v) for f, named in registry.items() for v in named}
        body = []
        for fw, v in style.sort_series(pairs):
            mine = select(runs, framework=fw, variant=v)
            ok = int((mine["status"] == OK).sum())
            body.append([style.label(fw, v), registry.get(fw, {}).get(v, "(not described)"),
                         f"{ok}/{len(mine)}" if len(mine) else "not run"])
        return body

    def failed(self) -> list[pd.Series]:
        return rows(self.d.runs[self.d.runs["status"] != OK])

    def succeeded_frameworks(self) -> set[str]:
        return set(select(self.d.runs, status=OK)["framework"])

    def variants_run(self, framework: str) -> list[str]:
        return list(select(self.d.runs, framework=framework)["variant"])

    def with_column(self, column: str) -> list[pd.Series]:
        """The cells (with a time) whose ``column`` has a value, e.g. break_even_epochs."""
        return self.rows(self.ok[self.ok[column].notna()])

    def rows(self, frame: pd.DataFrame | None = None, **equal) -> list[pd.Series]:
        return rows(select(self.ok if frame is None else frame, **equal))

    def best(self, b: int, t: int, framework: str, metric: str = "wall_median_s") -> pd.Series | None:
        values = select(self.ok, batch_size=b, threads=t, framework=framework)[metric].dropna()
        return None if values.empty else self.ok.loc[values.idxmin()]

    def row(self, name, b: int, t: int) -> pd.Series | None:
        """The cell of a 'framework/variant' name (summary.csv's best_peer, NaN if none) at batch b, threads t."""
        framework, _, variant = str(name).partition("/")
        s = select(self.ok, framework=framework, variant=variant, batch_size=b, threads=t)
        return None if s.empty else s.iloc[0]

    def combos(self, main: bool = True, **equal) -> list[tuple[int, int]]:
        """(batch size, threads) of the cells with a time; ``main``: at the main thread setting if it has any."""
        frame = select(self.ok, **equal)
        combos = [(int(b), int(t)) for b, t in dict.fromkeys(zip(frame["batch_size"], frame["threads"]))]
        return [c for c in combos if c[1] == self.main_threads or not main] or combos

    def at(self, cell) -> str:
        return f"batch {cell['batch_size']:,}" + (f" ({style.threads_label(cell['threads'])})" if self.several else "")

    def names_at(self, cells) -> list[str]:
        return [f"{style.label(c['framework'], c['variant'])} at {self.at(c)}" for c in cells]

    def table(self, headers: list[str], body: list[list], align: str) -> str:
        """A Markdown table led by Batch (and Threads with several thread settings): each row's first two values."""
        lead = ["Batch"] + (["Threads"] if self.several else [])
        body = [[f"{b:,}"] + ([str(t)] if self.several else []) + rest for b, t, *rest in body]
        return markdown_table(lead + headers, body, "r" * len(lead) + align)

    def walls(self, cell) -> str:
        return ", ".join(style.fmt_s(w) for w in sorted(select(self.d.timing_runs, **cell[CELL_KEY])["wall_s"]))

    def _threads_of(self, frame: pd.DataFrame) -> int:
        return self.main_threads if (frame["threads"] == self.main_threads).any() else int(frame["threads"].iloc[0])

    def first_on_ladder(self, cells) -> str:
        return min((c["variant"] for c in cells), key=lambda v: style.variant_rank("numpy", v))

    # -- facts of the sentences ------------------------------------------------------------------
    def phases(self):
        """Each instrumented NumPy variant's phases, epoch total, largest phase and its share, at the threads
        returned; whether thread settings differ; the batch sizes and variants that ran in row shares."""
        table, runs = phase_table(self.d), self.d.runs
        cells = [dict(c, total=sum(c[p] for p in (*PHASES, "other")), top=max(PHASES, key=c.get))
                 for c in select(table, threads=self._threads_of(table)).to_dict("records")]
        cells = [dict(c, share=c[c["top"]] / c["total"] if c["total"] > 0 else None) for c in cells]
        sel = runs[runs["instrumented"] & (runs["row_threads"] > 1)]
        shared = (sorted(sel["batch_size"].unique()), sorted(sel["variant"].unique())) if len(sel) else None
        return self._threads_of(table), cells, table["threads"].nunique() > 1, shared

    def final_accuracies(self) -> list[dict]:
        """Per batch size: the variants with the lowest and highest final test accuracy (median over repeats),
        their spread and the largest spread among the repeats of one variant (what the seed and the shuffling
        alone make), in percentage points; ``alike``: the variants differ by no more than 1 point or than their
        repeats do, so that they train the same way as far as this study can tell."""
        out = []
        for b, g in accuracy_curves(self.d).groupby("batch_size"):
            last = g.sort_values("epoch").groupby(["framework", "variant"]).tail(1).dropna(subset="test_acc")
            if last.empty:
                continue
            lo, hi = last.loc[last["test_acc"].idxmin()], last.loc[last["test_acc"].idxmax()]
            runs = self.d.timing_runs[self.d.timing_runs["batch_size"] == b]
            repeats = runs.groupby(CELL_KEY)["test_acc"].agg(lambda a: a.max() - a.min()).max() * 100
            spread, noise = (hi["test_acc"] - lo["test_acc"]) * 100, float(repeats) if repeats == repeats else 0.0
            out.append(dict(batch_size=b, n=len(last), lo=lo, hi=hi, spread=spread, noise=noise,
                            alike=spread <= max(1.0, noise)))
        return out

    def times_to_accuracy(self):
        """Per batch size: the cells that reach the threshold (fastest first), those that do not, and the
        best median test accuracy of any cell."""
        table, curves = time_to_accuracy_table(self.d, self.threshold), accuracy_curves(self.d)
        out = []
        for b, g in select(table, threads=self._threads_of(table)).groupby("batch_size", sort=True):
            g, c = g.sort_values("time_s", ascending=True), curves[curves["batch_size"] == b]
            reached = g["time_s"].map(style.finite)
            out.append((b, rows(g[reached]), rows(g[~reached]),
                        c.loc[c["test_acc"].idxmax()] if c["test_acc"].notna().any() else None))
        return self._threads_of(table), out, table["threads"].nunique() > 1


def guard(part) -> str:
    """A part of the report, or in its place why it could not be computed: one part must not lose the rest."""
    try:
        return part()
    except Exception as exc:  # noqa: BLE001
        return f"(This part could not be computed from the data: {type(exc).__name__}: {exc}.)"


def build_report(results_dir, out_dir=None, accuracy_threshold: float | None = None) -> Path:
    """Write report.md, a self-contained report.html (with the per-cell tables report.md leaves out, to stay short)
    and figures/*.png|svg to ``out_dir`` (default results_dir/report) and return report.md's path;
    ReportInputError for a missing or unusable folder or runs.csv. ``accuracy_threshold``
    fixes the time-to-accuracy threshold (default: the highest of 0.95, 0.94, ... that most variants reach)."""
    data = load(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "report"
    threshold = accuracy_threshold if accuracy_threshold is not None else reached_threshold(data.counted_epochs)
    figures = draw_all(data, out / "figures", threshold, auto_threshold=accuracy_threshold is None)
    machines.draw(data, out / "figures")
    report = Report(data, threshold)
    facts = dict(
        d=data, r=report, answer=answer.build(data, report.main_threads), figures=figures, threshold=threshold,
        machines=machines, guard=guard, select=select, table=markdown_table, variant_descriptions=variant_descriptions,
        label=style.label, andjoin=style.and_join, article=article, style=style, OK=OK, FASTER=FASTER, SLOWER=SLOWER,
        UNCLEAR=UNCLEAR, NOISY_REL_IQR=NOISY_REL_IQR, N_RESAMPLES=N_RESAMPLES, busy=busy_sentence(data.stats),
        now=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    template = templates().get_template("report.md.j2")
    md, full = (unwrap(template.render(details=details, **facts)) for details in (False, True))
    write_text_atomic(out / "report.html", to_html(full, out / "figures"))
    return write_text_atomic(out / "report.md", md)
