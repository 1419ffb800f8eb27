"""What a resumed study continues from: its tables repaired (runs with incomplete epoch rows, or in
runs.csv twice, dropped to be redone), the failed runs to retry, and which rows a retried run replaces.

A run is known by its placed key: its key and the machine it ran on; in a study placed on every machine
of a cluster, each machine makes its own run of every key.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from reports.folder.files import StudyError
from reports.folder.results import RESUME_EPOCH_COLUMNS, RESUME_RUN_COLUMNS, DamagedTable, read_results
from reports.folder.schema import EPOCH_COLUMNS, RUN_COLUMNS

from .plan import StudyPlan, run_key

RETRIED = ("failed", "timeout")  # what --retry-failed redoes; 'diverged' is a result, not a failure


def resume_tables(plan: StudyPlan, files, retry_failed: bool, stream) -> tuple[pd.DataFrame, pd.DataFrame, set]:
    """runs.csv and epochs.csv (``files``: harness.study_folder.StudyFiles) as a resume continues them,
    and the runs to retry.

    Damaged tables, and rows of runs another plan would make, are a StudyError. A run whose epoch rows
    are not exactly its epochs (an ok run: 1..epochs; one that failed or diverged: 1..k), or that is in
    runs.csv twice, is dropped, to be redone, and so are epoch rows of runs not in runs.csv. With
    ``retry_failed``, failed and timed-out runs are returned to be redone; their rows stay until
    their new rows replace them."""
    try:
        runs = read_results(files.runs, RUN_COLUMNS, RESUME_RUN_COLUMNS)
        epochs = read_results(files.epochs, EPOCH_COLUMNS, RESUME_EPOCH_COLUMNS)
    except DamagedTable as exc:
        raise StudyError(f"--resume: {exc}") from None
    specs = {spec.key: spec for spec in plan.runs()}
    placed = [(placed_key(row), row) for _, row in runs.iterrows()]
    for key, row in placed:
        spec = specs.get(key[:-1])
        if spec is None or (row["epochs"], row["seed"]) != (spec.epochs, spec.seed):
            raise StudyError(f"--resume: {files.runs} holds runs that study.json does not plan (e.g. {key[0]}/{key[1]} "
                             f"batch {key[2]}, {row['epochs']} epochs, seed {row['seed']}); continue in a new folder")
    epoch_keys = [placed_key(row) for _, row in epochs.iterrows()]
    numbers: dict[tuple, list[int]] = {}
    for key, epoch in zip(epoch_keys, epochs["epoch"]):
        numbers.setdefault(key, []).append(int(epoch))

    def whole(key, row) -> bool:
        have = sorted(numbers.get(key, []))
        last = row["epochs"] if row["status"] == "ok" else len(have)
        return last <= row["epochs"] and have == list(range(1, last + 1))

    twice = {key for key, count in Counter(key for key, _ in placed).items() if count > 1}
    incomplete = {key for key, row in placed if key not in twice and not whole(key, row)}
    redone = incomplete | twice
    retried = {key for key, row in placed if retry_failed and row["status"] in RETRIED and key not in redone}
    kept = [key not in redone for key, _ in placed]
    kept_keys = {key for key, _ in placed} - redone
    orphans = sum(key not in kept_keys and key not in redone for key in epoch_keys)
    for keys, what in ((incomplete, "redoing {} run(s) whose epoch rows are incomplete"),
                       (twice, "redoing {} run(s) that runs.csv holds more than once"),
                       (retried, "retrying {} failed or timed-out run(s)")):
        if keys:
            labels = ", ".join(specs[k].label for k in sorted({k[:-1] for k in keys}))
            print(f"resume: {what.format(len(keys))}: {labels}", file=stream, flush=True)
    if orphans:
        print(f"resume: dropping {orphans} epoch row(s) of runs that never reached runs.csv", file=stream, flush=True)
    epochs = _rows(epochs, [key in kept_keys for key in epoch_keys])
    return _rows(runs, kept).reset_index(drop=True), epochs.reset_index(drop=True), retried


def placed_key(row) -> tuple:
    """A run's key and the machine it ran on (empty for a run lost before a machine took it): in a study
    placed on every machine of a cluster, each machine makes its own run of every key."""
    machine = row["machine"]
    return (*run_key(row), "" if pd.isna(machine) else str(machine))


def retried_away(key: tuple, machine: str, retried: set) -> set:
    """The rows (placed keys) that the run ``key``, landing from ``machine``, replaces when it is retried: that
    machine's own (each machine of an every-machine study redoes only its own failures), or all of the key's
    when that machine had none (the run went to another machine than the one it failed on)."""
    old = {placed for placed in retried if placed[:-1] == key}
    return {placed for placed in old if placed[-1] == machine} or old


def without(table: pd.DataFrame, placed_keys: set) -> pd.DataFrame:
    """The rows of a table that are not of the runs (placed keys) ``placed_keys``: on a resume, the rows that
    count as done are those without the failed runs being retried (each machine redoes only its own)."""
    if not placed_keys:
        return table
    return _rows(table, [placed_key(row) not in placed_keys for _, row in table.iterrows()])


def _rows(table: pd.DataFrame, keep: list[bool]) -> pd.DataFrame:
    """The rows of ``table`` where ``keep`` is true (an empty list selects no rows, not no columns)."""
    return table.loc[np.asarray(keep, dtype=bool)]
