"""A run's rows, built in one place whichever executor ran it: its row in runs.csv and its rows in
epochs.csv; the key that ties a row to its RunSpec; and which runs of a plan have no row yet."""
from __future__ import annotations

import pandas as pd

from reports.folder.schema import LOST, RUN_COLUMNS, RUN_KEY

from .plan import RunSpec


def run_result(spec: RunSpec, run: dict, epochs: list[dict] = (), machine: str | None = None) -> dict:
    """A finished (or failed, or lost) run as a study commits it: ``{"run": row, "epochs": rows}``. The
    row holds the spec's columns, then what the run reported (``run``), named after ``machine``; each
    epoch row holds the run's key, then what the run reported of that epoch, named after ``machine``."""
    base = {k: v for k, v in spec.to_dict().items() if k in RUN_COLUMNS}
    key = {k: getattr(spec, k) for k in RUN_KEY}
    return {"run": {**base, **run, "machine": machine},
            "epochs": [{**key, **epoch, "machine": machine} for epoch in epochs]}


def run_key(row) -> tuple:
    """A run's key from its row in runs.csv or epochs.csv, equal to its RunSpec.key."""
    framework, variant, batch_size, threads, repeat, instrumented = (row[c] for c in RUN_KEY)
    return (str(framework), str(variant), int(batch_size), int(threads), int(repeat), bool(instrumented))


def runs_to_do(specs: list[RunSpec], runs: pd.DataFrame, machine: str | None = None) -> list[RunSpec]:
    """The specs with no row in ``runs`` yet ('lost' rows do not count: those runs are done again);
    with ``machine``, the specs with no row of that machine."""
    if machine is not None:
        runs = runs[runs["machine"].astype(str) == machine] if "machine" in runs else runs.iloc[:0]
    done = {run_key(row) for _, row in runs.iterrows() if row["status"] != LOST}
    return [spec for spec in specs if spec.key not in done]
