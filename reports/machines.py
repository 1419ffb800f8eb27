"""Machines compared: the cross-machine part of a report, and merging results folders into one.

When runs.csv names more than one machine (a study run with ``--placement every-machine``, or
``python -m reports build DIR1 DIR2 ...``), the report gains a section that compares them: per
batch size, thread setting and machine, `optimized`'s median training time against the fastest
variant of any peer framework (every framework but numpy) on the same machine, as a table and the
figure ``machines.png``; and each machine's record (environment.json's "machines") replaces the
single machine description. A thread count equal to a machine's cores is shown as "all cores", so
that machines with different core counts line up. A study from one machine reads as before.
"""
from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from harness.summary import summarize

from . import style
from harness.files import write_text_atomic
from .data import ReportInputError, StudyData
from .document import Bullets, Figure, Para, Section, Table
from .figures import _batch_axis, _legend_below, _new_figure, _save, fmt_s

FIGURE = "machines"
TITLE = "`optimized` against the fastest peer framework, machine by machine"
# What makes two folders' times comparable: the same network and training, the same work per run.
PLAN_FIELDS = ("config", "epochs", "train_limit", "seed")
VERSIONS = (("python", "Python"), ("numpy", "NumPy"), ("tensorflow", "TensorFlow"), ("keras", "Keras"), ("jax", "JAX"))
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve")


def machine_of(runs: pd.DataFrame) -> pd.Series:
    """The machine each row ran on ('' when runs.csv does not say)."""
    if "machine" not in runs:
        return pd.Series("", index=runs.index)
    return runs["machine"].astype(object).where(runs["machine"].notna(), "").astype(str).str.strip()


def machines(data: StudyData) -> list[str]:
    return sorted(m for m in machine_of(data.runs).unique() if m)


def several(data: StudyData) -> bool:
    """Whether this is a cross-machine study (more than one machine named in runs.csv)."""
    return len(machines(data)) > 1


def records(data: StudyData) -> dict[str, dict]:
    found = data.env.get("machines")
    return found if isinstance(found, dict) else {}


def _cores(record: dict | None):
    cores = (record or {}).get("cores")
    return int(cores) if isinstance(cores, (int, float)) and cores > 0 else None


def _setting(threads: int, cores: int | None) -> str:
    return "all cores" if cores is not None and threads == cores else style.threads_label(threads)


def comparison(data: StudyData) -> pd.DataFrame:
    """Per machine, batch size and thread setting: `optimized`'s median wall time, the fastest peer
    variant's (framework/variant) and the speed-ups (peer time / optimized time, whole training and
    steady epoch; above 1: `optimized` is faster)."""
    columns = ["machine", "batch_size", "threads", "setting", "optimized_s", "peer", "peer_s", "speedup",
               "steady_speedup"]
    rows = []
    where = machine_of(data.runs)
    for machine in machines(data):
        cores = _cores(records(data).get(machine))
        stats = summarize(data.runs[where == machine], n_resamples=200)  # medians only: few resamples
        stats = stats[(stats["n_ok"] > 0) & stats["wall_median_s"].notna()]
        for (b, t), group in stats.groupby(["batch_size", "threads"]):
            mine = group[(group["framework"] == "numpy") & (group["variant"] == "optimized")]
            peers = group[group["framework"] != "numpy"]
            if mine.empty:
                continue
            mine = mine.iloc[0]
            row = dict(machine=machine, batch_size=int(b), threads=int(t), setting=_setting(int(t), cores),
                       optimized_s=mine["wall_median_s"], peer="", peer_s=math.nan, speedup=math.nan,
                       steady_speedup=math.nan)
            if not peers.empty:
                best = peers.loc[peers["wall_median_s"].idxmin()]
                row.update(peer=f"{best['framework']}/{best['variant']}", peer_s=best["wall_median_s"],
                           speedup=best["wall_median_s"] / mine["wall_median_s"])
                steady = peers["steady_epoch_median_s"].dropna()
                if len(steady) and pd.notna(mine["steady_epoch_median_s"]):
                    row["steady_speedup"] = steady.min() / mine["steady_epoch_median_s"]
            rows.append(row)
    table = pd.DataFrame(rows, columns=columns)
    order = {s: i for i, s in enumerate(["all cores"] + [style.threads_label(t) for t in
                                                          style.order_threads(table["threads"].unique())])}
    table["_order"] = table["setting"].map(order)
    return table.sort_values(["batch_size", "_order", "machine"]).drop(columns="_order").reset_index(drop=True)


