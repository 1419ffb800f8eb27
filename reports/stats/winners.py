"""winners.csv: which framework variant trains fastest for a batch size, a thread setting and a number of epochs.

A training of E epochs takes first + (E - 1) x steady epoch (each cell's medians of summary.csv). Per threads,
batch size and E of a log grid, the winner has the shortest such time and the runner-up the next; the ratio
runner-up / winner has a 95 % interval from the cells' bootstrap draws (reports.stats.summary.cell_draws: the same
resamples as summary.csv). The lead is clear when the interval lies above 1. Where the winner changes from one
E to the next, ``break_even_epochs`` gives the E at which the two tie (summary.break_even, closed form).
Only cells with a first and a steady epoch count (no instrumented or failed runs: summary.csv leaves them out).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..folder.schema import ALONE, CLEAR, NO_CLEAR_WINNER, NO_INTERVAL, WINNER_COLUMNS
from .summary import Cell, break_even, cell_key, interval

# Training lengths in epochs (log grid, 1 to 300); a study's own epoch count is added to it.
EPOCH_GRID = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300)


def epoch_grid(study_epochs: int | None = None) -> list[int]:
    return sorted(set(EPOCH_GRID) | ({int(study_epochs)} if study_epochs else set()))


def training_time(first, steady, epochs):
    """Seconds of a training of ``epochs`` epochs: first + (epochs - 1) x steady."""
    return np.asarray(first) + (epochs - 1) * np.asarray(steady)


def name(row) -> str:
    return f"{row['framework']}/{row['variant']}"


def winner_map(summary: pd.DataFrame, cells: dict[tuple, Cell], epochs: list[int]) -> pd.DataFrame:
    """winners.csv from summary.csv's medians and the cells' draws (keyed by CELL_KEY), over ``epochs``."""
    usable = summary[(summary["n_ok"] > 0) & np.isfinite(summary["first_epoch_median_s"].astype(float))
                     & np.isfinite(summary["steady_epoch_median_s"].astype(float))]
    out = []
    for (threads, batch_size), group in usable.groupby(["threads", "batch_size"], sort=True):
        rows = sorted(group.to_dict("records"), key=name)
        previous = None
        for e in epochs:
            times = [float(training_time(r["first_epoch_median_s"], r["steady_epoch_median_s"], e)) for r in rows]
            order = np.argsort(times, kind="stable")
            win = rows[order[0]]
            record = {"threads": threads, "batch_size": batch_size, "epochs": e, "winner": name(win),
                      "winner_s": times[order[0]], "lead": ALONE}
            if len(rows) > 1:
                run = rows[order[1]]
                record.update(runner_up=name(run), runner_up_s=times[order[1]], ratio=times[order[1]] / times[order[0]])
                record.update(_lead(cells.get(cell_key(win)), cells.get(cell_key(run)), e))
            if previous is not None and name(previous) != name(win):
                record["break_even_epochs"] = float(break_even(
                    win["first_epoch_median_s"], win["steady_epoch_median_s"],
                    previous["first_epoch_median_s"], previous["steady_epoch_median_s"]))
            out.append(record)
            previous = win
    return pd.DataFrame(out).reindex(columns=WINNER_COLUMNS)


def _lead(win: Cell | None, run: Cell | None, epochs: int) -> dict:
    """The interval of runner-up / winner over the resamples, and whether the lead is clear."""
    if win is None or run is None:
        return {"lead": NO_INTERVAL}
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = training_time(run.first, run.steady, epochs) / training_time(win.first, win.steady, epochs)
    if not np.isfinite(draws).all():
        return {"lead": NO_INTERVAL}
    lo, hi = interval(draws)
    return {"ratio_lo": lo, "ratio_hi": hi, "lead": CLEAR if lo > 1 else NO_CLEAR_WINNER}
