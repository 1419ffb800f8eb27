"""The report's figures (matplotlib's object API, no pyplot state; captions: templates/captions.md.j2).
A figure whose data is missing is left out; its FigureOutcome says why (``placeholder``)."""
from __future__ import annotations

import functools
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from . import article, style
from .data import StudyData, accuracy_curves, phase_table, select, time_to_accuracy_table
from .document import one_line, templates
from .folder.files import write_atomic
from .folder.schema import CLEAR, COST_MODEL_FILE, PHASES, REFERENCE, WINNERS_FILE, reference_column, speedup_column
from .stats.cost_model import BAD_FIT, MIN_POINTS, steps as step_counts

FIGURE_TITLES = {
    "winner_map": "Which trains fastest for your batch size and epochs?",
    "cost_model": "Why: steady-epoch time against batch size, per-step cost model",
    "time_vs_batch": "Training time against batch size",
    "speedup_vs_peer": "Speed-up against the fastest peer variant",
    "steady_speedup_vs_peer": "Steady-epoch speed-up against the fastest peer variant",
    "ladder": "The NumPy optimization ladder, measured and as reported in the article",
    "phases": "Where a NumPy epoch spends its time",
    "accuracy": "Accuracy per epoch (parity of the implementations)",
    "time_to_accuracy": "Training time needed to reach a test accuracy",
    "efficiency": "How close NumPy gets to the BLAS floor",
}
FIGURE_NAMES = tuple(FIGURE_TITLES)


@dataclass
class FigureOutcome:
    title: str
    caption: str
    left_out: str | None = None  # why the figure is not drawn (no data, or drawing failed)
    number: int = 0  # its number in the report (figures left out have none)


class NoData(Exception):
    """A figure's data is missing; the message says what, for the report's list of what is left out."""


def need(rows, reason: str):
    """``rows`` (a frame) if it has any, else NoData(reason)."""
    if rows.empty:
        raise NoData(reason)
    return rows


def need_epochs(data: StudyData, unknown: str) -> None:
    if data.epochs is None:
        raise NoData(f"epochs.csv is missing, so {unknown}.")


def numpy_rows(data: StudyData, usable, reason: str):
    """The summary's NumPy rows where ``usable``; if none, NoData: that NumPy did not run, else ``reason``."""
    ran = (data.runs["framework"] == "numpy").any()
    return need(data.stats[(data.stats["framework"] == "numpy") & usable],
                reason if ran else "there are no NumPy runs in this study.")


_captions = functools.cache(lambda: templates().get_template("captions.md.j2").module)


def caption(name: str, **facts) -> str:
    """A figure's caption from its macro in captions.md.j2, as one line."""
    return one_line(str(getattr(_captions(), name)(**facts)))


def new_figure(height: float, width: float = style.FIG_WIDTH) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.06, w_pad=0.06)
    return fig


def legend(fig: Figure, rows: list[list]) -> None:
    """One legend under the axes (matplotlib's outside legend), filled row by row: one row per list."""
    rows = [r for r in rows if r]
    ncol = max(map(len, rows))
    grid = [r + [Line2D([], [], color="none", label=" ")] * (ncol - len(r)) for r in rows]
    fig.legend(handles=[g[c] for c in range(ncol) for g in grid], loc="outside lower center", ncols=ncol,
               frameon=False, fontsize=9, columnspacing=1.6, handlelength=2.4)  # matplotlib fills columns


def save(fig: Figure, out_dir: Path, name: str, text: str) -> None:
    """Run the layout and freeze it, hang the caption ``text`` under everything, save PNG and SVG."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    fig.set_layout_engine("none")
    for leg in fig.legends:  # pinned where the layout put them: savefig's tight box would move them
        leg.borderaxespad = 0
        leg.set_bbox_to_anchor(tuple(fig.transFigure.inverted().transform(leg.get_window_extent(renderer).p0)),
                               transform=fig.transFigure)
        leg.set_loc("lower left")
    if text:  # bbox_inches="tight" grows the image to hold it
        fig.text(0.01, (fig.get_tightbbox(renderer).y0 - 0.12) / fig.get_figheight(),
                 textwrap.fill(text, width=int(16 * fig.get_figwidth())), ha="left", va="top", fontsize=8.5,
                 color="#333333")
    with matplotlib.rc_context({"svg.hashsalt": name}):  # fixed SVG ids: a rebuilt figure is byte-identical
        for ext in ("png", "svg"):
            write_atomic(out_dir / f"{name}.{ext}", lambda tmp, ext=ext: fig.savefig(
                tmp, format=ext, dpi=style.DPI, bbox_inches="tight", pad_inches=0.15, facecolor="white",
                metadata={"Date": None} if ext == "svg" else None))


def grouped_bars(ax, groups: list, members: list, bars: dict, span: float = 0.82, shift: float = 0.0,
                 fill: float = 0.9) -> dict:
    """Bars of ``members`` side by side (sharing ``span``) in each of ``groups`` at 0, 1, ... (+ ``shift``);
    ``bars[group, member]``: height and ``ax.bar`` options. Returns each bar's x by (group, member)."""
    width, drawn = span / max(1, len(members)), {}
    for g, group in enumerate(groups):
        for m, member in enumerate(members):
            if (group, member) in bars:
                x = drawn[group, member] = g + shift + (m - (len(members) - 1) / 2) * width
                height, options = bars[group, member]
                ax.bar(x, height, width * fill, **{"edgecolor": "white", "lw": 0.5, **options})
    return drawn


