"""A study's tables read back for a resume (checked and typed) and written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .files import write_text_atomic
from .schema import LOST, OK, RUN_KEY, STATUSES

# What a resume needs of each table (to match runs to the plan, to check their epoch rows and to
# summarize them), with the kind of value each column must hold.
KEY_KINDS = {"framework": "text", "variant": "text", "batch_size": "whole", "threads": "whole",
              "repeat": "whole", "instrumented": "bool"}
RESUME_RUN_COLUMNS = {
    **KEY_KINDS, "epochs": "whole", "seed": "whole", "status": "status",
    **dict.fromkeys(["wall_s", "cpu_s", "first_epoch_wall_s", "steady_epoch_wall_s", "train_acc", "test_acc",
                     "gemm_floor_s", "peak_rss_mb"], "number"),
}
RESUME_EPOCH_COLUMNS = {**KEY_KINDS, "epoch": "whole"}


class DamagedTable(ValueError):
    """A results table that a study cannot continue from; the message names the file and the fault."""


def write_csv_atomic(path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False))


def read_results(path, columns: list[str], required: dict[str, str]) -> pd.DataFrame:
    """A table the study wrote, read back for a resume: an empty table when the file does not exist;
    DamagedTable when it is empty, unreadable, lacks one of ``columns`` or holds a value of the wrong
    kind in a ``required`` one (the message names the row). Required columns come back typed (whole
    numbers as int, flags as bool), so that their values compare equal to a plan's."""
    path = Path(path)
    if not path.exists():
        return as_table([], columns)
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DamagedTable(f"{path} is empty") from None
    except (OSError, ValueError) as exc:  # ParserError and UnicodeDecodeError are ValueErrors
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DamagedTable(f"cannot read {path}: {reason}") from None
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DamagedTable(f"{path} lacks the required column(s) {', '.join(absent)}")
    for column, kind in required.items():
        frame[column] = _typed(frame[column], kind, f"{path}: {column}")
    return as_table(frame, columns)


_EXPECTED = {"number": "a number", "whole": "a whole number", "bool": "True or False",
             "status": f"one of {', '.join(STATUSES)}", "text": "a name"}


def _typed(values: pd.Series, kind: str, where: str) -> pd.Series:
    if kind == "number":
        typed = pd.to_numeric(values, errors="coerce")
        bad = typed.isna() & values.notna()
    elif kind == "whole":
        typed = pd.to_numeric(values, errors="coerce")
        bad = typed.isna() | (typed % 1 != 0)
    elif kind == "bool":
        typed = values.map({True: True, False: False, "True": True, "False": False})
        bad = typed.isna()
    elif kind == "status":
        typed, bad = values, ~values.isin(STATUSES)
    else:  # text
        typed, bad = values.astype(str), values.isna()
    if bad.any():
        row = bad.to_numpy().argmax()
        raise DamagedTable(f"{where} in row {row + 1} is {values.iloc[row]!r}, not {_EXPECTED[kind]}")
    return typed.astype(int) if kind == "whole" else typed.astype(bool) if kind == "bool" else typed


def timed(runs: pd.DataFrame) -> pd.Series:
    """Which runs count in the timing statistics: those that finished ok with a finite, positive wall time."""
    wall = pd.to_numeric(runs["wall_s"], errors="coerce")
    return (runs["status"] == OK) & np.isfinite(wall) & (wall > 0)


def text(values: pd.Series) -> pd.Series:
    """A column of names as text, stripped, '' where missing."""
    return values.astype(object).fillna("").astype(str).str.strip()


def as_table(rows: list[dict] | pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
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
