"""The seven figures of the report, drawn with matplotlib's object API (Agg, no pyplot state).

Every figure function returns a ``FigureOutcome``; when the data for a figure is missing it draws a
placeholder image that says what is missing, so that all seven files always exist.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from . import article, style
from harness.files import write_atomic
from .data import StudyData, runs_epochs, time_to_accuracy_table

FIGURE_NAMES = (
    "time_vs_batch", "speedup_vs_peer", "ladder", "phases", "accuracy", "time_to_accuracy", "efficiency",
)
FIGURE_TITLES = {
    "time_vs_batch": "Training time against batch size",
    "speedup_vs_peer": "Speed-up against the fastest peer variant",
    "ladder": "The NumPy optimization ladder, measured and as reported in the article",
    "phases": "Where a NumPy epoch spends its time",
    "accuracy": "Accuracy per epoch (parity of the implementations)",
    "time_to_accuracy": "Training time needed to reach a test accuracy",
    "efficiency": "How close NumPy gets to the BLAS floor",
}


@dataclass
class FigureOutcome:
    name: str
    title: str
    caption: str
    placeholder: str | None = None  # why only a placeholder was drawn


# -- helpers -------------------------------------------------------------------------------------
def _fmt_g(value, _pos=None) -> str:
    return f"{value:g}"


def _fmt_x(value, _pos=None) -> str:
    return f"{value:g}×"


def fmt_s(x: float) -> str:
    """Seconds with sensible precision: 123 s, 47.3 s, 7.31 s, 0.523 s."""
    if x is None or not np.isfinite(x):
        return "–"
    ax = abs(x)
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _new_figure(height: float, width: float = style.FIG_WIDTH) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.06, w_pad=0.06)
    return fig


def _save(fig: Figure, out_dir: Path, name: str, caption: str | None) -> None:
    """Freeze the constrained layout, hang legend and caption below the axes, save PNG and SVG.

    The legend (set by ``_legend_below``) and the caption are placed in figure coordinates under the
    lowest axes decoration after the layout engine has run and been switched off, so that
    ``bbox_inches="tight"`` grows the image to include them without moving anything.
    """
    legend_specs = getattr(fig, "_report_legends", [])
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    fig.draw(renderer)  # runs the layout engine
    fig.set_layout_engine("none")
    to_fig = fig.transFigure.inverted()
    visible = [ax for ax in fig.axes if ax.get_visible()]
    bottom = min((ax.get_tightbbox(renderer).transformed(to_fig).y0 for ax in visible), default=0.0)
    gap = 0.12 / fig.get_figheight()
    for i, (handles, ncol) in enumerate(legend_specs):
        legend = fig.legend(handles=handles, loc="upper center",
                            bbox_to_anchor=(0.5, bottom - (gap if i == 0 else gap / 4)),
                            bbox_transform=fig.transFigure, ncol=ncol, frameon=False, fontsize=9,
                            columnspacing=1.6, handlelength=2.4, borderaxespad=0.2)
        bottom = legend.get_window_extent(renderer).transformed(to_fig).y0
    if caption:
        wrapped = textwrap.fill(caption, width=int(16 * fig.get_figwidth()))
        fig.text(0.01, bottom - gap, wrapped, ha="left", va="top", fontsize=8.5, color="#333333")
    for ext in ("png", "svg"):
        write_atomic(out_dir / f"{name}.{ext}", lambda tmp, ext=ext: fig.savefig(
            tmp, format=ext, dpi=style.DPI, bbox_inches="tight", pad_inches=0.15, facecolor="white",
            metadata={"Date": None} if ext == "svg" else None))


def placeholder(out_dir: Path, name: str, reason: str) -> FigureOutcome:
    title = FIGURE_TITLES.get(name, name)
    fig = Figure(figsize=(style.FIG_WIDTH, 3.4))
    ax = fig.add_axes((0.02, 0.04, 0.96, 0.92))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor("#999999")
        spine.set_linestyle("--")
    ax.text(0.5, 0.72, title, ha="center", va="center", fontsize=15, weight="bold", transform=ax.transAxes)
    ax.text(0.5, 0.50, "No data for this figure", ha="center", va="center", fontsize=13,
            color="#a00000", transform=ax.transAxes)
    ax.text(0.5, 0.32, textwrap.fill(reason, 95), ha="center", va="top", fontsize=10.5,
            color="#333333", transform=ax.transAxes)
    _save(fig, out_dir, name, None)
    return FigureOutcome(name, title, f"No figure: {reason}", placeholder=reason)


def _series_handles(series) -> list[Line2D]:
    return [Line2D([], [], color=style.color(f, v), marker=style.marker(f), lw=2, ms=6,
                   label=style.label(f, v)) for f, v in series]


def _batch_axis(ax, batch_sizes, label=True) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(list(batch_sizes), labels=[f"{b:,}" for b in batch_sizes])
    lo, hi = min(batch_sizes), max(batch_sizes)
    ax.set_xlim(lo / 1.8, hi * 1.8)
    if label:
        ax.set_xlabel("batch size (samples per mini-batch" + (", log scale)" if len(batch_sizes) > 1 else ")"))


def _maybe_log_y(ax, values, ratio=8.0, formatter=_fmt_g) -> bool:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=float)
    if len(v) and v.max() / v.min() > ratio:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(formatter))
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
        return True
    return False


def _group_label(batch_size: int, threads: int, several_threads: bool) -> str:
    text = f"batch {batch_size:,}"
    if several_threads:
        text += f"\n{style.threads_label(threads)}"
    return text


def _legend_below(fig: Figure, handles, ncol: int | None = None) -> None:
    """One legend under the axes, filled row by row (matplotlib fills columns first)."""
    if not handles:
        return
    if handles and isinstance(handles[0], list):  # rows of handles given explicitly
        rows = [r for r in handles if r]
    else:
        ncol = ncol or min(4, len(handles))
        rows = [handles[i:i + ncol] for i in range(0, len(handles), ncol)]
    ncol = max(len(r) for r in rows)
    blank = Line2D([], [], color="none", label=" ")
    grid = [r + [blank] * (ncol - len(r)) for r in rows]
    ordered = [grid[r][c] for c in range(ncol) for r in range(len(grid))]  # column-major for matplotlib
    if not hasattr(fig, "_report_legends"):
        fig._report_legends = []
    fig._report_legends.append((ordered, ncol))  # drawn by _save, under the axes (several: stacked)


def _series_rows(series, extra=None) -> list[list]:
    """Legend rows: one row per framework, then the extra handles."""
    rows = []
    for fw in sorted({f for f, _ in series}, key=style.framework_rank):
        rows.append(_series_handles([s for s in series if s[0] == fw]))
    if extra:
        rows.append(list(extra))
    return rows


def _panel_grid(fig_height_per_row: float, batch_sizes, threads, extra_height: float = 1.0, sharey=False,
                sharex=False, max_cols: int = 3):
    """Panels keyed by (batch_size, threads): the batch sizes of one thread setting side by side (wrapping
    after ``max_cols``), the thread settings below each other (most threads first)."""
    batch_sizes, threads = list(batch_sizes), list(threads)
    ncols = min(len(batch_sizes), max_cols)
    rows_per_threads = math.ceil(len(batch_sizes) / ncols)
    nrows = rows_per_threads * len(threads)
    keys, slots = [], []
    for ti, t in enumerate(threads):
        for bi, b in enumerate(batch_sizes):
            keys.append((b, t))
            slots.append((ti * rows_per_threads + bi // ncols) * ncols + bi % ncols)
    fig = _new_figure(fig_height_per_row * nrows + extra_height)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharey=sharey, sharex=sharex)).ravel()
    panels = {key: axes[slot] for key, slot in zip(keys, slots)}
    for i, ax in enumerate(axes):
        if i not in slots:
            ax.set_visible(False)
    return fig, panels, ncols


def _label_panels(panels, ylabel: str | None = None, xlabel: str | None = None) -> None:
    """y label on the first column; x label (and x tick labels) on each panel with no visible panel below."""
    visible = [ax for ax in panels.values() if ax.get_visible()]
    for ax in visible:
        spec = ax.get_subplotspec()
        if ylabel and spec.is_first_col():
            ax.set_ylabel(ylabel)
        row, col = spec.rowspan.start, spec.colspan.start
        below = [o for o in visible if o.get_subplotspec().colspan.start == col
                 and o.get_subplotspec().rowspan.start > row]
        if not below:
            ax.xaxis.set_tick_params(which="both", labelbottom=True)
            if xlabel:
                ax.set_xlabel(xlabel)


def _article_scale(data: StudyData) -> tuple[float, str]:
    """Factor that turns the article's 35-epoch, 60,000-image times into this study's amount of work."""
    epochs = data.epochs_per_run or article.ARTICLE_EPOCHS
    train = data.train_size or article.ARTICLE_TRAIN_SIZE
    scale = epochs / article.ARTICLE_EPOCHS * train / article.ARTICLE_TRAIN_SIZE
    parts = []
    if epochs != article.ARTICLE_EPOCHS:
        parts.append(f"{epochs} instead of 35 epochs")
    if train != article.ARTICLE_TRAIN_SIZE:
        parts.append(f"{train:,} instead of 60,000 training images")
    if parts:
        note = (f"The article's times (35 epochs, 60,000 images) are scaled by {scale:.3g} to this study's "
                f"work ({' and '.join(parts)}), assuming time grows linearly with the images processed.")
    else:
        note = "The article's times are for the same 35 epochs on 60,000 images, unscaled."
    return scale, note


# -- 1. time against batch size ------------------------------------------------------------------
def fig_time_vs_batch(data: StudyData, out_dir: Path) -> FigureOutcome:
    name = "time_vs_batch"
    stats = data.stats[data.stats["n_ok"] > 0]
    if stats.empty:
        return placeholder(out_dir, name, "no run finished with status ok, so there is no time to draw.")
    batch_sizes = sorted(stats["batch_size"].unique())
    threads = style.order_threads(stats["threads"].unique())
    ls = style.thread_styles(threads)
    fills = {t: ("full" if i == 0 else "none") for i, t in enumerate(threads)}  # most threads: filled markers
    series = style.sort_series(set(zip(stats["framework"], stats["variant"])))
    fig = _new_figure(4.9)
    axes = fig.subplots(1, 2)
    n = len(series)
    for ax, metric, ylabel, title in (
        (axes[0], "wall", "training wall time, all epochs (s)", "Wall-clock time"),
        (axes[1], "cpu", "process CPU time, all threads (s)", "CPU time (sum over all threads)"),
    ):
        values = []
        m = n * len(threads)
        for k, (fw, var) in enumerate(series):
            for ti, t in enumerate(threads):
                s = stats[(stats["framework"] == fw) & (stats["variant"] == var) & (stats["threads"] == t)]
                s = s[s[f"{metric}_median_s"].notna()].sort_values("batch_size")
                if s.empty:
                    continue
                j = k * len(threads) + ti
                dodge = (1.3 ** (1 / max(m, 1))) ** (j - (m - 1) / 2)  # spread over +-15 % of the batch size
                x = s["batch_size"].to_numpy(float) * dodge
                y = s[f"{metric}_median_s"].to_numpy(float)
                lo = s[f"{metric}_q25_s"].to_numpy(float)
                hi = s[f"{metric}_q75_s"].to_numpy(float)
                values += list(y) + list(lo) + list(hi)
                c = style.color(fw, var)
                ax.errorbar(x, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)], color=c,
                            ls=ls[t], marker=style.marker(fw), ms=5.5, lw=1.7, capsize=2.5, elinewidth=1,
                            fillstyle=fills[t], mfc=c if fills[t] == "full" else "white", mew=1.3)
                if len(s) >= 2:
                    ax.fill_between(x, lo, hi, color=c, alpha=0.13, lw=0)
        _batch_axis(ax, batch_sizes)
        if not _maybe_log_y(ax, values):
            ax.set_ylim(bottom=0)
        if not values:
            ax.text(0.5, 0.5, f"no {metric.upper()} times recorded", ha="center", transform=ax.transAxes)
        ax.set_ylabel(ylabel + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.set_title(title, fontsize=11)
        ax.grid(True, which="major", alpha=0.3)
    _legend_below(fig, _series_rows(series))
    if len(threads) > 1:
        _legend_below(fig, [[Line2D([], [], color="#444444", ls=ls[t], lw=1.7, marker="o", ms=5.5, mew=1.3,
                                    mfc="#444444" if fills[t] == "full" else "white", label=style.threads_label(t))
                             for t in threads]])
    caption = ("Median training time over the repeats of each variant (markers; error bars and bands: "
               "interquartile range, IQR); left: wall-clock time, right: CPU time summed over all threads. "
               "Markers are shifted slightly sideways so that they do not hide each other.")
    if len(threads) > 1:
        caption += " Line styles (and filled/hollow markers): " + ", ".join(
            f"{ {'-': 'solid', '--': 'dashed', ':': 'dotted', '-.': 'dash-dotted'}[ls[t]]} = {style.threads_label(t)}"
            for t in threads) + "."
    if len(batch_sizes) == 1:
        caption += f" Only one batch size ({batch_sizes[0]:,}) was run, so there are no lines to follow."
    _save(fig, out_dir, name, caption)
    return FigureOutcome(name, FIGURE_TITLES[name], caption)


# -- 2. speed-up against the fastest peer variant ------------------------------------------------
def fig_speedup(data: StudyData, out_dir: Path) -> FigureOutcome:
    name = "speedup_vs_peer"
    stats = data.stats
    s = stats[stats["speedup_vs_best_peer"].notna() & (stats["n_ok"] > 0)]
    if s.empty:
        peers = set(data.runs["framework"]) - {"numpy"}
        return placeholder(out_dir, name, "every peer run failed, so there is nothing to compare against." if peers
                           else "there are no peer (Keras/TF, Keras/JAX, ...) runs, so there is nothing to compare against.")
    threads = style.order_threads(s["threads"].unique())
    batch_sizes = sorted(s["batch_size"].unique())
    series = style.sort_series(set(zip(s["framework"], s["variant"])))
    lo_all, hi_all = s["speedup_vs_best_peer_lo"].fillna(s["speedup_vs_best_peer"]), s["speedup_vs_best_peer_hi"]
    values = np.concatenate([s["speedup_vs_best_peer"], lo_all, hi_all.dropna()]).astype(float)
    top, low = np.nanmax(values), min(np.nanmin(values), 1.0)
    many = len(series) * len(batch_sizes) > 12
    # One row of panels per thread setting, the batch sizes as groups of bars.
    fig = _new_figure(4.3 * len(threads) + 0.6, width=max(style.FIG_WIDTH, 1.7 * len(batch_sizes)))
    axes = np.atleast_1d(fig.subplots(len(threads), 1, squeeze=False, sharey=True)).ravel()
    width = 0.82 / max(1, len(series))
    log = False
    for ax, t in zip(axes, threads):
        log = _maybe_log_y(ax, values, ratio=6.0, formatter=_fmt_x)
        labels = []
        for gi, b in enumerate(batch_sizes):
            group = s[(s["batch_size"] == b) & (s["threads"] == t)]
            if group.empty:
                labels.append(f"batch {b:,}\n(no data)")
                continue
            best = group["best_peer"].iloc[0]
            ref = stats[(stats["batch_size"] == b) & (stats["threads"] == t)
                        & (stats["framework"] + "/" + stats["variant"] == best)]
            labels.append(f"batch {b:,}\nfastest peer:\n{style.label_of(best)}, {fmt_s(ref['wall_median_s'].iloc[0])} s")
            for si, (fw, var) in enumerate(series):
                row = group[(group["framework"] == fw) & (group["variant"] == var)]
                if row.empty:
                    continue
                r = row.iloc[0]
                v, lo, hi = (float(r[f"speedup_vs_best_peer{k}"]) for k in ("", "_lo", "_hi"))
                x = gi + (si - (len(series) - 1) / 2) * width
                # Bars start at 1×: up = faster than the fastest peer, down = slower.
                ax.bar(x, v - 1.0, width * 0.9, bottom=1.0, color=style.color(fw, var), edgecolor="white", lw=0.5)
                has_interval = np.isfinite(lo) and np.isfinite(hi) and r["speedup_vs_best_peer_verdict"] != "reference"
                if has_interval:
                    ax.errorbar(x, v, yerr=[[max(v - lo, 0)], [max(hi - v, 0)]], color="black", capsize=2, lw=0.9)
                up = v >= 1.0
                reference = r["speedup_vs_best_peer_verdict"] == "reference"
                text = f"{v:.2f}×" + ("" if reference else f" [{lo:.2f}, {hi:.2f}]" if has_interval and many else
                                      f"\n[{lo:.2f}, {hi:.2f}]" if has_interval else " (1 run)")
                ax.annotate(text, (x, max(v, hi) if up and has_interval else min(v, lo) if has_interval else v),
                            xytext=(0, 2 if up else -2), textcoords="offset points", ha="center",
                            va="bottom" if up else "top", fontsize=7 if many else 7.5, rotation=90 if many else 0)
        ax.axhline(1.0, color="black", ls="--", lw=1.1, zorder=0.5)
        ax.set_xticks(range(len(batch_sizes)), labels=labels, fontsize=8.5)
        ax.set_xlim(-0.6, len(batch_sizes) - 0.4)
        if log:
            ax.set_ylim(low / 1.6, max(top, 1.0) * (2.4 if many else 1.6))
        else:
            ax.set_ylim(max(0.0, low - 0.3 * (max(top, 1.0) - low) - 0.05), max(top, 1.0) * (1.45 if many else 1.25))
        ax.set_ylabel("speed-up vs fastest peer" + (" (log scale)" if log else ""))
        if len(threads) > 1:
            ax.set_title(style.threads_label(t), fontsize=10.5)
        ax.grid(True, axis="y", alpha=0.3)
    rows = [[Patch(color=style.color(f, v), label=style.label(f, v)) for f, v in series if f == fw]
            for fw in sorted({f for f, _ in series}, key=style.framework_rank)]
    _legend_below(fig, rows)
    _legend_below(fig, [[Line2D([], [], color="black", ls="--", lw=1.1,
                                label="1× = as fast as the fastest peer variant"),
                         Line2D([], [], color="black", marker="_", ms=8, lw=0.9, label="95 % bootstrap interval")]])
    caption = ("Each bar starts at 1× (the fastest peer variant, of any framework other than NumPy, at the same "
               "batch size and thread setting): bars going up are that many times faster, bars going down slower. "
               "Ratios of median wall times, whole training; the black lines and the numbers in brackets are the "
               "95 % bootstrap intervals (none for cells with one run)"
               + ("; logarithmic axis, so that 2× faster and 2× slower are the same length." if log else "."))
    _save(fig, out_dir, name, caption)
    return FigureOutcome(name, FIGURE_TITLES[name], caption)


# -- 3. the optimization ladder ------------------------------------------------------------------
def fig_ladder(data: StudyData, out_dir: Path) -> FigureOutcome:
    name = "ladder"
    stats = data.stats
    s = stats[(stats["framework"] == "numpy") & (stats["n_ok"] > 0)]
    if s.empty:
        reason = ("there are no NumPy runs in this study." if "numpy" not in set(data.runs["framework"])
                  else "every NumPy run failed.")
        return placeholder(out_dir, name, reason)
    variants = [v for v in style.LADDER if v in set(s["variant"])] + sorted(
        set(s["variant"]) - set(style.LADDER))
    batch_sizes = sorted(s["batch_size"].unique())
    threads = style.order_threads(s["threads"].unique())
    hatches = style.thread_hatches(threads)
    scale, scale_note = _article_scale(data)
    ncols = min(len(batch_sizes), 3)
    nrows = math.ceil(len(batch_sizes) / ncols)
    fig = _new_figure(4.3 * nrows + 0.9)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharey=True)).ravel()
    # Bars of the thread settings share [-0.42, 0.18] around each step; the article's diamond sits right of them.
    width = 0.6 / len(threads)
    several = len(threads) > 1
    any_reported = any_derived = False
    top = 0.0
    for ax, b in zip(axes, batch_sizes):
        for ti, t in enumerate(threads):
            for xi, var in enumerate(variants):
                row = s[(s["batch_size"] == b) & (s["threads"] == t) & (s["variant"] == var)]
                if row.empty:
                    continue
                r = row.iloc[0]
                x = xi - 0.12 + (ti - (len(threads) - 1) / 2) * width
                y, lo, hi = r["wall_median_s"], r["wall_q25_s"], r["wall_q75_s"]
                ax.bar(x, y, width * 0.88, color=style.color("numpy", var), hatch=hatches[t],
                       edgecolor="white" if not hatches[t] else "#222222", lw=0.5)
                ax.errorbar(x, y, yerr=[[max(y - lo, 0)], [max(hi - y, 0)]], color="black", capsize=2.5, lw=1)
                ax.annotate(fmt_s(y), (x, hi), xytext=(0, 3), textcoords="offset points", ha="center",
                            va="bottom", fontsize=7.5, rotation=90 if several else 0)
                top = max(top, hi)
        has_article = False
        for xi, var in enumerate(variants):
            a = article.article_time(var, int(b))
            if a is None:
                continue
            has_article = True
            y = a.seconds * scale
            top = max(top, y)
            if a.derived:
                any_derived = True
                ax.plot([xi + 0.3], [y], marker="D", ms=7, mfc="white", mec="black", mew=1.5, ls="none")
            else:
                any_reported = True
                ax.plot([xi + 0.3], [y], marker="D", ms=7, color="black", ls="none")
        ax.set_xticks(range(len(variants)), labels=variants,
                      **({"rotation": 30, "ha": "right", "rotation_mode": "anchor"} if ncols > 1 else {}))
        for tick, var in zip(ax.get_xticklabels(), variants):
            tick.set_color(style.color("numpy", var))
        ax.set_xlim(-0.6, len(variants) - 0.4)
        title = f"batch size {b:,}"
        if not has_article:
            title += "\n(no article figures at this batch size)"
        ax.set_title(title, fontsize=10.5)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[len(batch_sizes):]:
        ax.set_visible(False)
    for ax in axes[:len(batch_sizes)]:
        ax.set_ylim(0, top * (1.22 if several else 1.12) if top > 0 else 1)
    _label_panels(dict(enumerate(axes[:len(batch_sizes)])), ylabel="training wall time, all epochs (s)")
    handles = [Patch(facecolor="#bbbbbb", label="measured: median wall time (bar), IQR (error bar)")]
    if any_reported:
        handles.append(Line2D([], [], marker="D", color="black", ls="none", ms=8, label="article, reported"))
    if any_derived:
        handles.append(Line2D([], [], marker="D", mfc="white", mec="black", mew=1.5, ls="none", ms=8,
                              label="article, derived (6.5 × step3)"))
    _legend_below(fig, [handles])
    if len(threads) > 1:
        _legend_below(fig, [[Patch(facecolor="#bbbbbb", hatch=hatches[t], edgecolor="#222222",
                                   label=style.threads_label(t)) for t in threads]])
    caption = ("Each NumPy step of the optimization ladder at each batch size: bars are this study's median "
               "wall times; diamonds are the times the blog series reported (filled) or that follow from "
               "its 'more than 6.5× faster' statement (hollow). " + scale_note)
    _save(fig, out_dir, name, caption)
    return FigureOutcome(name, FIGURE_TITLES[name], caption)


# -- 4. per-phase breakdown ----------------------------------------------------------------------
def phase_table(data: StudyData) -> pd.DataFrame:
    """Median seconds per epoch of each phase, per (variant, batch_size, threads), instrumented runs."""
    ep = runs_epochs(data, instrumented=True)
    cols = ["variant", "batch_size", "threads", *style.PHASES, "other", "epoch_wall", "n_epochs"]
    if ep is None:
        return pd.DataFrame(columns=cols)
    ep = ep[(ep["framework"] == "numpy") & ep[list(style.PHASE_COLUMNS)].notna().any(axis=1)]
    rows = []
    for (var, b, t), g in ep.groupby(["variant", "batch_size", "threads"]):
        row = {"variant": var, "batch_size": b, "threads": t}
        for p, c in zip(style.PHASES, style.PHASE_COLUMNS):
            row[p] = float(g[c].median()) if g[c].notna().any() else 0.0
        rest = g["wall_s"] - g[list(style.PHASE_COLUMNS)].fillna(0).sum(axis=1)
        row["other"] = max(float(rest.median()), 0.0) if rest.notna().any() else 0.0
        row["epoch_wall"] = float(g["wall_s"].median()) if g["wall_s"].notna().any() else math.nan
        row["n_epochs"] = len(g)
        rows.append(row)
    table = pd.DataFrame(rows, columns=cols)
    table["_o"] = [style.variant_rank("numpy", v) for v in table["variant"]]
    return table.sort_values(["batch_size", "threads", "_o"], key=style.sort_key).drop(
        columns="_o").reset_index(drop=True)


def fig_phases(data: StudyData, out_dir: Path) -> FigureOutcome:
    name = "phases"
    if data.epochs is None:
        return placeholder(out_dir, name, "epochs.csv is missing, so the per-phase times are unknown.")
    table = phase_table(data)
    if table.empty:
        return placeholder(out_dir, name, "there are no instrumented NumPy runs (runs with per-phase timing) "
                                          "in epochs.csv.")
    combos = list(table[["batch_size", "threads"]].drop_duplicates().itertuples(index=False))
    several_threads = table["threads"].nunique() > 1
    fig, panels, ncols = _panel_grid(4.0, sorted(table["batch_size"].unique()),
                                     style.order_threads(table["threads"].unique()), sharey="row")
    show_other = bool((table["other"] > 0).any())
    stats = data.stats
    any_marker = False
    tops: dict = {}
    for (pb, pt), ax in panels.items():
        combo = pd.Series({"batch_size": pb, "threads": pt})
        part = table[(table["batch_size"] == pb) & (table["threads"] == pt)]
        if part.empty:
            ax.text(0.5, 0.5, "no instrumented runs", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(_group_label(pb, pt, several_threads).replace("\n", ", "), fontsize=11)
            continue
        variants = list(part["variant"])
        bottom = np.zeros(len(part))
        for p in (*style.PHASES, "other"):
            if p == "other" and not show_other:
                continue
            vals = part[p].to_numpy(float)
            ax.bar(range(len(part)), vals, 0.62, bottom=bottom, color=style.PHASE_COLORS[p],
                   edgecolor="white", lw=0.5)
            bottom += vals
        top = float(bottom.max()) if len(bottom) else 0.0
        for i, var in enumerate(variants):
            ax.annotate(fmt_s(bottom[i]), (i, bottom[i]), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8)
            plain = stats[(stats["framework"] == "numpy") & (stats["variant"] == var)
                          & (stats["batch_size"] == combo.batch_size) & (stats["threads"] == combo.threads)]
            steady = plain["steady_epoch_median_s"].dropna()
            if len(steady):
                any_marker = True
                ax.plot([i + 0.31], [float(steady.iloc[0])], marker="<", color="black", ms=7, ls="none")
                top = max(top, float(steady.iloc[0]))
        ax.set_xticks(range(len(variants)), labels=variants,
                      **({"rotation": 30, "ha": "right", "rotation_mode": "anchor"} if ncols > 1 else {}))
        for tick, var in zip(ax.get_xticklabels(), variants):
            tick.set_color(style.color("numpy", var))
        ax.set_xlim(-0.6, len(variants) - 0.4)
        tops[pt] = max(tops.get(pt, 0.0), top)
        ax.set_title(_group_label(pb, pt, several_threads).replace("\n", ", "), fontsize=11)
        ax.grid(True, axis="y", alpha=0.3)
    for (pb, pt), ax in panels.items():
        ax.set_ylim(0, tops.get(pt, 0.0) * 1.12 or 1)
    _label_panels(panels, ylabel="seconds per epoch")
    names = (*style.PHASES, *(("other",) if show_other else ()))
    handles = [Patch(color=style.PHASE_COLORS[p], label=style.PHASE_LABELS[p]) for p in names]
    _legend_below(fig, [handles[:3], handles[3:]])
    if any_marker:
        _legend_below(fig, [[Line2D([], [], marker="<", color="black", ls="none", ms=7,
                                    label="whole steady epoch of the runs without phase timing (median)")]])
    caption = ("Seconds per epoch spent in each phase of a mini-batch (summed over the epoch's batches, median "
               "over the epochs of the instrumented NumPy runs), stacked; the number on top is the total. "
               "'other' is the epoch's wall time not covered by the timed phases. Timing each phase adds a "
               "little overhead, which the black triangles (uninstrumented runs) let you judge.")
    _save(fig, out_dir, name, caption)
    return FigureOutcome(name, FIGURE_TITLES[name], caption)


# -- 5. accuracy per epoch -----------------------------------------------------------------------
def accuracy_curves(data: StudyData) -> pd.DataFrame:
    """Median over repeats (and thread settings) of test/train accuracy per epoch."""
    ep = runs_epochs(data, instrumented=False)
    if ep is None or ep.empty or ep["test_acc"].notna().sum() == 0:
        ep = runs_epochs(data, instrumented=None)
    if ep is None or ep.empty:
        return pd.DataFrame(columns=["framework", "variant", "batch_size", "epoch", "test_acc", "train_acc"])
    return (ep.groupby(["framework", "variant", "batch_size", "epoch"])[["test_acc", "train_acc"]]
            .median().reset_index())


def fig_accuracy(data: StudyData, out_dir: Path) -> FigureOutcome:
    name = "accuracy"
    if data.epochs is None:
        return placeholder(out_dir, name, "epochs.csv is missing, so the accuracy per epoch is unknown.")
    curves = accuracy_curves(data)
    curves = curves[curves["test_acc"].notna() | curves["train_acc"].notna()]
    if curves.empty:
        return placeholder(out_dir, name, "epochs.csv holds no accuracy values of successful runs.")
    batch_sizes = sorted(curves["batch_size"].unique())
    ncols = min(len(batch_sizes), 3)
    nrows = math.ceil(len(batch_sizes) / ncols)
    fig = _new_figure(4.1 * nrows + 1.0)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    series = style.sort_series(set(zip(curves["framework"], curves["variant"])))
    clipped = []
    for ax, b in zip(axes, batch_sizes):
        part = curves[curves["batch_size"] == b]
        for fw, var in series:
            c = part[(part["framework"] == fw) & (part["variant"] == var)].sort_values("epoch")
            if c.empty:
                continue
            col = style.color(fw, var)
            ax.plot(c["epoch"], c["test_acc"], color=col, lw=1.8, marker=style.marker(fw), ms=3.5,
                    markevery=max(1, len(c) // 8))
            ax.plot(c["epoch"], c["train_acc"], color=col, lw=1.3, ls="--")
        vals = part[["test_acc", "train_acc"]].to_numpy(float).ravel()
        vals = vals[np.isfinite(vals)]
        max_epoch = int(part["epoch"].max())
        later = part[part["epoch"] >= 2] if max_epoch > 3 else part
        lv = later[["test_acc", "train_acc"]].to_numpy(float).ravel()
        lv = lv[np.isfinite(lv)]
        lo = float(lv.min()) if len(lv) else 0.0
        hi = float(vals.max()) if len(vals) else 1.0
        pad = max(0.004, (hi - lo) * 0.08)
        lower = max(0.0, lo - pad)
        if len(vals) and vals.min() < lower:
            clipped.append(b)
        ax.set_ylim(lower, min(1.0, hi + pad) if hi + pad > lower else lower + 0.01)
        ax.set_xlim(0.7, max_epoch + 0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"batch size {b:,}", fontsize=11)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (fraction correct)")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(batch_sizes):]:
        ax.set_visible(False)
    _legend_below(fig, _series_rows(series))
    _legend_below(fig, [[
        Line2D([], [], color="#444444", lw=1.8, label="test accuracy (after the epoch)"),
        Line2D([], [], color="#444444", lw=1.3, ls="--", label="training accuracy (running, during the epoch)"),
    ]])
    caption = ("Median over repeats (and thread settings) of the test accuracy after each epoch (solid) and "
               "of the running training accuracy over the batches of the epoch (dashed). Curves that lie on "
               "top of each other mean that the implementations learn the same thing; only then is comparing "
               "their times fair.")
    if clipped:
        caption += (" The y axis is zoomed on the later epochs; values of the first epoch below it are cut off "
                    f"(batch size {', '.join(f'{b:,}' for b in clipped)}).")
    _save(fig, out_dir, name, caption)
    return FigureOutcome(name, FIGURE_TITLES[name], caption)


# -- 6. time to accuracy -------------------------------------------------------------------------
def fig_time_to_accuracy(data: StudyData, out_dir: Path, threshold: float,
                         auto_threshold: bool = True) -> FigureOutcome:
    name = "time_to_accuracy"
    if data.epochs is None:
        return placeholder(out_dir, name, "epochs.csv is missing, so the time to reach an accuracy is unknown.")
    table = time_to_accuracy_table(data, threshold)
    if table.empty:
        return placeholder(out_dir, name, "epochs.csv holds no test accuracy of successful, uninstrumented runs.")
    several_threads = table["threads"].nunique() > 1
    series = style.sort_series(set(zip(table["framework"], table["variant"])))
    ypos = {key: len(series) - 1 - i for i, key in enumerate(series)}  # first series at the top
    fig, panels, ncols = _panel_grid(0.34 * len(series) + 0.9, sorted(table["batch_size"].unique()),
                                     style.order_threads(table["threads"].unique()), extra_height=0.8,
                                     sharex=True, sharey=True)
    finite = table["time_s"][np.isfinite(table["time_s"])]
    xmax = float(finite.max()) if len(finite) else 1.0
    curves = accuracy_curves(data)
    best_acc = curves.groupby(["framework", "variant", "batch_size"])["test_acc"].max() if len(curves) else {}
    for i, ((b, t), ax) in enumerate(panels.items()):
        part = table[(table["batch_size"] == b) & (table["threads"] == t)]
        for r in part.itertuples(index=False):
            y = ypos[(r.framework, r.variant)]
            c = style.color(r.framework, r.variant)
            if np.isfinite(r.time_s):
                ax.barh(y, r.time_s, 0.7, color=c)
                extra = f" (ep. {r.epoch}" + (f", {r.n_reached}/{r.n_runs} runs)" if r.n_reached < r.n_runs else ")")
                ax.annotate(f"{fmt_s(r.time_s)} s{extra}", (r.time_s, y), xytext=(3, 0),
                            textcoords="offset points", va="center", fontsize=7.5)
            else:
                best = best_acc.get((r.framework, r.variant, b), math.nan) if len(curves) else math.nan
                ax.barh(y, xmax * 0.03, 0.7, color="white", edgecolor=c, hatch="////")
                ax.annotate("not reached" + (f" (best {best:.3f})" if np.isfinite(best) else ""),
                            (xmax * 0.03, y), xytext=(3, 0), textcoords="offset points", va="center",
                            fontsize=7.5, style="italic", color="#a00000")
        if part.empty:
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([ypos[k] for k in series], labels=[style.label(f, v) for f, v in series])
        for tick, (f, v) in zip(ax.get_yticklabels(), series):
            tick.set_color(style.color(f, v))
        ax.set_ylim(-0.6, len(series) - 0.4)
        ax.set_title(_group_label(b, t, several_threads).replace("\n", ", "), fontsize=10.5)
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_xlim(0, xmax * 1.55)
    _label_panels(panels, xlabel=f"training time until test acc. ≥ {threshold:.0%} (s)")
    caption = (f"Cumulative training wall time (evaluation excluded) until the test accuracy measured after an "
               f"epoch first reaches {threshold:.0%}, with the epoch in brackets; median over repeats, a run that "
               "never reaches it counting as infinitely slow. Hatched stubs: not reached within the study's "
               f"epochs ({data.epochs_per_run or '?'}), with the best median test accuracy reached. "
               f"{int(np.isfinite(table['time_s']).sum())} of {len(table)} bars reach the threshold"
               + ("; it was set by hand." if not auto_threshold else
                  "; it is the highest of 95 %, 94 %, 93 %, 92 %, 90 %, 85 %, 80 %, 70 %, 50 % that at least "
                  "two thirds of the bars reach (or 50 % if none does)."))
    _save(fig, out_dir, name, caption)
    return FigureOutcome(name, FIGURE_TITLES[name], caption)


# -- 7. efficiency against the BLAS floor --------------------------------------------------------
def fig_efficiency(data: StudyData, out_dir: Path) -> FigureOutcome:
    name = "efficiency"
    s = data.stats[(data.stats["framework"] == "numpy") & data.stats["gemm_efficiency"].notna()]
    if s.empty:
        reason = ("there are no NumPy runs in this study." if "numpy" not in set(data.runs["framework"])
                  else "no successful NumPy run recorded a BLAS floor (gemm_floor_s).")
        return placeholder(out_dir, name, reason)
    groups = list(s[["batch_size", "threads"]].drop_duplicates().sort_values(
        ["batch_size", "threads"], key=style.sort_key).itertuples(index=False))
    several_threads = s["threads"].nunique() > 1
    variants = [v for v in style.LADDER if v in set(s["variant"])] + sorted(set(s["variant"]) - set(style.LADDER))
    fig = _new_figure(4.8, width=max(style.FIG_WIDTH, 0.9 * len(groups) * max(1.0, len(variants) / 3)))
    ax = fig.subplots()
    width = 0.82 / len(variants)
    top = 1.0
    for gi, g in enumerate(groups):
        for vi, var in enumerate(variants):
            row = s[(s["batch_size"] == g.batch_size) & (s["threads"] == g.threads) & (s["variant"] == var)]
            if row.empty:
                continue
            v = float(row["gemm_efficiency"].iloc[0])
            x = gi + (vi - (len(variants) - 1) / 2) * width
            ax.bar(x, v, width * 0.9, color=style.color("numpy", var), edgecolor="white", lw=0.5)
            ax.annotate(f"{v:.0%}", (x, v), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=8)
            top = max(top, v)
    ax.axhline(1.0, color="black", ls="--", lw=1.1)
    ax.annotate("100 % = BLAS floor: all time in the matrix products", (1.0, 1.0),
                xycoords=("axes fraction", "data"), xytext=(-4, 4), textcoords="offset points",
                ha="right", va="bottom", fontsize=8.5)
    ax.set_xticks(range(len(groups)), labels=[_group_label(g.batch_size, g.threads, several_threads) for g in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylim(0, top * 1.18)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.0%}"))
    ax.set_ylabel("BLAS floor / training wall time")
    ax.grid(True, axis="y", alpha=0.3)
    _legend_below(fig, [Patch(color=style.color("numpy", v), label=style.label("numpy", v)) for v in variants],
                  ncol=min(5, len(variants)))
    caption = ("Share of each NumPy variant's median training wall time that the BLAS library alone needs "
               "for the same matrix products (the 'GEMM floor', timed separately at the same batch size). "
               "The closer to 100 %, the less time goes to everything else: element-wise work, copies, "
               "and the Python loop.")
    _save(fig, out_dir, name, caption)
    return FigureOutcome(name, FIGURE_TITLES[name], caption)


def draw_all(data: StudyData, fig_dir: Path, threshold: float, auto_threshold: bool = True) -> dict[str, FigureOutcome]:
    """Draw the seven figures; a figure whose drawing fails becomes a placeholder naming the error."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    makers = {
        "time_vs_batch": lambda: fig_time_vs_batch(data, fig_dir),
        "speedup_vs_peer": lambda: fig_speedup(data, fig_dir),
        "ladder": lambda: fig_ladder(data, fig_dir),
        "phases": lambda: fig_phases(data, fig_dir),
        "accuracy": lambda: fig_accuracy(data, fig_dir),
        "time_to_accuracy": lambda: fig_time_to_accuracy(data, fig_dir, threshold, auto_threshold),
        "efficiency": lambda: fig_efficiency(data, fig_dir),
    }
    outcomes = {}
    for name, make in makers.items():
        try:
            outcomes[name] = make()
        except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the whole report
            outcomes[name] = placeholder(fig_dir, name, f"the figure could not be drawn "
                                                        f"({type(exc).__name__}: {exc}).")
            outcomes[name].placeholder = "could not be drawn: " + outcomes[name].placeholder
    return outcomes
