"""``python -m harness parity``: do both frameworks learn the same thing?

Parity of results, not of trajectories: each framework shuffles its own way, from the same initial
weights per seed. Per batch size and Keras variant, the median test accuracy over the seeds must be
within a band of numpy_mlp's median, and at batch 500 (full data, 35 epochs or more) every side must
reach 96 %, so that two equally broken models cannot pass.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from .cli import UsageError, check_data_dir, check_out_dir
from .plan import StudyPlan, all_cores, variant_descriptions
from .results import atomic_write_csv

ACCURACY_FLOOR = 0.96
FLOOR_BATCH_SIZE = 500


def band_pp(batch_size: int) -> float:
    """Allowed difference of median test accuracies, in percentage points: 0.5 for batch sizes up to
    2000 (many steps per epoch, little seed noise), 1.0 above (e.g. batch 20000: 105 steps in all)."""
    return 0.5 if batch_size <= 2000 else 1.0


def parity_table(runs: pd.DataFrame, numpy_variant: str = "optimized") -> pd.DataFrame:
    """One row per (batch size, framework/variant): accuracy per seed, median, difference to numpy."""
    runs = runs[~runs["instrumented"].astype(bool)]
    rows = []
    for batch_size, group in runs.groupby("batch_size"):
        reference = group[(group["framework"] == "numpy") & (group["variant"] == numpy_variant)]
        reference_median = reference["test_acc"].median()
        for (framework, variant), side in group.groupby(["framework", "variant"], sort=False):
            accuracies = side.sort_values("seed")["test_acc"].tolist()
            failed = int((side["status"] != "ok").sum())
            median = side["test_acc"].median()
            row = {"batch_size": batch_size, "framework": framework, "variant": variant}
            row.update({f"seed_{s}": a for s, a in zip(side.sort_values("seed")["seed"], accuracies)})
            row.update(
                median=median,
                diff_pp=100 * (median - reference_median),
                band_pp=band_pp(batch_size),
                failed_runs=failed,
            )
            rows.append(row)
    table = pd.DataFrame(rows)
    seed_columns = sorted((c for c in table.columns if c.startswith("seed_")), key=lambda c: int(c[5:]))
    return table[["batch_size", "framework", "variant", *seed_columns, "median", "diff_pp", "band_pp", "failed_runs"]]


def verdict(table: pd.DataFrame, floor_applies: bool) -> list[str]:
    """The reasons parity fails; empty when it holds."""
    problems = []
    for row in table.itertuples(index=False):
        name = f"{row.framework}/{row.variant} at batch {row.batch_size}"
        if row.failed_runs:
            problems.append(f"{name}: {row.failed_runs} run(s) failed")
        if not np.isfinite(row.median) or not np.isfinite(row.diff_pp):
            problems.append(f"{name}: no test accuracy")
        elif abs(row.diff_pp) > row.band_pp:
            problems.append(f"{name}: median test accuracy differs by {row.diff_pp:+.2f} pp (band {row.band_pp} pp)")
        if floor_applies and row.batch_size == FLOOR_BATCH_SIZE and row.median < ACCURACY_FLOOR:
            problems.append(f"{name}: median test accuracy {row.median:.4f} below {ACCURACY_FLOOR}")
    return problems


def format_table(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in shown.columns:
        if column.startswith("seed_") or column == "median":
            shown[column] = shown[column].map(lambda v: f"{v:.4f}" if pd.notna(v) else "-")
    shown["diff_pp"] = shown["diff_pp"].map(lambda v: f"{v:+.2f}" if pd.notna(v) else "-")
    return shown.to_string(index=False)


def run_parity(args) -> int:
    from .study import run_study

    known = variant_descriptions()
    if args.numpy_variant not in known["numpy"]:
        raise UsageError(f"unknown numpy variant {args.numpy_variant!r}; choose from {', '.join(known['numpy'])}")
    keras_variants = tuple(args.variants or known["keras"])
    for name in keras_variants:
        if name not in known["keras"]:
            raise UsageError(f"unknown keras variant {name!r}; choose from {', '.join(known['keras'])}")
    n_train = min(args.train_limit or 60000, 60000)
    for batch_size in args.batch_sizes:
        if batch_size > n_train:
            raise UsageError(f"batch size {batch_size} is larger than the training set ({n_train} samples)")
    out = check_out_dir(args.out, resume=False, prefix="parity-")
    data_dir = check_data_dir(args.data_dir)
    plan = StudyPlan(
        frameworks=("numpy", "keras"),
        variants={"numpy": (args.numpy_variant,), "keras": keras_variants},
        batch_sizes=tuple(args.batch_sizes),
        epochs=args.epochs,
        repeats=args.seeds,
        threads=(args.threads or all_cores(),),
        seed=0,
        train_limit=args.train_limit,
        phase_epochs=0,
        eval_every_epoch=False,
        preset="parity",
    )
    try:
        files = run_study(plan, out, data_dir, command=sys.argv)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs are kept in {out}", file=sys.stderr)
        return 130
    runs = pd.read_csv(files.runs)
    table = parity_table(runs, args.numpy_variant)
    atomic_write_csv(out / "parity.csv", table)
    floor_applies = args.train_limit is None and args.epochs >= 35
    print(format_table(table))
    print(f"table: {out / 'parity.csv'}")
    problems = verdict(table, floor_applies)
    if not floor_applies:
        print(f"note: the {ACCURACY_FLOOR:.0%} floor at batch {FLOOR_BATCH_SIZE} applies only to full data and 35+ epochs")
    if problems:
        for problem in problems:
            print(f"parity FAILED: {problem}")
        return 1
    print("parity holds: every median within its band")
    return 0
