"""Read a results folder written by the harness and compute the statistics the report shows.

Only the files of the results folder are read (runs.csv, epochs.csv, summary.csv,
environment.json, study.json); nothing is re-run. Everything but runs.csv may be missing: what is
missing is collected in ``StudyData.missing`` for the report to say.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import style

RUN_KEY = ["framework", "variant", "batch_size", "threads"]
REQUIRED_RUN_COLUMNS = ("framework", "variant", "batch_size", "status", "wall_s")
RUN_NUMERIC = (
    "batch_size", "epochs", "repeat", "seed", "threads", "wall_s", "cpu_s", "first_epoch_wall_s",
    "steady_epoch_wall_s", "setup_s", "train_acc", "test_acc", "final_loss", "gemm_floor_s",
    "peak_rss_mb",
)
EPOCH_NUMERIC = (
    "batch_size", "threads", "repeat", "epoch", "wall_s", "cpu_s", "eval_s", "loss", "train_acc",
    "test_acc", "lr", *style.PHASE_COLUMNS,
)
STATUSES = ("ok", "failed", "diverged", "timeout")


class ReportInputError(Exception):
    """The results folder cannot be reported on (missing folder, missing or broken runs.csv)."""


@dataclass
class StudyData:
    results_dir: Path
    runs: pd.DataFrame  # every row of runs.csv, normalised
    epochs: pd.DataFrame | None  # epochs.csv joined with the run status, or None
    summary_file: pd.DataFrame | None  # summary.csv as the harness wrote it, or None
    env: dict
    study: dict
    stats: pd.DataFrame  # our own per-(framework, variant, batch_size, threads) statistics
    missing: list[str] = field(default_factory=list)  # sentences: what is missing
    notes: list[str] = field(default_factory=list)  # sentences: other things the reader should know

    # -- views -----------------------------------------------------------------------------------
    @property
    def timing_runs(self) -> pd.DataFrame:
        """Runs that count for timing statistics: status ok and not instrumented."""
        r = self.runs
        return r[(r["status"] == "ok") & (~r["instrumented"])]

    @property
    def failed_runs(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] != "ok"]

    @property
    def frameworks(self) -> list[str]:
        present = set(self.timing_runs["framework"])
        return sorted(present, key=style.framework_rank)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted(int(b) for b in self.runs["batch_size"].dropna().unique())

    @property
    def threads_values(self) -> list[int]:
        return style.order_threads(self.runs["threads"].dropna().unique())

    @property
    def epochs_per_run(self) -> int | None:
        value = self.study.get("epochs")
        if isinstance(value, (int, float)) and value > 0:
            return int(value)
        e = self.runs["epochs"].dropna()
        if len(e):
            return int(e.median())
        if self.epochs is not None and len(self.epochs):
            return int(self.epochs["epoch"].max())
        return None

    @property
    def train_size(self) -> int | None:
        limit = self.study.get("train_limit")
        if isinstance(limit, (int, float)) and limit > 0:
            return int(min(limit, 60_000))
        return None


# -- reading -------------------------------------------------------------------------------------
def _to_bool(series: pd.Series) -> pd.Series:
    def conv(v) -> bool:
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        if isinstance(v, (int, np.integer, float)):
            return bool(v)
        return str(v).strip().lower() in ("true", "1", "yes", "y", "t")

    return series.map(conv).astype(bool)


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True, na_values=["", "nan", "NaN", "None"])


def _read_json(path: Path, missing: list[str], notes: list[str], what: str) -> dict:
    if not path.is_file():
        missing.append(f"`{path.name}` is missing: {what} cannot be shown.")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"`{path.name}` could not be read ({exc}); {what} cannot be shown.")
        return {}
    if not isinstance(data, dict):
        notes.append(f"`{path.name}` does not hold a JSON object; ignored.")
        return {}
    return data


def _first_session(env: dict, notes: list[str]) -> dict:
    """environment.json holds one record per session of the study (``{"sessions": [...]}``: the first
    run and each --resume; an older harness wrote a single record). The report shows the first
    session's and notes what the later ones ran on differently."""
    if "sessions" not in env:
        return env
    sessions = [s for s in env["sessions"] if isinstance(s, dict)] if isinstance(env["sessions"], list) else []
    if not sessions:
        notes.append("`environment.json` holds no session record; the machine and software versions cannot be shown.")
        return {}
    first = sessions[0]
    if len(sessions) > 1:
        changed = sorted({k for s in sessions[1:] for k in s if k not in ("date", "command") and s[k] != first.get(k)})
        notes.append(f"The study ran in {len(sessions)} sessions (resumed); the environment shown is the first's"
                     + (f"; later sessions differ in {', '.join(changed)}." if changed else ", the later ones ran on the same."))
    return first


