"""The statistics of ``python -m harness parity`` (the command is harness.__main__'s): does every framework learn
the same thing? Parity of results, not of trajectories (each framework shuffles its own way, from the same initial
weights per seed). Per batch size, each NumPy variant judged is compared with every peer variant: the median test
accuracies over the seeds must lie within a band, and at batch 500 (full data, 35 epochs or more) every model must
reach 96 %, so that two equally broken models cannot pass.

The band is 3 sigma_b sqrt(pi / n) for n seeds a side, sigma_b the seed-to-seed standard deviation of test accuracy
measured at batch size b (``parity_bands.json``): the median of n normal samples has a standard deviation of at most
sqrt(pi / 2n) sigma (checked by simulation for n = 1..8), a difference of two independent medians sqrt(2) times
that; independence is conservative, as the sides share their initial weights."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd


ACCURACY_FLOOR = 0.96
FLOOR_BATCH_SIZE = 500
BAND_SIGMAS = 3.0
BANDS_FILE = Path(__file__).with_name("parity_bands.json")


def measured_spread(path: Path = BANDS_FILE) -> dict[int, float]:
    """Seed-to-seed standard deviation of test accuracy per measured batch size, in percentage points:
    the variances of the measured models (each over its seeds) pooled."""
    record = json.loads(path.read_text())
    spread = {}
    for batch_size, models in record["test_accuracy"].items():
        variances = [np.var(accuracies, ddof=1) for accuracies in models.values()]
        spread[int(batch_size)] = 100 * math.sqrt(float(np.mean(variances)))
    return spread


def band_pp(batch_size: int, seeds: int, spread: dict[int, float]) -> float:
    """Allowed difference of median test accuracies, in percentage points, for ``seeds`` seeds a side;
    a batch size not measured takes the spread of the nearest measured one (on a log scale)."""
    nearest = min(spread, key=lambda b: abs(math.log(b / batch_size)))
    return BAND_SIGMAS * spread[nearest] * math.sqrt(math.pi / seeds)


def accuracy_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (batch size, framework, variant): test accuracy per seed, median, failed runs."""
    runs = runs[~runs["instrumented"].astype(bool)]
    rows = []
    for (batch_size, framework, variant), side in runs.groupby(["batch_size", "framework", "variant"], sort=False):
        side = side.sort_values("seed")
        row = {"batch_size": batch_size, "framework": framework, "variant": variant}
        row.update({f"seed_{s}": a for s, a in zip(side["seed"], side["test_acc"])})
        row.update(median=side["test_acc"].median(), failed_runs=int((side["status"] != "ok").sum()))
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("batch_size", kind="stable")
    seed_columns = sorted((c for c in table.columns if c.startswith("seed_")), key=lambda c: int(c[5:]))
    return table[["batch_size", "framework", "variant", *seed_columns, "median", "failed_runs"]]


def parity_table(accuracies: pd.DataFrame, numpy_variants, seeds: int, spread: dict[int, float]) -> pd.DataFrame:
    """One row per (numpy variant judged, batch size, peer framework/variant): both medians, their
    difference (numpy's minus the peer's) and the band."""
    rows = []
    for numpy_variant in numpy_variants:
        for batch_size, group in accuracies.groupby("batch_size"):
            reference = group[(group["framework"] == "numpy") & (group["variant"] == numpy_variant)]
            for peer in group[group["framework"] != "numpy"].itertuples(index=False):
                rows.append(dict(
                    numpy_variant=numpy_variant,
                    batch_size=batch_size,
                    framework=peer.framework,
                    variant=peer.variant,
                    numpy_median=reference["median"].iloc[0],
                    median=peer.median,
                    diff_pp=100 * (reference["median"].iloc[0] - peer.median),
                    band_pp=band_pp(batch_size, seeds, spread),
                ))
    return pd.DataFrame(rows)


def parity_failures(accuracies: pd.DataFrame, table: pd.DataFrame, floor_applies: bool) -> dict[str, list[str]]:
    """Per numpy variant judged, the reasons its parity fails (empty when it holds). A peer's failed
    runs or missed floor fail every numpy variant: against such a peer no one can pass."""
    model_problems = {}  # (framework, variant) -> reasons that concern the model itself
    for row in accuracies.itertuples(index=False):
        name = f"{row.framework}/{row.variant} at batch {row.batch_size}"
        problems = model_problems.setdefault((row.framework, row.variant), [])
        if row.failed_runs:
            problems.append(f"{name}: {row.failed_runs} run(s) failed")
        if not np.isfinite(row.median):
            problems.append(f"{name}: no test accuracy")
        elif floor_applies and row.batch_size == FLOOR_BATCH_SIZE and row.median < ACCURACY_FLOOR:
            problems.append(f"{name}: median test accuracy {row.median:.4f} below {ACCURACY_FLOOR}")
    peer_problems = [p for (framework, _), ps in model_problems.items() if framework != "numpy" for p in ps]
    result = {}
    for numpy_variant, rows in table.groupby("numpy_variant", sort=False):
        problems = list(model_problems.get(("numpy", numpy_variant), []))
        for row in rows.itertuples(index=False):
            if np.isfinite(row.diff_pp) and abs(row.diff_pp) > row.band_pp:
                problems.append(
                    f"at batch {row.batch_size}: median test accuracy {row.numpy_median:.4f} against "
                    f"{row.framework}/{row.variant}'s {row.median:.4f}, {row.diff_pp:+.2f} pp "
                    f"(band {row.band_pp:.2f} pp)"
                )
        result[numpy_variant] = problems + peer_problems
    return result
