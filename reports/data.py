"""Read a results folder (nothing is re-run): runs, epochs and summary.csv's statistics (computed by
``reports.stats.summary`` when missing or incomplete), typed by reports.folder.results' reader. All but runs.csv may be
missing: StudyData.missing and notes say what."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import style
from .folder.results import KEY_KINDS, RESUME_EPOCH_COLUMNS, DamagedTable, as_table, read_results, text, timed
from .folder.schema import (COST_MODEL_COLUMNS, COST_MODEL_FILE, CROSSOVER_COLUMNS, CROSSOVERS_FILE,
                            ENVIRONMENT_FILE, EPOCH_COLUMNS, EPOCHS_FILE, MEDIANS, OK, RUN_COLUMNS, RUN_KEY, RUNS_FILE,
                            STUDY_FILE, SUMMARY_FILE, WINNER_COLUMNS, WINNERS_FILE, summary_columns)
from .folder.sessions import SESSION_ONLY, machines_in, read_sessions
from .stats.epoch_stats import accuracy_per_epoch, phase_medians, time_to_accuracy
from .stats.summary import summarize
from .stats.tables import compute, study_shape

# The values of runs.csv (a run's key, status and time) and epochs.csv (as a resume does) that the report
# checks, with their kind (reports.folder.results).
RUN_KINDS = {**KEY_KINDS, "status": "status", "wall_s": "number"}
RUN_NUMBERS = ("epochs", "seed", "row_threads", *MEDIANS.values())
EPOCH_NUMBERS = tuple(c for c in EPOCH_COLUMNS if c not in (*RESUME_EPOCH_COLUMNS, "machine"))
UNREADABLE = (OSError, ValueError)  # pandas' ParserError, DamagedTable and UnicodeDecodeError are ValueErrors


class ReportInputError(Exception):
    """The results folder cannot be reported on (missing folder, missing or broken runs.csv)."""


@dataclass
class StudyData:
    results_dir: Path
    runs: pd.DataFrame  # every row of runs.csv, typed
    epochs: pd.DataFrame | None  # epochs.csv with each run's status, or None
    env: dict  # environment.json (its first session)
    study: dict  # study.json
    stats: pd.DataFrame  # summary.csv, in report order
    answer: dict[str, pd.DataFrame] = field(default_factory=dict)  # winners, cost_model, crossovers.csv by file name
    missing: list[str] = field(default_factory=list)  # sentences: which files are missing
    notes: list[str] = field(default_factory=list)  # sentences: other things the reader should know

    def __post_init__(self):
        runs, limit = self.runs, self.study.get("train_limit")
        self.timing_runs = runs[(runs["status"] == OK) & ~runs["instrumented"]]  # what timing statistics count
        self.frameworks = sorted(set(self.timing_runs["framework"]), key=style.framework_rank)
        self.batch_sizes = sorted(int(b) for b in runs["batch_size"].unique())
        self.threads_values = style.order_threads(runs["threads"].unique())
        self.epochs_per_run = study_shape(self.study)[0] or (
            int(runs["epochs"].median()) if runs["epochs"].notna().any() else None)
        self.train_size = int(min(limit, 60_000)) if isinstance(limit, (int, float)) and limit > 0 else None
        self.machines = machines_in(self.results_dir / ENVIRONMENT_FILE)  # name -> record, of a cluster study
        epochs = self.epochs if self.epochs is not None else as_table([], EPOCH_COLUMNS + ["status"]).astype(
            {"instrumented": bool})
        self.counted_epochs = epochs[epochs["status"].isin([OK, "unknown"])]  # of the runs that count


def _in_report_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by batch size, threads (most first), then framework and variant in report order."""
    order = [style.variant_rank(f, v) for f, v in zip(frame["framework"], frame["variant"])]
    return frame.assign(_order=order).sort_values(
        ["batch_size", "threads", "_order"], key=lambda c: c.map(style.threads_rank) if c.name == "threads" else c,
        kind="stable").drop(columns="_order").reset_index(drop=True)


def _numbers(frame: pd.DataFrame, columns: tuple) -> pd.DataFrame:
    return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in columns})


def _read_json(path: Path, read, what: str, missing: list[str], notes: list[str]) -> dict:
    """``read(path)``, or {} when the file is missing or unreadable (then said in ``missing`` or ``notes``)."""
    if not path.is_file():
        missing.append(f"`{path.name}` is missing: {what} cannot be shown.")
        return {}
    try:
        return read(path)
    except UNREADABLE as exc:
        notes.append(f"`{path.name}` could not be read ({exc}); {what} cannot be shown.")
        return {}