def series_rows(series, patches: bool = False) -> list[list]:
    """Legend rows: one per framework, its variants as lines with markers (or as patches)."""
    def handle(f, v):
        look = dict(color=style.color(f, v), label=style.label(f, v))
        return Patch(**look) if patches else Line2D([], [], marker=style.MARKERS.get(f, "^"), lw=2, ms=6, **look)
    return [[handle(f, v) for f, v in series if f == fw]
            for fw in sorted({f for f, _ in series}, key=style.framework_rank)]


def series_of(frame) -> list:
    """The (framework, variant) pairs of a frame's rows, in report order."""
    return style.sort_series(set(zip(frame["framework"], frame["variant"])))


def note(ax, text: str, xy, dy: float = 2, **options) -> None:
    """A number just above a point (below it for ``dy`` < 0), e.g. a bar's length."""
    ax.annotate(text, xy, xytext=(0, dy), textcoords="offset points", ha="center", va="bottom" if dy >= 0 else "top",
                **options)


def batch_axis(ax, batch_sizes) -> None:
    ax.set_xscale("log")
    ax.xaxis.set(minor_locator=NullLocator(), minor_formatter=NullFormatter())
    ax.set_xticks(list(batch_sizes), labels=[f"{b:,}" for b in batch_sizes])
    ax.set(xlim=(min(batch_sizes) / 1.8, max(batch_sizes) * 1.8),
           xlabel="batch size (samples per mini-batch" + (", log scale)" if len(batch_sizes) > 1 else ")"))


def _log_y_if_wide(ax, values, ratio: float = 8.0, unit: str = "") -> bool:
    v = np.asarray([x for x in values if style.finite(x) and x > 0], dtype=float)
    if not (len(v) and v.max() / v.min() > ratio):
        return False
    ax.set_yscale("log")
    ax.yaxis.set(major_locator=LogLocator(base=10, subs=(1.0, 2.0, 5.0)), minor_formatter=NullFormatter(),
                 major_formatter=FuncFormatter(lambda value, _pos: f"{value:g}{unit}"),
                 minor_locator=LogLocator(base=10, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))
    return True


def _group_label(batch_size: int, threads: int, several_threads: bool, sep: str = "\n") -> str:
    return f"batch {batch_size:,}" + (f"{sep}{style.threads_label(threads)}" if several_threads else "")


