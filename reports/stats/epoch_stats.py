"""Statistics of a study's epochs.csv per cell: the training time until the test accuracy first reaches a
threshold, the median time of each phase of the instrumented NumPy runs, and the median accuracy per epoch.
``epochs``: the epoch rows of the runs that count (status ok), typed as reports.folder.results reads them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..folder.schema import CELL_KEY, PHASES, phase_column

PHASE_COLUMNS = [phase_column(p) for p in PHASES]
THRESHOLD_CANDIDATES = (0.95, 0.94, 0.93, 0.92, 0.90, 0.85, 0.80, 0.70, 0.50)


def time_to_accuracy(epochs: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per cell of the uninstrumented runs: the median cumulative training time (and epoch) at which the test
    accuracy first reaches ``threshold``; a run that never does counts as infinitely slow (time_s = inf:
    'not reached' when the median run does not)."""
    return _time_to(_cumulative(epochs), threshold)


RUN = CELL_KEY + ["repeat"]
COLUMNS = CELL_KEY + ["time_s", "epoch", "n_runs", "n_reached"]


def _cumulative(epochs: pd.DataFrame) -> pd.DataFrame | None:
    """The uninstrumented epoch rows in run and epoch order with their cumulative training time (None: no test
    accuracy): sorted once for every threshold tried (a study of 20,000 runs has 700,000 epoch rows)."""
    ep = epochs[~epochs["instrumented"]]
    if ep["test_acc"].notna().sum() == 0:
        return None
    ep = ep.sort_values(RUN + ["epoch"])
    return ep.assign(time_s=ep.groupby(RUN)["wall_s"].cumsum())


def _time_to(ep: pd.DataFrame | None, threshold: float) -> pd.DataFrame:
    if ep is None:
        return pd.DataFrame(columns=COLUMNS)
    hits = ep[ep["test_acc"] >= threshold].groupby(RUN).head(1).set_index(RUN)[["time_s", "epoch"]]
    runs = ep.groupby(RUN).size().to_frame("n").join(hits).fillna({"time_s": math.inf})
    table = runs.groupby(CELL_KEY).agg(time_s=("time_s", "median"), epoch=("epoch", "median"), n_runs=("n", "size"),
                                       n_reached=("epoch", "count"))
    return table.assign(epoch=table["epoch"].fillna(-1).astype(int)).reset_index()[COLUMNS]


def reached_threshold(epochs: pd.DataFrame) -> float:
    """The highest test accuracy of THRESHOLD_CANDIDATES that at least two thirds of the cells reach."""
    ep = _cumulative(epochs)
    for threshold in THRESHOLD_CANDIDATES:
        reached = np.isfinite(_time_to(ep, threshold)["time_s"].astype(float))
        if reached.empty:
            return THRESHOLD_CANDIDATES[0]
        if reached.mean() >= 2 / 3:
            return threshold
    return THRESHOLD_CANDIDATES[-1]


def phase_medians(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per cell of the instrumented NumPy runs: the median seconds per epoch of each phase, and 'other', the
    epoch's wall time that the phases do not cover."""
    columns = CELL_KEY + [*PHASES, "other"]
    ep = epochs[epochs["instrumented"] & (epochs["framework"] == "numpy") & epochs[PHASE_COLUMNS].notna().any(axis=1)]
    if ep.empty:
        return pd.DataFrame(columns=columns)
    ep = ep.assign(other=ep["wall_s"] - ep[PHASE_COLUMNS].fillna(0).sum(axis=1))
    table = ep.rename(columns=dict(zip(PHASE_COLUMNS, PHASES))).groupby(CELL_KEY)[columns[4:]].median().fillna(0.0)
    return table.assign(other=table["other"].clip(lower=0.0)).reset_index()[columns]


def accuracy_per_epoch(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per framework, variant, batch size and epoch: the median over repeats (and thread settings) of the test
    and training accuracy, of the uninstrumented runs when they have any test accuracy."""
    plain = epochs[~epochs["instrumented"]]
    ep = plain if plain["test_acc"].notna().any() else epochs
    return ep.groupby(["framework", "variant", "batch_size", "epoch"])[["test_acc", "train_acc"]].median().reset_index()
