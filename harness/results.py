"""Files of a study: the tables' columns, reading them, writing them atomically."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

# Readers never see half a file: write a temporary file beside the target, then rename.
from reports.atomic import write_text_atomic as atomic_write_text

RUN_COLUMNS = [
    "framework", "variant", "batch_size", "epochs", "repeat", "seed", "threads", "instrumented",
    "status", "error", "wall_s", "cpu_s", "first_epoch_wall_s", "steady_epoch_wall_s", "setup_s",
    "train_acc", "test_acc", "final_loss", "gemm_floor_s", "peak_rss_mb",
    "blas_threads", "row_threads", "tf_intra_threads", "tf_inter_threads",
    "machine", "worker",  # where the run ran: host name (see harness.cluster); the Dask worker, if any
]
EPOCH_COLUMNS = [
    "framework", "variant", "batch_size", "threads", "repeat", "instrumented", "epoch",
    "wall_s", "cpu_s", "eval_s", "loss", "train_acc", "test_acc", "test_loss", "lr",
    "phase_prepare_s", "phase_forward_s", "phase_cost_s", "phase_backward_s", "phase_update_s",
    "machine",
]
RUN_KEY = ["framework", "variant", "batch_size", "threads", "repeat", "instrumented"]
LOST = "lost"  # status of a run whose cluster worker left before it finished; --resume runs it again


def atomic_write_csv(path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def read_table(path, columns: list[str]) -> pd.DataFrame:
    """A results table, or an empty one with the right columns when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=columns)
    return pd.read_csv(path, keep_default_na=True)


def as_table(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame:
            frame[column] = None
    return frame[columns + [c for c in frame.columns if c not in columns]]


def supersede_lost(runs: pd.DataFrame, row: dict) -> pd.DataFrame:
    """``runs`` without the 'lost' records that the finished run ``row`` replaces: those of the same run
    on the same machine, or on no machine in particular (a run that Dask could not place anywhere)."""
    if runs.empty or "machine" not in runs:
        return runs
    same_run = (runs[RUN_KEY].astype(str) == pd.Series({k: str(row[k]) for k in RUN_KEY})).all(axis=1)
    where = runs["machine"].isna() | (runs["machine"].astype(str) == str(row.get("machine")))
    return runs[~(same_run & (runs["status"] == LOST) & where)]