def _panel_grid(frame, height_per_row: float, threads=None, extra_height: float = 1.0, ylabel: str = "",
                xlabel: str = "", **share):
    """Panels keyed by (batch_size, threads) of ``frame``: the batch sizes of one thread setting side by side
    (three per row at most), the thread settings (default: the frame's) below each other; ``ylabel`` on the
    first column, ``xlabel`` and the x tick labels under each panel with no panel below it."""
    batch_sizes = sorted(frame["batch_size"].unique())
    threads = style.order_threads(frame["threads"]) if threads is None else threads
    ncols = min(len(batch_sizes), 3)
    rows_per_threads = math.ceil(len(batch_sizes) / ncols)
    slots = {(b, t): (ti * rows_per_threads + bi // ncols) * ncols + bi % ncols
             for ti, t in enumerate(threads) for bi, b in enumerate(batch_sizes)}
    fig = new_figure(height_per_row * rows_per_threads * len(threads) + extra_height)
    axes = fig.subplots(rows_per_threads * len(threads), ncols, squeeze=False, **share).ravel()
    used = set(slots.values())
    for i, ax in enumerate(axes):
        ax.set_visible(i in used)
        if i in used and ylabel and i % ncols == 0:
            ax.set_ylabel(ylabel)
        if i in used and xlabel and not any(j > i and j % ncols == i % ncols for j in used):
            ax.xaxis.set_tick_params(which="both", labelbottom=True)
            ax.set_xlabel(xlabel)
    return fig, {key: axes[slot] for key, slot in slots.items()}, ncols


def _ticks(ax, series, rotate: bool = False, horizontal: bool = False) -> None:
    """(framework, variant) tick labels at 0, 1, ... in the variants' colours."""
    axis = ax.yaxis if horizontal else ax.xaxis
    axis.set_ticks(range(len(series)), labels=[v if f == "numpy" and not horizontal else style.label(f, v)
                                               for f, v in series],
                   **({"rotation": 30, "ha": "right", "rotation_mode": "anchor"} if rotate else {}))
    for tick, key in zip(axis.get_ticklabels(), series):
        tick.set_color(style.color(*key))
    (ax.set_ylim if horizontal else ax.set_xlim)(-0.6, len(series) - 0.4)


# -- the figures, in FIGURE_NAMES' order: each returns it and its caption's facts, or raises NoData ---
def _edges(values: list[float]) -> list[float]:
    """Cell edges around sorted positive values on a log axis: geometric midpoints, the ends mirrored."""
    v = np.log(np.asarray(values, float))
    mid = (v[1:] + v[:-1]) / 2
    step = (v[-1] - v[0]) / max(1, len(v) - 1) / 2 or 0.5
    return list(np.exp(np.concatenate([[v[0] - (mid[0] - v[0] if len(v) > 1 else step)], mid,
                                       [v[-1] + (v[-1] - mid[-1] if len(v) > 1 else step)]])))


def _epochs_label(epochs: int, study_epochs: int | None) -> str:
    """A training length's tick label; none for a grid value within 30 % of the study's own, whose label it would
    overlap."""
    near = study_epochs and epochs != study_epochs and max(epochs, study_epochs) < 1.3 * min(epochs, study_epochs)
    return "" if near else str(epochs)


def _why(data: StudyData, key: tuple, threads: list[int]) -> str:
    """Why a variant wins where it does, for its legend entry: its fitted cost per step (a small one wins small
    batches) and per sample at each thread setting, and its first epoch's median extra time over a steady one
    (compilation, warm-up: a small one wins short trainings)."""
    model, parts, fits = data.answer.get(COST_MODEL_FILE, pd.DataFrame()), [], []
    for t in threads if not model.empty else []:
        fit = select(model, threads=t, framework=key[0], variant=key[1])
        if not fit.empty:
            fits.append((t, fit.iloc[0]))
    if fits:
        def cost(r, column, digits=0):
            return f"{r[column] * 1e6:.{digits}f}"  # µs
        on = {t: f" ({style.threads_label(t)})" if len(threads) > 1 else "" for t, _ in fits}
        parts.append("a step " + ", ".join(f"{cost(r, 'step_cost_s')} µs [{cost(r, 'step_cost_lo_s')}, "
                                           f"{cost(r, 'step_cost_hi_s')}]{on[t]}" for t, r in fits))
        parts.append("a sample " + ", ".join(cost(r, "sample_cost_s", 1) for _, r in fits) + " µs")
    cells = select(data.stats, framework=key[0], variant=key[1])
    extra = (cells["first_epoch_median_s"] - cells["steady_epoch_median_s"]).dropna()
    if not extra.empty:
        parts.append(f"first epoch +{style.fmt_s(max(0.0, extra.median()))} s")
    return f"{style.label(*key)}: {'; '.join(parts)}" if parts else style.label(*key)


def fig_winner_map(data: StudyData):
    table = need(data.answer.get(WINNERS_FILE, pd.DataFrame()), "there is no winners.csv table (no first and "
                 "steady epochs of successful runs).")
    threads, batch_sizes = style.order_threads(table["threads"].unique()), sorted(table["batch_size"].unique())
    epochs = sorted(table["epochs"].unique())
    bx, ey = _edges(batch_sizes), _edges(epochs)
    fig = new_figure(4.6, width=max(style.FIG_WIDTH, 4.2 * len(threads)))
    axes = fig.subplots(1, len(threads), squeeze=False, sharey=True).ravel()
    winners_seen, unclear_seen, break_even_seen = [], False, False
    for ax, t in zip(axes, threads):
        for i, b in enumerate(batch_sizes):
            column = select(table, threads=t, batch_size=b).sort_values("epochs").to_dict("records")
            lows = [ey[0]] + [r["break_even_epochs"] if style.finite(r["break_even_epochs"])
                              and prev["epochs"] < r["break_even_epochs"] < r["epochs"] else ey[k + 1]
                              for k, (prev, r) in enumerate(zip(column, column[1:]))]
            highs = lows[1:] + [ey[-1]]
            for r, lo, hi in zip(column, lows, highs):
                key = tuple(r["winner"].split("/", 1))
                clear = r["lead"] == CLEAR
                winners_seen.append(key)
                unclear_seen |= not clear
                ax.fill_between([bx[i], bx[i + 1]], lo, hi, facecolor=style.color(*key), alpha=0.9 if clear else 0.35,
                                hatch=None if clear else "///", edgecolor="white", lw=0.6)
                if style.finite(r["break_even_epochs"]) and lo == r["break_even_epochs"]:
                    ax.plot([bx[i], bx[i + 1]], [lo, lo], color="black", lw=2.2)
                    break_even_seen = True
                    note(ax, f"{lo:.3g}", ((bx[i] * bx[i + 1]) ** 0.5, lo), fontsize=7.5)
        if data.epochs_per_run:
            ax.axhline(data.epochs_per_run, color="black", ls=":", lw=1.2)
        ax.set(xscale="log", yscale="log", xlim=(bx[0], bx[-1]), ylim=(ey[0], ey[-1]), xlabel="batch size (log scale)")
        ax.set_xticks(batch_sizes, labels=[f"{b:,}" for b in batch_sizes], fontsize=8.5)
        ax.xaxis.set(minor_locator=NullLocator(), minor_formatter=NullFormatter())
        ax.set_yticks(epochs, labels=[_epochs_label(e, data.epochs_per_run) for e in epochs], fontsize=8.5)
        ax.yaxis.set(minor_locator=NullLocator(), minor_formatter=NullFormatter())
        ax.set_title(style.threads_label(t), fontsize=10.5)
    axes[0].set_ylabel("training length (epochs, log scale)")
    fig.suptitle(FIGURE_TITLES["winner_map"], fontsize=12.5, weight="bold")
    rows = [[Patch(color=style.color(*key), label=_why(data, key, threads))]
            for key in style.sort_series(set(winners_seen))]
    extra = [(unclear_seen, Patch(facecolor="#8c8c8c", alpha=0.35, hatch="///", edgecolor="white",
                                  label="no clear winner, or one run: no verdict (pale, hatched: the winner's colour)")),
             (break_even_seen, Line2D([], [], color="black", lw=2.2, label="break-even: the winner changes")),
             (data.epochs_per_run, Line2D([], [], color="black", ls=":", lw=1.2,
                                          label=f"this study: {data.epochs_per_run} epochs"))]
    legend(fig, rows + [[handle] for shown, handle in extra if shown])
    costs = not data.answer.get(COST_MODEL_FILE, pd.DataFrame()).empty
    return fig, dict(epochs=data.epochs_per_run, break_even=break_even_seen, costs=costs, min_points=MIN_POINTS)


def fig_cost_model(data: StudyData):
    model = need(data.answer.get(COST_MODEL_FILE, pd.DataFrame()), "no variant's steady epochs were measured at "
                 f"{MIN_POINTS} or more batch sizes, so there is no per-step cost model.")
    model = model[model["variant"] != "original"]  # far slower than the rest: it would set the shared scale
    model = need(model, "only NumPy 'original' has a fit.")
    threads, series = style.order_threads(model["threads"].unique()), series_of(model)
    fig = new_figure(4.8, width=max(style.FIG_WIDTH, 4.6 * len(threads)))
    axes = fig.subplots(1, len(threads), squeeze=False, sharey=True).ravel()
    for ax, t in zip(axes, threads):
        for key in series:
            part = select(model, threads=t, framework=key[0], variant=key[1]).sort_values("batch_size")
            if part.empty:
                continue
            first = part.iloc[0]
            c, bad = style.color(*key), bool(first["bad_fit"])
            dense = np.geomspace(part["batch_size"].min(), part["batch_size"].max(), 80)  # the measured range only
            samples = first["samples"]
            fitted = step_counts(samples, dense) * first["step_cost_s"] + samples * first["sample_cost_s"]
            ax.plot(dense, fitted, color=c, lw=1.6, ls=":" if bad else "-")
            ax.plot(part["batch_size"], part["steady_epoch_median_s"], color=c, ls="none", ms=6,
                    marker=style.MARKERS.get(key[0], "^"))
        batch_axis(ax, sorted(model["batch_size"].unique()))
        ax.set_title(style.threads_label(t), fontsize=10.5)
        ax.grid(True, which="both", alpha=0.25)
    log = _log_y_if_wide(axes[0], model["steady_epoch_median_s"], ratio=10.0)
    if not log:
        axes[0].set_ylim(bottom=0)
    axes[0].set_ylabel("steady epoch (s" + (", log scale)" if log else ")"))
    legend(fig, series_rows(series) + [[
        Line2D([], [], color="#444444", marker="o", ls="none", label="measured: median steady epoch"),
        Line2D([], [], color="#444444", lw=1.6, label="fit: steps × step cost + samples × sample cost"),
        Line2D([], [], color="#444444", lw=1.6, ls=":", label=f"fit with a residual ≥ {BAD_FIT:.0%} (bad fit)")]])
    return fig, dict(original=(data.answer[COST_MODEL_FILE]["variant"] == "original").any(), bad_fit=f"{BAD_FIT:.0%}")


LINE_NAMES = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dotted"}  # style.THREAD_LINESTYLES in words


def fig_time_vs_batch(data: StudyData):
    stats = need(data.stats[data.stats["n_ok"] > 0], "no run finished with status ok, so there is no time to draw.")
    batch_sizes, series, threads = sorted(stats["batch_size"].unique()), series_of(stats), style.order_threads(
        stats["threads"])
    ls, shown = style.by_threads(threads, style.THREAD_LINESTYLES), threads if len(threads) > 1 else []
    fig, m = new_figure(4.9), len(series) * len(threads)
    for ax, metric, ylabel, title in zip(fig.subplots(1, 2), ("wall", "cpu"), (
            "training wall time, all epochs (s)", "process CPU time, all threads (s)"),
            ("Wall-clock time", "CPU time (sum over all threads)")):
        values = []
        for j, ((fw, var), t) in enumerate((s, t) for s in series for t in threads):
            s = select(stats, framework=fw, variant=var, threads=t)
            s = s[s[f"{metric}_median_s"].notna()].sort_values("batch_size")
            if s.empty:
                continue
            x = s["batch_size"].to_numpy(float) * (1.3 ** (1 / m)) ** (j - (m - 1) / 2)  # dodge within +-15 %
            y, lo, hi = (s[f"{metric}_{k}_s"].to_numpy(float) for k in ("median", "q25", "q75"))
            values += [*y, *lo, *hi]
            c, filled = style.color(fw, var), t == threads[0]  # most threads: filled markers
            ax.errorbar(x, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)], color=c, ls=ls[t],
                        marker=style.MARKERS.get(fw, "^"), ms=5.5, lw=1.7, capsize=2.5, elinewidth=1,
                        fillstyle="full" if filled else "none", mfc=c if filled else "white", mew=1.3)
            if len(s) >= 2:
                ax.fill_between(x, lo, hi, color=c, alpha=0.13, lw=0)
        batch_axis(ax, batch_sizes)
        if not _log_y_if_wide(ax, values):
            ax.set_ylim(bottom=0)
        if not values:
            ax.text(0.5, 0.5, f"no {metric.upper()} times recorded", ha="center", transform=ax.transAxes)
        ax.set_ylabel(ylabel + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.set_title(title, fontsize=11)
        ax.grid(True, alpha=0.3)
    legend(fig, series_rows(series) + [[Line2D([], [], color="#444444", ls=ls[t], lw=1.7, marker="o", ms=5.5, mew=1.3,
                                               mfc="#444444" if t == threads[0] else "white",
                                               label=style.threads_label(t)) for t in shown]])
    return fig, dict(line_styles=", ".join(f"{LINE_NAMES[ls[t]]} = {style.threads_label(t)}" for t in shown),
                     one_batch=batch_sizes[0] if len(batch_sizes) == 1 else None)


def fig_speedup(data: StudyData, steady: bool = False):
    """Speed-ups against the fastest peer, whole trainings or (``steady``) per steady epoch; NumPy 'original'
    (several times slower than the rest) is left out so that it does not set the shared scale."""
    col, best_col, stats = speedup_column("best_peer", steady), reference_column("best_peer", steady), data.stats
    metric = "steady_epoch_median_s" if steady else "wall_median_s"
    peers = "every peer run failed" if (data.runs["framework"] != "numpy").any() else (
        "there are no peer (TensorFlow, JAX, PyTorch) runs")
    shown = stats[stats[col].notna() & (stats["n_ok"] > 0)]
    left_out = sorted(set(shown.loc[shown["variant"] == "original", col].round(2)))
    s = need(shown[shown["variant"] != "original"], f"{peers}, so there is nothing to compare against.")
    threads, batch_sizes, series = style.order_threads(s["threads"]), sorted(s["batch_size"].unique()), series_of(s)
    values = np.concatenate([s[col], s[f"{col}_lo"].fillna(s[col]), s[f"{col}_hi"].dropna()]).astype(float)
    top, low = max(np.nanmax(values), 1.0), min(np.nanmin(values), 1.0)
    many = len(series) * len(batch_sizes) > 12
    best = dict(zip(zip(s["batch_size"], s["threads"]), s[best_col]))  # the fastest peer of each cell: 1×
    walls = dict(zip(zip(stats["batch_size"], stats["threads"], stats["framework"] + "/" + stats["variant"]),
                     stats[metric]))
    fig = new_figure(4.3 * len(threads) + 0.6, width=max(style.FIG_WIDTH, 1.7 * len(batch_sizes)))
    for ax, t in zip(fig.subplots(len(threads), 1, squeeze=False, sharey=True).ravel(), threads):
        log = _log_y_if_wide(ax, values, ratio=6.0, unit="×")
        cells = {(r.batch_size, (r.framework, r.variant)): r for r in s[s["threads"] == t].itertuples()}
        bars = {key: (getattr(r, col) - 1.0, dict(bottom=1.0, color=style.color(*key[1]))) for key, r in cells.items()}
        for key, x in grouped_bars(ax, batch_sizes, series, bars).items():  # from 1×: up = faster, down = slower
            r = cells[key]
            v, lo, hi = (float(getattr(r, f"{col}{k}")) for k in ("", "_lo", "_hi"))
            reference = getattr(r, f"{col}_verdict") == REFERENCE
            interval = np.isfinite(lo) and np.isfinite(hi) and not reference
            if interval:
                ax.errorbar(x, v, yerr=[[max(v - lo, 0)], [max(hi - v, 0)]], color="black", capsize=2, lw=0.9)
            up = v >= 1.0  # many bars: the value alone (the interval is its error bar), else the interval too
            text = "" if reference or many else f"\n[{lo:.2f}, {hi:.2f}]" if interval else " (1 run)"
            end = (max(v, hi) if up else min(v, lo)) if interval else v  # of the bar, or of its interval
            note(ax, f"{v:.2f}×{text}", (x, end), dy=2 if up else -2, fontsize=7 if many else 7.5,
                 rotation=90 if many else 0)
        ax.axhline(1.0, color="black", ls="--", lw=1.1, zorder=0.5)
        labels = [f"batch {b:,}\nfastest peer:\n{style.label_of(best[b, t])}, {style.fmt_s(walls[b, t, best[b, t]])} s"
                  if (b, t) in best else f"batch {b:,}\n(no data)" for b in batch_sizes]
        ax.set_xticks(range(len(batch_sizes)), labels=labels, fontsize=8.5)
        pad = 2.4 if many else 1.6  # on a log axis: room for the labels above and below the bars
        ax.set(xlim=(-0.6, len(batch_sizes) - 0.4), ylim=(low / pad, top * pad) if log else
               (max(0.0, low - 0.3 * (top - low) - 0.05), top * (1.45 if many else 1.25)),
               ylabel=("steady-epoch " if steady else "") + "speed-up vs fastest peer"
               + (" (log scale)" if log else ""))
        ax.set_title(style.threads_label(t) if len(threads) > 1 else "", fontsize=10.5)
        ax.grid(True, axis="y", alpha=0.3)
    legend(fig, series_rows(series, patches=True) + [[
        Line2D([], [], color="black", ls="--", lw=1.1, label="1× = as fast as the fastest peer variant"),
        Line2D([], [], color="black", marker="_", ms=8, lw=0.9, label="95 % bootstrap interval")]])
    return fig, dict(log=log, many=many, steady=steady, original=", ".join(f"{x}×" for x in left_out))


def fig_ladder(data: StudyData):
    s = numpy_rows(data, data.stats["n_ok"] > 0, "every NumPy run failed.")
    steps, threads = series_of(s), style.order_threads(s["threads"])
    cells = set(zip(s["variant"], s["batch_size"]))
    if len(steps) < 2 and not any((a.variant, a.batch_size) in cells for a in article.ARTICLE_TIMES):
        raise NoData(f"only NumPy {steps[0][1]} ran and the article has no time for it at these batch sizes: a "
                     "ladder needs two of its steps, or the article's (step3 and the others at batch 500 or 20000).")
    hatches, several = style.by_threads(threads, style.THREAD_HATCHES), len(threads) > 1
    looks = {t: dict(hatch=h, edgecolor="#222222" if h else "white") for t, h in hatches.items()}
    factor, scale_note = article.scale(data.epochs_per_run, data.train_size)
    fig, panels, ncols = _panel_grid(s, 4.3, threads[:1], 0.9, ylabel="training wall time, all epochs (s)",
                                     sharey=True)  # one scale: the steps compare across batch sizes
    derived, top = set(), 0.0  # whether the article's times shown are derived (True) or reported (False)
    for (b, _), ax in panels.items():
        cells = {(("numpy", r.variant), r.threads): r for r in s[s["batch_size"] == b].itertuples()}
        bars = {key: (r.wall_median_s, dict(color=style.color(*key[0]), **looks[key[1]])) for key, r in cells.items()}
        # the thread settings' bars share [-0.42, 0.18] around each step; the article's diamond sits right of them
        for key, x in grouped_bars(ax, steps, threads, bars, span=0.6, shift=-0.12, fill=0.88).items():
            median, q25, q75 = cells[key].wall_median_s, cells[key].wall_q25_s, cells[key].wall_q75_s
            ax.errorbar(x, median, yerr=[[max(median - q25, 0)], [max(q75 - median, 0)]], color="black",
                        capsize=2.5, lw=1)
            note(ax, style.fmt_s(median), (x, q75), dy=3, fontsize=7.5, rotation=90 if several else 0)
            top = max(top, q75)
        found = [(xi, a) for xi, (_, var) in enumerate(steps) for a in article.ARTICLE_TIMES
                 if (a.variant, a.batch_size) == (var, b)]
        for xi, a in found:
            top = max(top, a.seconds * factor)
            derived.add(a.derived)
            ax.plot([xi + 0.3], [a.seconds * factor], marker="D", ms=7, ls="none", color="black",
                    **(dict(mfc="white", mec="black", mew=1.5) if a.derived else {}))
        _ticks(ax, steps, rotate=ncols > 1)
        ax.set_title(f"batch size {b:,}" + ("" if found else "\n(no article figures at this batch size)"),
                     fontsize=10.5)
        ax.grid(True, axis="y", alpha=0.3)
    values = [v for v in s["wall_median_s"] if style.finite(v) and v > 0]
    for ax in panels.values():  # 'original' is several times slower: a log axis where the times span over 10x
        if _log_y_if_wide(ax, values + [top], ratio=10.0, unit=""):
            ax.set_ylim(min(values) / 1.6, top * (2.2 if several else 1.6))
            ax.set_ylabel(ax.get_ylabel().replace("(s)", "(s, log scale)"))
        else:
            ax.set_ylim(0, top * (1.22 if several else 1.12) if top > 0 else 1)
    legend(fig, [[Patch(facecolor="#bbbbbb", label="measured: median wall time (bar), IQR (error bar)")] + [
        Line2D([], [], marker="D", ls="none", ms=8, color="black", label=label, **options)
        for kind, label, options in ((False, "article, reported", {}),
                                     (True, "article, derived (6.5 × step3)", dict(mfc="white", mew=1.5)))
        if kind in derived], [Patch(facecolor="#bbbbbb", hatch=hatches[t], edgecolor="#222222",
                                     label=style.threads_label(t)) for t in threads if several]])
    return fig, dict(scale_note=scale_note, article=bool(derived))


def fig_phases(data: StudyData):
    need_epochs(data, "the per-phase times are unknown")
    table = need(phase_table(data), "there are no instrumented NumPy runs (runs with per-phase timing) in epochs.csv.")
    fig, panels, ncols = _panel_grid(table, 4.0, ylabel="seconds per epoch", sharey="row")
    phases = [*PHASES, *(["other"] if (table["other"] > 0).any() else [])]
    steady = {(r.variant, r.batch_size, r.threads): r.steady_epoch_median_s  # of the runs without phase timing
              for r in select(data.stats, framework="numpy").dropna(subset="steady_epoch_median_s").itertuples()}
    tops, totals = {}, []
    for (b, t), ax in panels.items():
        part = select(table, batch_size=b, threads=t)
        ax.set_title(_group_label(b, t, table["threads"].nunique() > 1, ", "), fontsize=11)
        if part.empty:
            ax.text(0.5, 0.5, "no instrumented runs", ha="center", va="center", transform=ax.transAxes)
            continue
        bottom = np.zeros(len(part))
        for p in phases:  # stacked: one bar per variant and phase, on top of the phases before it
            ax.bar(range(len(part)), part[p], 0.62, bottom, color=style.PHASE_COLORS[p], edgecolor="white", lw=0.5)
            bottom += part[p].to_numpy(float)
        scaled = part["variant"].to_numpy() != "original"  # several times slower: it does not set the scale
        tops[t] = max(tops.get(t, 0.0), float(bottom[scaled if scaled.any() else ~scaled].max()))
        for i, var in enumerate(part["variant"]):
            totals.append((ax, t, i, float(bottom[i])))
            if (var, b, t) in steady:
                ax.plot([i + 0.31], [steady[var, b, t]], marker="<", color="black", ms=7, ls="none")
                tops[t] = max(tops[t], float(steady[var, b, t]) if var != "original" or not scaled.any() else 0.0)
        _ticks(ax, [("numpy", v) for v in part["variant"]], rotate=ncols > 1)
        ax.grid(True, axis="y", alpha=0.3)
    for (_, t), ax in panels.items():
        ax.set_ylim(0, tops.get(t, 0.0) * 1.25 or 1)
    any_cut = False
    for ax, t, i, total in totals:  # a bar cut at the top gets its total just under the edge, with an arrow
        cut = total > ax.get_ylim()[1]
        any_cut |= cut
        note(ax, ("↑ " if cut else "") + style.fmt_s(total), (i, min(total, ax.get_ylim()[1] * 0.9)), fontsize=8,
             **(dict(backgroundcolor="white") if cut else {}))
    handles = [Patch(color=style.PHASE_COLORS[p], label=style.PHASE_LABELS[p]) for p in phases]
    marked = any(key in steady for key in zip(table["variant"], table["batch_size"], table["threads"]))
    legend(fig, [handles[:3], handles[3:], [Line2D([], [], marker="<", color="black", ls="none", ms=7, label=(
        "whole steady epoch of the runs without phase timing (median)"))] if marked else []])
    return fig, dict(cut=any_cut, marked=marked)


def fig_accuracy(data: StudyData):
    need_epochs(data, "the accuracy per epoch is unknown")
    curves = accuracy_curves(data)
    curves = need(curves[curves["test_acc"].notna() | curves["train_acc"].notna()],
                  "epochs.csv holds no accuracy values of successful runs.")
    fig, panels, _ = _panel_grid(curves, 4.1, [0])
    series, clipped = series_of(curves), []
    for (b, _), ax in panels.items():
        part = curves[curves["batch_size"] == b]
        for fw, var in series:
            c = select(part, framework=fw, variant=var).sort_values("epoch")
            if len(c):
                ax.plot(c["epoch"], c["test_acc"], color=style.color(fw, var), lw=1.8, ms=3.5,
                        marker=style.MARKERS.get(fw, "^"), markevery=max(1, len(c) // 8))
                ax.plot(c["epoch"], c["train_acc"], color=style.color(fw, var), lw=1.3, ls="--")
        max_epoch, acc = int(part["epoch"].max()), part[["test_acc", "train_acc"]]
        lo, hi = (acc[part["epoch"] >= 2] if max_epoch > 3 else acc).min().min(), acc.max().max()
        lo, hi = (0.0 if math.isnan(lo) else lo), (1.0 if math.isnan(hi) else hi)
        pad = max(0.004, (hi - lo) * 0.08)
        lower = max(0.0, lo - pad)  # zoomed on the later epochs
        if acc.min().min() < lower:
            clipped.append(b)
        ax.set(ylim=(lower, min(1.0, hi + pad) if hi + pad > lower else lower + 0.01), xlim=(0.7, max_epoch + 0.3),
               xlabel="epoch", ylabel="accuracy (fraction correct)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"batch size {b:,}", fontsize=11)
        ax.grid(True, alpha=0.3)
    legend(fig, series_rows(series) + [[
        Line2D([], [], color="#444444", lw=1.8, label="test accuracy (after the epoch)"),
        Line2D([], [], color="#444444", lw=1.3, ls="--", label="training accuracy (running, during the epoch)")]])
    return fig, dict(clipped=", ".join(f"{b:,}" for b in clipped))


def fig_time_to_accuracy(data: StudyData, threshold: float, auto_threshold: bool):
    need_epochs(data, "the time to reach an accuracy is unknown")
    table = need(time_to_accuracy_table(data, threshold),
                 "epochs.csv holds no test accuracy of successful, uninstrumented runs.")
    series = series_of(table)[::-1]  # the first at the top
    fig, panels, _ = _panel_grid(table, 0.34 * len(series) + 0.9, extra_height=0.8, sharey=True,
                                 xlabel=f"training time until test acc. ≥ {threshold:.0%} (s)")
    best_acc = accuracy_curves(data).groupby(["framework", "variant", "batch_size"])["test_acc"].max().to_dict()
    cut = False
    for (b, t), ax in panels.items():
        cells = {(r.framework, r.variant): r for r in select(table, batch_size=b, threads=t).itertuples()}
        # each panel its own scale, set without 'original' (several times slower): its bar is cut at the edge
        times = [r.time_s for key, r in cells.items() if np.isfinite(r.time_s)]
        scaled = [r.time_s for key, r in cells.items() if np.isfinite(r.time_s) and key[1] != "original"] or times
        xmax = max(scaled, default=1.0)
        for y, r in ((y, cells[key]) for y, key in enumerate(series) if key in cells):
            c, reached = style.color(r.framework, r.variant), np.isfinite(r.time_s)
            length = min(r.time_s, xmax * 1.25) if reached else xmax * 0.03  # not reached: a hatched stub
            cut |= reached and length < r.time_s
            ax.barh(y, length, 0.7, lw=0.5, **(dict(color=c, edgecolor="white") if reached else
                                               dict(color="white", edgecolor=c, hatch="////")))
            runs = f", {r.n_reached}/{r.n_runs} runs" if r.n_reached < r.n_runs else ""
            best = best_acc.get((r.framework, r.variant, b), math.nan)
            cut_mark = "→ " if length < r.time_s else ""
            ax.annotate(f"{cut_mark}{style.fmt_s(r.time_s)} s (ep. {r.epoch}{runs})" if reached else
                        "not reached" + (f" (best {best:.3f})" if np.isfinite(best) else ""), (length, y),
                        xytext=(3, 0), textcoords="offset points", va="center", fontsize=7.5,
                        **({} if reached else dict(style="italic", color="#a00000")))
        if not cells:
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        _ticks(ax, series, horizontal=True)
        ax.set_xlim(0, xmax * 1.75)
        ax.set_title(_group_label(b, t, table["threads"].nunique() > 1, ", "), fontsize=10.5)
        ax.grid(True, axis="x", alpha=0.3)
    reached = int(np.isfinite(table["time_s"]).sum())
    return fig, dict(threshold=threshold, epochs=data.epochs_per_run, bars=len(table), cut=cut, reached=reached,
                     stubs=reached < len(table), auto=auto_threshold)


def fig_efficiency(data: StudyData):
    s = numpy_rows(data, data.stats["gemm_efficiency"].notna(),
                   "no successful NumPy run recorded a BLAS floor (gemm_floor_s).")
    groups, steps = list(dict.fromkeys(zip(s["batch_size"], s["threads"]))), series_of(s)  # groups: batch, threads
    shares = {((r.batch_size, r.threads), ("numpy", r.variant)): r.gemm_efficiency for r in s.itertuples()}
    bars = {key: (v, dict(color=style.color(*key[1]))) for key, v in shares.items()}
    fig = new_figure(4.8, width=max(style.FIG_WIDTH, 1.2 * len(groups) * max(1.0, len(steps) / 3)))  # labels apart
    ax = fig.subplots()
    for key, x in grouped_bars(ax, groups, steps, bars).items():
        note(ax, f"{shares[key]:.0%}", (x, shares[key]), fontsize=8)
    ax.axhline(1.0, color="black", ls="--", lw=1.1)
    ax.annotate("100 % = BLAS floor: all time in the matrix products", (1.0, 1.0), xycoords=("axes fraction", "data"),
                xytext=(-4, 4), textcoords="offset points", ha="right", va="bottom", fontsize=8.5)
    ax.set_xticks(range(len(groups)), labels=[_group_label(b, t, s["threads"].nunique() > 1) for b, t in groups],
                  fontsize=8.5)
    ax.set(xlim=(-0.6, len(groups) - 0.4), ylim=(0, max(1.0, s["gemm_efficiency"].max()) * 1.18),
           ylabel="BLAS floor / training wall time")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.0%}"))
    ax.grid(True, axis="y", alpha=0.3)
    handles = series_rows(steps, patches=True)[0]
    legend(fig, [handles[i:i + 5] for i in range(0, len(handles), 5)])
    return fig, {}


def draw(fig_dir: Path, name: str, make, data: StudyData) -> FigureOutcome:
    """One figure: ``make(data)`` returns it and its caption's facts. Missing data (NoData) or a failed drawing
    leaves the figure out (no file; ``left_out`` says why), so that one broken figure does not lose the report."""
    try:
        fig, facts = make(data)
        text = caption(name, **facts)
        save(fig, fig_dir, name, text)
        return FigureOutcome(FIGURE_TITLES[name], text)
    except NoData as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001
        reason = f"it could not be drawn ({type(exc).__name__}: {exc})."
    for ext in ("png", "svg"):  # a figure of an earlier build must not pass for this one's
        (fig_dir / f"{name}.{ext}").unlink(missing_ok=True)
    return FigureOutcome(FIGURE_TITLES[name], "", left_out=reason)


def draw_all(data: StudyData, fig_dir: Path, threshold: float, auto_threshold: bool) -> dict[str, FigureOutcome]:
    """Draw the figures of FIGURE_NAMES that have data."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    makers = (fig_winner_map, fig_cost_model, fig_time_vs_batch, fig_speedup,
              functools.partial(fig_speedup, steady=True), fig_ladder, fig_phases, fig_accuracy, functools.partial(
        fig_time_to_accuracy, threshold=threshold, auto_threshold=auto_threshold), fig_efficiency)
    outcomes = {name: draw(fig_dir, name, make, data) for name, make in zip(FIGURE_NAMES, makers)}
    for number, outcome in enumerate((o for o in outcomes.values() if not o.left_out), start=1):
        outcome.number = number
    return outcomes