def _object(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("it does not hold a JSON object")
    return data


def _first_session(sessions: list[dict], notes: list[str]) -> dict:
    """The first session's environment record, with a note on how later ones (each --resume) differ."""
    if len(sessions) > 1:
        changed = sorted({k for s in sessions[1:] for k in s
                          if k not in SESSION_ONLY and s[k] != sessions[0].get(k)})
        notes.append(f"The study ran in {len(sessions)} sessions (resumed); the environment shown is the first's" + (
            f"; later sessions differ in {', '.join(changed)}." if changed else ", the later ones ran on the same."))
    return sessions[0] if sessions else {}


def load_runs(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ReportInputError(f"{path} not found: the results folder has no runs.csv")
    try:
        runs = read_results(path, RUN_COLUMNS, RUN_KINDS)
    except DamagedTable as exc:
        raise ReportInputError(str(exc)) from None
    if runs.empty:
        raise ReportInputError(f"{path} holds no runs")
    runs = _numbers(runs, RUN_NUMBERS).assign(error=text(runs["error"]), machine=text(runs["machine"]))
    bad = (runs["status"] == OK) & ~timed(runs)  # an "ok" run without a finite wall time cannot be timed
    runs.loc[bad, "status"] = "failed"
    runs.loc[bad & (runs["error"] == ""), "error"] = "status ok but no finite wall time recorded"
    return runs


def load_epochs(path: Path, runs: pd.DataFrame, missing: list[str], notes: list[str]) -> pd.DataFrame | None:
    """epochs.csv with each run's status, so that the epochs of failed or diverged runs can be left out."""
    if not path.is_file():
        missing.append("`epochs.csv` is missing: the per-epoch figures (phases, accuracy, time to accuracy) "
                       "cannot be drawn.")
        return None
    try:
        ep = _numbers(read_results(path, EPOCH_COLUMNS, RESUME_EPOCH_COLUMNS), EPOCH_NUMBERS)
    except UNREADABLE as exc:
        notes.append(f"`epochs.csv` could not be read ({exc}); the per-epoch figures are missing.")
        return None
    ep = ep.merge(runs[RUN_KEY + ["status"]].drop_duplicates(subset=RUN_KEY, keep="last"), on=RUN_KEY, how="left")
    return ep.fillna({"status": "unknown"})


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame | None:
    """A table the harness wrote; None when it is missing (a study interrupted before writing it), unreadable or
    lacks one of ``columns``: then the report computes it by the study's own code."""
    try:
        table = pd.read_csv(path) if path.is_file() else None
    except UNREADABLE:
        return None
    return None if table is None or set(columns) - set(table.columns) else table


def load_summary(path: Path, runs: pd.DataFrame, epochs: pd.DataFrame | None, notes: list[str]) -> pd.DataFrame:
    stats = _read_table(path, summary_columns())
    if stats is None:
        notes.append("`summary.csv` is missing, unreadable or incomplete: its statistics were computed from runs.csv "
                     "and epochs.csv by the study's code (`reports.stats.summary`), as a study writes them.")
        stats = summarize(runs, epochs)
    stats["noisy"] = stats["noisy"].isin([True, "True"])
    return _in_report_order(stats.assign(cpu_per_wall=stats["cpu_median_s"] / stats["wall_median_s"]))


def load_answer(results_dir: Path, runs: pd.DataFrame, epochs: pd.DataFrame | None, study: dict,
                notes: list[str]) -> dict[str, pd.DataFrame]:
    """winners.csv, cost_model.csv and crossovers.csv, each read or computed as summary.csv is."""
    files = {WINNERS_FILE: WINNER_COLUMNS, COST_MODEL_FILE: COST_MODEL_COLUMNS, CROSSOVERS_FILE: CROSSOVER_COLUMNS}
    tables = {name: _read_table(results_dir / name, columns) for name, columns in files.items()}
    tables = {name: table for name, table in tables.items() if table is not None}
    if len(tables) < len(files):
        notes.append(f"{', '.join(f'`{n}`' for n in files if n not in tables)}: computed from runs.csv and "
                     "epochs.csv by the study's code (`reports.stats.tables`), as a study writes them.")
        computed = compute(runs, epochs, study)
        tables = {name: tables.get(name, computed[name]) for name in files}
    return tables


def load(results_dir) -> StudyData:
    results_dir = Path(results_dir)
    if not results_dir.exists():
        raise ReportInputError(f"results folder {results_dir} does not exist")
    if not results_dir.is_dir():
        raise ReportInputError(f"{results_dir} is not a folder")
    runs = load_runs(results_dir / RUNS_FILE)
    missing, notes = [], []  # sentences for the report
    epochs = load_epochs(results_dir / EPOCHS_FILE, runs, missing, notes)
    sessions = _read_json(results_dir / ENVIRONMENT_FILE, read_sessions, "the machine and software versions",
                          missing, notes)
    env = _first_session(sessions or [], notes)
    study = _read_json(results_dir / STUDY_FILE, _object, "the study's settings", missing, notes)
    stats = load_summary(results_dir / SUMMARY_FILE, runs, epochs, notes)
    answer = load_answer(results_dir, runs, epochs, study, notes)
    return StudyData(results_dir, runs, epochs, env, study, stats, answer, missing, notes)


def select(frame: pd.DataFrame, **equal) -> pd.DataFrame:
    """The rows of ``frame`` whose columns equal the values given, e.g. ``select(stats, framework="numpy")``."""
    for column, value in equal.items():
        frame = frame[frame[column] == value]
    return frame


def rows(frame: pd.DataFrame) -> list[pd.Series]:
    return [row for _, row in frame.iterrows()]


# -- per-epoch statistics (reports.stats.epoch_stats), in report order -------------------------------------
def time_to_accuracy_table(data: StudyData, threshold: float) -> pd.DataFrame:
    return _in_report_order(time_to_accuracy(data.counted_epochs, threshold))


def phase_table(data: StudyData) -> pd.DataFrame:
    return _in_report_order(phase_medians(data.counted_epochs))


def accuracy_curves(data: StudyData) -> pd.DataFrame:
    return accuracy_per_epoch(data.counted_epochs)