def draw(data: StudyData, fig_dir: Path) -> None:
    """machines.png/svg: speed-up against batch size, one line per machine, a panel per thread setting."""
    if not several(data):
        return
    table = comparison(data)
    table = table[table["speedup"].notna()]
    settings = list(dict.fromkeys(table["setting"])) or ["no data"]
    fig = _new_figure(3.6 * len(settings) + 0.8)
    axes = np.atleast_1d(fig.subplots(len(settings), 1, squeeze=False, sharey=True)).ravel()
    names = machines(data)
    colours = {m: f"C{i % 10}" for i, m in enumerate(names)}  # matplotlib's default cycle
    batch_sizes = sorted(table["batch_size"].unique()) or data.batch_sizes
    for ax, setting in zip(axes, settings):
        for machine in names:
            line = table[(table["setting"] == setting) & (table["machine"] == machine)].sort_values("batch_size")
            if not line.empty:
                ax.plot(line["batch_size"], line["speedup"], marker="o", lw=2, color=colours[machine])
                for r in line.itertuples():
                    ax.annotate(f"{r.speedup:.2f}× vs {r.peer}", (r.batch_size, r.speedup), xytext=(5, 4),
                                textcoords="offset points", fontsize=7.5, color=colours[machine])
        ax.axhline(1.0, color="black", ls="--", lw=1.1, zorder=0.5)
        _batch_axis(ax, batch_sizes)
        ax.set_ylabel("optimized: speed-up vs fastest peer")
        ax.set_title(setting, fontsize=10.5)
        ax.grid(True, alpha=0.3)
        if table.empty:
            ax.text(0.5, 0.5, "no machine has both `optimized` and a peer framework's runs", ha="center",
                    transform=ax.transAxes)
    _legend_below(fig, [Line2D([], [], color=colours[m], marker="o", lw=2, label=m) for m in names]
                  + [Line2D([], [], color="black", ls="--", lw=1.1, label="1× = as fast as the fastest peer")])
    _save(fig, fig_dir, FIGURE, caption(data))


def caption(data: StudyData) -> str:
    return ("Median training time of the fastest peer-framework variant on the same machine, divided by "
            "NumPy optimized's, per batch size; above 1× optimized is faster. One line per machine.")


def sections(data: StudyData, figure_number: int) -> list[Section]:
    """The report's cross-machine section; nothing for a study from one machine."""
    if not several(data):
        return []
    names = machines(data)
    table = comparison(data)
    sec = Section(f"Figure {figure_number}: machines compared", 3)
    sec.add(Para(f"This study ran on {len(names)} machines ({', '.join(f'`{m}`' for m in names)}). Per machine, "
                 "batch size and thread setting: NumPy `optimized`'s median training time against the fastest "
                 "variant of any peer framework on the same machine, for the whole training and per steady "
                 "epoch. The other tables and figures of this report pool the machines' runs."))
    rows = [[f"{r.batch_size:,}", r.setting, r.machine, fmt_s(r.optimized_s), r.peer or "–", fmt_s(r.peer_s),
             _x(r.speedup), _x(r.steady_speedup)] for r in table.itertuples()]
    sec.add(Table(["Batch", "Threads", "Machine", "optimized (s)", "Fastest peer", "Peer (s)", "Speed-up",
                   "Steady-epoch speed-up"], rows, ["r", "l", "l", "r", "l", "r", "r", "r"]))
    if table["peer"].eq("").all():
        sec.add(Para("No machine has runs of a peer framework, so there is no speed-up to show."))
    sec.add(Figure(FIGURE, TITLE, caption(data), figure_number))
    return [sec]


def _x(value) -> str:
    return f"{value:.2f}×" if pd.notna(value) else "–"


