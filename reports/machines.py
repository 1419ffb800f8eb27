"""Machines compared (runs.csv names several: ``--placement every-machine``, or folders merged by reports.folder.merge):
`optimized` against the fastest peer on each machine (table, machines.png), each machine described.
A thread count equal to a machine's cores reads "all cores", so that machines with different core counts line up."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from . import style
from .data import StudyData, select
from .document import markdown_table
from .figures import batch_axis, caption, legend, new_figure, save
from .folder.schema import speedup_column
from .stats.summary import summarize

FIGURE = "machines"
TITLE = "`optimized` against the fastest peer framework, machine by machine"
VERSIONS = (("python", "Python"), ("numpy", "NumPy"), ("tensorflow", "TensorFlow"), ("keras", "Keras"), ("jax", "JAX"))
SPEEDUP = speedup_column("best_peer", steady=False)
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve")


def machines(data: StudyData) -> list[str]:
    return sorted(m for m in data.runs["machine"].unique() if m)


def comparison(data: StudyData) -> pd.DataFrame:
    """Per machine, batch size and threads: `optimized`'s median wall time, the fastest peer's and the speed-ups
    (whole training, steady epoch), from a summary of each machine's runs (summary.csv pools the machines)."""
    rows = []
    for machine in machines(data):
        cores = data.machines.get(machine, {}).get("cores")
        stats = summarize(data.runs[data.runs["machine"] == machine], n_resamples=200)  # medians only: few resamples
        mine = select(stats[stats["n_ok"] > 0], framework="numpy", variant="optimized")
        for r in mine[mine["wall_median_s"].notna()].to_dict("records"):
            peer = r["best_peer"] if isinstance(r["best_peer"], str) else ""
            rows.append(dict(machine=machine, batch_size=r["batch_size"], threads=r["threads"],
                             setting="all cores" if r["threads"] == cores else style.threads_label(r["threads"]),
                             optimized_s=r["wall_median_s"], peer=peer, peer_s=r["wall_median_s"] * r[SPEEDUP],
                             speedup=r[SPEEDUP], steady_speedup=r[f"steady_{SPEEDUP}"]))
    table = pd.DataFrame(rows, columns=["machine", "batch_size", "threads", "setting", "optimized_s", "peer", "peer_s",
                                        "speedup", "steady_speedup"])
    order = ["all cores"] + [style.threads_label(t) for t in style.order_threads(table["threads"])]
    return table.assign(_order=table["setting"].map(order.index)).sort_values(
        ["batch_size", "_order", "machine"]).drop(columns="_order").reset_index(drop=True)


def draw(data: StudyData, table: pd.DataFrame, fig_dir: Path) -> None:
    """machines.png/svg: speed-up against batch size, one line per machine, a panel per thread setting."""
    table = table[table["speedup"].notna()]
    settings = list(dict.fromkeys(table["setting"])) or ["no data"]
    fig = new_figure(3.6 * len(settings) + 0.8)
    names = machines(data)
    colours = {m: f"C{i % 10}" for i, m in enumerate(names)}  # matplotlib's default cycle
    for ax, setting in zip(np.ravel(fig.subplots(len(settings), 1, squeeze=False, sharey=True)), settings):
        for machine in names:
            line = table[(table["setting"] == setting) & (table["machine"] == machine)].sort_values("batch_size")
            ax.plot(line["batch_size"], line["speedup"], marker="o", lw=2, color=colours[machine])
            for r in line.itertuples():
                ax.annotate(f"{r.speedup:.2f}× vs {r.peer}", (r.batch_size, r.speedup), xytext=(5, 4),
                            textcoords="offset points", fontsize=7.5, color=colours[machine])
        ax.axhline(1.0, color="black", ls="--", lw=1.1, zorder=0.5)
        batch_axis(ax, sorted(table["batch_size"].unique()) or data.batch_sizes)
        ax.set_ylabel("optimized: speed-up vs fastest peer")
        ax.set_title(setting, fontsize=10.5)
        ax.grid(True, alpha=0.3)
        if table.empty:
            ax.text(0.5, 0.5, "no machine has both `optimized` and a peer framework's runs", ha="center",
                    transform=ax.transAxes)
    handles = [Line2D([], [], color=colours[m], marker="o", lw=2, label=m) for m in names] + [
        Line2D([], [], color="black", ls="--", lw=1.1, label="1× = as fast as the fastest peer")]
    legend(fig, [handles[i:i + 4] for i in range(0, len(handles), 4)])
    save(fig, fig_dir, FIGURE, caption("machines"))


def described(data: StudyData) -> str:
    """Each machine's CPU, cores, SIMD flags, BLAS, versions and code version as a table."""
    body = []
    for host in machines(data):
        m = data.machines.get(host, {})
        commit = str(m.get("git_commit") or "?")
        flags = str(m.get("cpu_flags") or "").split()
        blas = [f"{b.get('internal_api', '?')} {b.get('version', '')}, kernel {b.get('architecture') or '?'}"
                for b in m.get("blas") or [] if isinstance(b, dict)]
        body.append([host, m.get("cpu_model", "unknown"), str(m.get("cores", "?")),
                     ", ".join(f for f in SIMD_FLAGS if f in flags) or "–", "; ".join(blas) or "–",
                     ", ".join(f"{name} {m[key]}" for key, name in VERSIONS if m.get(key)) or "–",
                     commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")])
    return markdown_table(["Machine", "CPU", "Cores", "SIMD flags", "BLAS", "Versions", "Code version"], body)


def section(data: StudyData, fig_dir: Path, figure_number: int) -> dict | None:
    """Draw machines.png/svg and return what the report's cross-machine sections show (report.md.j2 writes them);
    None for one machine."""
    names = machines(data)
    if len(names) < 2:
        return None
    table = comparison(data)
    draw(data, table, fig_dir)
    body = [[f"{c['batch_size']:,}", c["setting"], c["machine"], style.fmt_s(c["optimized_s"]), c["peer"] or "–",
             style.fmt_s(c["peer_s"])] + [f"{x:.2f}×" if style.finite(x) else "–"
                                           for x in (c["speedup"], c["steady_speedup"])]
            for c in table.to_dict("records")]
    return dict(number=figure_number, count=len(names), names=", ".join(f"`{n}`" for n in names),
                table=markdown_table(["Batch", "Threads", "Machine", "optimized (s)", "Fastest peer", "Peer (s)",
                                      "Speed-up", "Steady-epoch speed-up"], body, "rllrlrrr"),
                peers=bool((table["peer"] != "").any()), figure=FIGURE, title=TITLE, caption=caption("machines"),
                described=described(data), unrecorded=", ".join(m for m in names if m not in data.machines))