def load_runs(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ReportInputError(f"{path} not found: the results folder has no runs.csv")
    try:
        runs = _read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    runs.columns = [str(c).strip() for c in runs.columns]
    absent = [c for c in REQUIRED_RUN_COLUMNS if c not in runs.columns]
    if absent:
        raise ReportInputError(f"{path} lacks required column(s): {', '.join(absent)}")
    if runs.empty:
        raise ReportInputError(f"{path} holds no runs")
    runs = runs.copy()
    for col in ("framework", "variant", "status", "error"):
        if col not in runs.columns:
            runs[col] = ""
        runs[col] = runs[col].astype(object).where(runs[col].notna(), "").astype(str).str.strip()
    runs["framework"] = runs["framework"].str.lower()
    runs["status"] = runs["status"].str.lower().replace("", "failed")
    for col in RUN_NUMERIC:
        if col not in runs.columns:
            runs[col] = np.nan
        runs[col] = pd.to_numeric(runs[col], errors="coerce")
    if runs["batch_size"].isna().any():
        raise ReportInputError(f"{path}: some rows have no valid batch_size")
    runs["batch_size"] = runs["batch_size"].astype(int)
    runs["threads"] = runs["threads"].fillna(0).astype(int)
    if runs["repeat"].isna().any():
        runs["repeat"] = runs.groupby(RUN_KEY).cumcount()
    runs["repeat"] = runs["repeat"].astype(int)
    runs["instrumented"] = _to_bool(runs["instrumented"]) if "instrumented" in runs.columns else False
    # An "ok" run without a wall time cannot be used for timing.
    bad = (runs["status"] == "ok") & runs["wall_s"].isna()
    if bad.any():
        runs.loc[bad, "status"] = "failed"
        runs.loc[bad, "error"] = runs.loc[bad, "error"].where(runs.loc[bad, "error"] != "",
                                                            "status ok but no wall time recorded")
    return runs


def load_epochs(path: Path, runs: pd.DataFrame, missing: list[str], notes: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        missing.append("`epochs.csv` is missing: the per-epoch figures (phases, accuracy, "
                       "time to accuracy) cannot be drawn.")
        return None
    try:
        ep = _read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        notes.append(f"`epochs.csv` could not be read ({exc}); the per-epoch figures are missing.")
        return None
    ep.columns = [str(c).strip() for c in ep.columns]
    need = ("framework", "variant", "batch_size", "epoch")
    absent = [c for c in need if c not in ep.columns]
    if absent:
        notes.append(f"`epochs.csv` lacks column(s) {', '.join(absent)}; the per-epoch figures are missing.")
        return None
    ep = ep.copy()
    for col in ("framework", "variant"):
        ep[col] = ep[col].astype(object).where(ep[col].notna(), "").astype(str).str.strip()
    ep["framework"] = ep["framework"].str.lower()
    for col in EPOCH_NUMERIC:
        if col not in ep.columns:
            ep[col] = np.nan
        ep[col] = pd.to_numeric(ep[col], errors="coerce")
    ep = ep.dropna(subset=["batch_size", "epoch"])
    ep["batch_size"] = ep["batch_size"].astype(int)
    ep["epoch"] = ep["epoch"].astype(int)
    ep["threads"] = ep["threads"].fillna(0).astype(int)
    ep["repeat"] = ep["repeat"].fillna(0).astype(int)
    ep["instrumented"] = _to_bool(ep["instrumented"]) if "instrumented" in ep.columns else False
    # Attach the run's status so that epochs of failed/diverged runs can be left out.
    key = RUN_KEY + ["repeat", "instrumented"]
    status = runs[key + ["status"]].drop_duplicates(subset=key, keep="last")
    ep = ep.merge(status, on=key, how="left")
    ep["status"] = ep["status"].fillna("unknown")
    return ep


def load(results_dir) -> StudyData:
    results_dir = Path(results_dir)
    if not results_dir.exists():
        raise ReportInputError(f"results folder {results_dir} does not exist")
    if not results_dir.is_dir():
        raise ReportInputError(f"{results_dir} is not a folder")
    runs = load_runs(results_dir / "runs.csv")
    missing: list[str] = []
    notes: list[str] = []
    epochs = load_epochs(results_dir / "epochs.csv", runs, missing, notes)
    summary_file = None
    if (results_dir / "summary.csv").is_file():
        try:
            summary_file = _read_csv(results_dir / "summary.csv")
        except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            notes.append(f"`summary.csv` could not be read ({exc}); statistics were computed from runs.csv.")
    else:
        missing.append("`summary.csv` is missing; all statistics were computed from runs.csv "
                       "(they are the same by definition).")
    env = _first_session(_read_json(results_dir / "environment.json", missing, notes, "the machine and software versions"), notes)
    study = _read_json(results_dir / "study.json", missing, notes, "the study's settings")
    stats = compute_stats(runs)
    data = StudyData(results_dir, runs, epochs, summary_file, env, study, stats, missing, notes)
    _check_summary(data)
    return data


# -- statistics ----------------------------------------------------------------------------------
def _q(values: pd.Series, q: float) -> float:
    v = values.dropna().to_numpy(dtype=float)
    return float(np.percentile(v, q)) if len(v) else math.nan


def _median(values: pd.Series) -> float:
    v = values.dropna().to_numpy(dtype=float)
    return float(np.median(v)) if len(v) else math.nan


def add_speedups(stats: pd.DataFrame) -> pd.DataFrame:
    """Add the speed-ups to per-(framework, variant, batch size, threads) medians, in place: against
    the fastest Keras variant at the same batch size and threads, for whole trainings
    (``best_keras_wall_s``, ``best_keras_variant``, ``speedup_vs_best_keras``) and for steady epochs
    only, without Keras' one-off compilation (``best_keras_steady_variant``,
    ``steady_speedup_vs_best_keras``), and against ``step3`` (``speedup_vs_step3``). Above 1 is faster.
    Shared by ``summary.csv`` (harness) and the report."""
    for column in ("best_keras_wall_s", "speedup_vs_best_keras", "steady_speedup_vs_best_keras", "speedup_vs_step3"):
        stats[column] = np.nan
    stats["best_keras_variant"] = None
    stats["best_keras_steady_variant"] = None
    if "steady_epoch_median_s" not in stats:
        stats["steady_epoch_median_s"] = np.nan
    for _, group in stats.groupby(["batch_size", "threads"]):
        keras = group[(group["framework"] == "keras") & group["wall_median_s"].notna()]
        if not keras.empty:
            best = keras.loc[keras["wall_median_s"].idxmin()]
            stats.loc[group.index, "best_keras_wall_s"] = best["wall_median_s"]
            stats.loc[group.index, "speedup_vs_best_keras"] = best["wall_median_s"] / group["wall_median_s"]
            stats.loc[group.index, "best_keras_variant"] = best["variant"]
        keras = keras[keras["steady_epoch_median_s"].notna()]
        if not keras.empty:
            best = keras.loc[keras["steady_epoch_median_s"].idxmin()]
            steady = best["steady_epoch_median_s"] / group["steady_epoch_median_s"]
            stats.loc[group.index, "steady_speedup_vs_best_keras"] = steady
            stats.loc[group.index, "best_keras_steady_variant"] = best["variant"]
        step3 = group[(group["framework"] == "numpy") & (group["variant"] == "step3")]
        if not step3.empty and pd.notna(step3["wall_median_s"].iloc[0]):
            stats.loc[group.index, "speedup_vs_step3"] = step3["wall_median_s"].iloc[0] / group["wall_median_s"]
    return stats


def compute_stats(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (framework, variant, batch_size, threads) statistics over non-instrumented runs.

    Timing statistics use runs with status ok only; ``n_runs`` counts all non-instrumented runs.
    IQR is the 75th minus the 25th percentile (numpy's linear interpolation).
    """
    plain = runs[~runs["instrumented"]]
    rows = []
    for key, group in plain.groupby(RUN_KEY, sort=False):
        ok = group[group["status"] == "ok"]
        row = dict(zip(RUN_KEY, key))
        row["n_runs"] = len(group)
        row["n_ok"] = len(ok)
        row["n_failed"] = int((group["status"] != "ok").sum())
        for name, col in (("wall", "wall_s"), ("cpu", "cpu_s")):
            row[f"{name}_median_s"] = _median(ok[col])
            row[f"{name}_q25_s"] = _q(ok[col], 25)
            row[f"{name}_q75_s"] = _q(ok[col], 75)
            row[f"{name}_iqr_s"] = row[f"{name}_q75_s"] - row[f"{name}_q25_s"]
        row["first_epoch_median_s"] = _median(ok["first_epoch_wall_s"])
        row["steady_epoch_median_s"] = _median(ok["steady_epoch_wall_s"])
        row["setup_median_s"] = _median(ok["setup_s"])
        row["test_acc_median"] = _median(ok["test_acc"])
        row["train_acc_median"] = _median(ok["train_acc"])
        row["final_loss_median"] = _median(ok["final_loss"])
        row["gemm_floor_median_s"] = _median(ok["gemm_floor_s"])
        row["peak_rss_median_mb"] = _median(ok["peak_rss_mb"])
        row["epochs"] = _median(ok["epochs"]) if len(ok) else _median(group["epochs"])
        rows.append(row)
    columns = RUN_KEY + ["n_runs", "n_ok", "n_failed"]
    stats = pd.DataFrame(rows)
    if stats.empty:
        stats = pd.DataFrame(columns=columns + ["wall_median_s"])
    stats["gemm_efficiency"] = stats.get("gemm_floor_median_s", np.nan) / stats["wall_median_s"]
    stats["cpu_per_wall"] = stats.get("cpu_median_s", np.nan) / stats["wall_median_s"]
    add_speedups(stats)
    stats["best_keras_variant"] = stats["best_keras_variant"].fillna("")
    stats["_order"] = [style.variant_rank(f, v) for f, v in zip(stats["framework"], stats["variant"])]
    stats = stats.sort_values(
        by=["batch_size", "threads", "_order"], key=style.sort_key, kind="stable"
    ).drop(columns="_order").reset_index(drop=True)
    return stats


def _check_summary(data: StudyData) -> None:
    """Compare the harness's summary.csv with our statistics; note disagreements."""
    sf = data.summary_file
    if sf is None or sf.empty or "wall_median_s" not in sf.columns:
        return
    try:
        sf = sf.copy()
        sf["framework"] = sf["framework"].astype(str).str.strip().str.lower()
        sf["variant"] = sf["variant"].astype(str).str.strip()
        sf["batch_size"] = pd.to_numeric(sf["batch_size"], errors="coerce")
        sf["threads"] = pd.to_numeric(sf.get("threads", 0), errors="coerce").fillna(0)
        sf["wall_median_s"] = pd.to_numeric(sf["wall_median_s"], errors="coerce")
        merged = data.stats.merge(sf[RUN_KEY + ["wall_median_s"]], on=RUN_KEY, how="inner",
                                  suffixes=("", "_file"))
    except (KeyError, ValueError, TypeError):
        data.notes.append("`summary.csv` has an unexpected layout; statistics were computed from runs.csv.")
        return
    a, b = merged["wall_median_s"], merged["wall_median_s_file"]
    differ = ~np.isclose(a, b, rtol=1e-3, atol=1e-6, equal_nan=True)
    if differ.any():
        names = ", ".join(
            f"{r.framework} {r.variant} batch {r.batch_size}" for r in merged[differ].itertuples()
        )
        data.notes.append(
            f"`summary.csv` disagrees with runs.csv on the median wall time of {names}; this report "
            "uses the values computed from runs.csv."
        )


def runs_epochs(data: StudyData, ok_only: bool = True, instrumented: bool | None = False) -> pd.DataFrame | None:
    """Per-epoch rows of the runs that count (status ok, instrumented or not as asked)."""
    ep = data.epochs
    if ep is None or ep.empty:
        return None
    sel = ep
    if ok_only:
        sel = sel[sel["status"].isin(["ok", "unknown"])]
    if instrumented is not None:
        sel = sel[sel["instrumented"] == instrumented]
    return sel


def time_to_threshold(ep_run: pd.DataFrame, threshold: float) -> tuple[float, int] | None:
    """Cumulative training wall time (and epoch) at which test accuracy first reaches threshold."""
    ep_run = ep_run.sort_values("epoch")
    cum = ep_run["wall_s"].cumsum()
    hit = ep_run["test_acc"] >= threshold
    if not hit.any():
        return None
    first = hit.to_numpy().argmax()
    return float(cum.iloc[first]), int(ep_run["epoch"].iloc[first])


def time_to_accuracy_table(data: StudyData, threshold: float) -> pd.DataFrame:
    """Per (framework, variant, batch_size, threads): median time to reach threshold over runs.

    A run that never reaches the threshold counts as infinitely slow, so a group whose median run
    does not reach it is 'not reached' (time = inf).
    """
    ep = runs_epochs(data)
    cols = RUN_KEY + ["time_s", "epoch", "n_runs", "n_reached"]
    if ep is None or ep.empty or ep["test_acc"].notna().sum() == 0:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, group in ep.groupby(RUN_KEY, sort=False):
        times, epochs_hit = [], []
        for _, run in group.groupby("repeat"):
            result = time_to_threshold(run, threshold)
            if result is None:
                times.append(math.inf)
            else:
                times.append(result[0])
                epochs_hit.append(result[1])
        times_arr = np.sort(np.asarray(times, dtype=float))
        med = float(times_arr[(len(times_arr) - 1) // 2]) if len(times_arr) % 2 else float(
            np.mean(times_arr[len(times_arr) // 2 - 1: len(times_arr) // 2 + 1]))
        rows.append(dict(zip(RUN_KEY, key), time_s=med,
                         epoch=int(np.median(epochs_hit)) if epochs_hit else -1,
                         n_runs=len(times), n_reached=len(epochs_hit)))
    table = pd.DataFrame(rows, columns=cols)
    table["_order"] = [style.variant_rank(f, v) for f, v in zip(table["framework"], table["variant"])]
    return table.sort_values(["batch_size", "threads", "_order"], key=style.sort_key).drop(
        columns="_order").reset_index(drop=True)


THRESHOLD_CANDIDATES = (0.95, 0.94, 0.93, 0.92, 0.90, 0.85, 0.80, 0.70, 0.50)


def choose_threshold(data: StudyData) -> float:
    """The highest of 0.95, 0.94, ... that at least two thirds of the (variant, batch) groups reach."""
    for t in THRESHOLD_CANDIDATES:
        table = time_to_accuracy_table(data, t)
        if table.empty:
            return THRESHOLD_CANDIDATES[0]
        if np.isfinite(table["time_s"]).mean() >= 2 / 3:
            return t
    return THRESHOLD_CANDIDATES[-1]