def machines_section(data: StudyData) -> Section:
    """'Machine and software' for a cross-machine study: one row per machine."""
    sec = Section("Machines and software", 3)
    known = records(data)
    rows = []
    for name in machines(data):
        r = known.get(name, {})
        blas = "; ".join(f"{b.get('internal_api', '?')} {b.get('version', '')}, kernel {b.get('architecture') or '?'}"
                         for b in r.get("blas") or [] if isinstance(b, dict)) or "–"
        flags = set(str(r.get("cpu_flags") or "").split())
        simd = ", ".join(f for f in SIMD_FLAGS if f in flags) or "–"
        versions = ", ".join(f"{label} {r[key]}" for key, label in VERSIONS if r.get(key))
        commit = str(r.get("git_commit") or "?")
        rows.append([name, r.get("cpu_model", "unknown"), str(r.get("cores", "?")), simd, blas, versions or "–",
                     commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")])
    sec.add(Table(["Machine", "CPU", "Cores", "SIMD flags", "BLAS", "Versions", "Code version"], rows))
    unknown = [n for n in machines(data) if n not in known]
    if unknown:
        sec.add(Para(f"`environment.json` has no record of {', '.join(unknown)}."))
    return sec


# -- merging results folders ---------------------------------------------------------------------
def _read_folder(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, dict, dict]:
    if not (folder / "runs.csv").is_file():
        raise ReportInputError(f"{folder} holds no runs.csv")
    if not (folder / "study.json").is_file():
        raise ReportInputError(f"{folder} holds no study.json: cannot check that its plan matches the others'")
    try:
        runs = pd.read_csv(folder / "runs.csv")
        epochs = pd.read_csv(folder / "epochs.csv") if (folder / "epochs.csv").is_file() else None
        study = json.loads((folder / "study.json").read_text())
        env = json.loads((folder / "environment.json").read_text()) if (folder / "environment.json").is_file() else {}
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ReportInputError(f"cannot read {folder}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    # A folder from one machine that does not name it (older studies) is named after the folder.
    for table in (runs, epochs):
        if table is not None:
            table["machine"] = machine_of(table).replace("", folder.resolve().name)
    known = env.get("machines") if isinstance(env.get("machines"), dict) else {}
    if not known and env and runs["machine"].nunique() == 1:
        known = {runs["machine"].iloc[0]: {k: v for k, v in env.items() if k not in ("date", "command")}}
    return runs, epochs, study, known


def merge(folders: list, into) -> Path:
    """Merge results folders made separately (one machine each, or several) into one results folder
    ``into``: runs.csv and epochs.csv concatenated, study.json and environment.json combined. Refuses
    (ReportInputError) folders whose plans differ in what makes their times comparable, or that hold
    runs of the same machine."""
    into = Path(into)
    if (into / "runs.csv").exists():
        raise ReportInputError(f"{into} already holds a study; choose another folder to merge into")
    parts = [(Path(f), *_read_folder(Path(f))) for f in folders]
    first, _, _, plan, _ = parts[0]
    for folder, _, _, study, _ in parts[1:]:
        for key in PLAN_FIELDS:
            if study.get(key) != plan.get(key):
                raise ReportInputError(f"{folder} and {first} ran different plans ({key}: {study.get(key)!r} against "
                                       f"{plan.get(key)!r}): their times cannot be compared")
    owner: dict[str, Path] = {}
    for folder, runs, _, _, _ in parts:
        for machine in runs["machine"].unique():
            if machine in owner:
                raise ReportInputError(f"{owner[machine]} and {folder} both hold runs of machine {machine}: merge "
                                       "folders made on different machines")
            owner[machine] = folder
    runs = pd.concat([p[1] for p in parts], ignore_index=True)
    epochs = [p[2] for p in parts if p[2] is not None]
    study = dict(plan)
    for key in ("frameworks", "batch_sizes", "threads"):
        study[key] = sorted({v for p in parts for v in p[3].get(key) or []})
    study["variants"] = {fw: sorted({v for p in parts for v in (p[3].get("variants") or {}).get(fw, [])})
                         for fw in study["frameworks"]}
    study["repeats"] = max(p[3].get("repeats") or 0 for p in parts)
    study["merged_from"] = [str(p[0]) for p in parts]
    environment = {"machines": {name: record for p in parts for name, record in p[4].items()},
                   "merged_from": study["merged_from"],
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    write_text_atomic(into / "runs.csv", runs.to_csv(index=False))
    if epochs:
        write_text_atomic(into / "epochs.csv", pd.concat(epochs, ignore_index=True).to_csv(index=False))
    write_text_atomic(into / "study.json", json.dumps(study, indent=2) + "\n")
    write_text_atomic(into / "environment.json", json.dumps(environment, indent=2) + "\n")
    return into
