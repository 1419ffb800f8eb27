"""Read a results folder written by the harness: the runs, epochs and statistics the report shows.

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

from harness.schema import summary_columns
from harness.summary import summarize

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


class ReportInputError(Exception):
    """The results folder cannot be reported on (missing folder, missing or broken runs.csv)."""


@dataclass
class StudyData:
    results_dir: Path
    runs: pd.DataFrame  # every row of runs.csv, normalised
    epochs: pd.DataFrame | None  # epochs.csv joined with the run status, or None
    env: dict
    study: dict
    stats: pd.DataFrame  # summary.csv: per (framework, variant, batch_size, threads)
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
    """True/False as pandas reads them, or the strings true/1/yes; anything else (missing too) is False."""
    return series.astype(str).str.strip().str.lower().isin(["true", "1", "1.0", "yes", "y", "t"])


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
    env = _first_session(_read_json(results_dir / "environment.json", missing, notes, "the machine and software versions"), notes)
    study = _read_json(results_dir / "study.json", missing, notes, "the study's settings")
    stats = load_summary(results_dir / "summary.csv", runs, epochs, notes)
    return StudyData(results_dir, runs, epochs, env, study, stats, missing, notes)


def load_summary(path: Path, runs: pd.DataFrame, epochs: pd.DataFrame | None, notes: list[str]) -> pd.DataFrame:
    """summary.csv as the harness wrote it; computed here by the harness's own code when it is missing
    or older than the harness (without some of today's columns)."""
    stats = None
    if path.is_file():
        try:
            stats = _read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            notes.append(f"`summary.csv` could not be read ({exc}).")
    if stats is None or set(summary_columns()) - set(stats.columns):
        why = "missing or unreadable" if stats is None else "from an older harness"
        notes.append(f"`summary.csv` is {why}: its statistics were computed from runs.csv and epochs.csv by "
                     "the harness's code (`harness.summary`), as a study writes them.")
        stats = summarize(runs, epochs)
    stats["noisy"] = _to_bool(stats["noisy"])
    stats["cpu_per_wall"] = stats["cpu_median_s"] / stats["wall_median_s"]
    stats["_order"] = [style.variant_rank(f, v) for f, v in zip(stats["framework"], stats["variant"])]
    return stats.sort_values(by=["batch_size", "threads", "_order"], key=style.sort_key, kind="stable").drop(
        columns="_order").reset_index(drop=True)


def runs_epochs(data: StudyData, instrumented: bool | None = False) -> pd.DataFrame | None:
    """Per-epoch rows of the runs that count (status ok, instrumented or not as asked)."""
    ep = data.epochs
    if ep is None or ep.empty:
        return None
    sel = ep[ep["status"].isin(["ok", "unknown"])]
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
        rows.append(dict(zip(RUN_KEY, key), time_s=float(np.median(times)),  # inf when most runs miss it
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
