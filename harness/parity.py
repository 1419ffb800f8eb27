"""``python -m harness parity``: does every framework learn the same thing?

Parity of results, not of trajectories: each framework shuffles its own way, from the same initial
weights per seed. Per batch size, each numpy variant judged (``optimized``; the tests add broken
ones) is compared with every variant of every peer framework, all trained once in one study: the
median test accuracy over the seeds must be within a band of the numpy variant's median, and at
batch 500 (full data, 35 epochs or more) every model must reach 96 %, so that two equally broken
models cannot pass.

The band is 3 times a conservative standard deviation of a difference of two medians over n seeds
under no bug: sigma_b * sqrt(pi / n), with sigma_b the seed-to-seed standard deviation of test
accuracy measured at batch size b (``parity_bands.json``: numbers, command, date and machine). The
median of n normal samples has a standard deviation of at most sqrt(pi / 2n) sigma (its large-n value;
checked by simulation for n = 1..8), and a difference of two independent medians sqrt(2) times that.
Independence is conservative too: the sides share their initial weights, which correlates them.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .files import UsageError, check_data_dir, check_out_dir, interrupted
from .plan import StudyPlan, all_cores
from .schema import (
    PARITY_FILE, STUDY_FILE, available_frameworks, framework_missing, peer_frameworks, variant_descriptions,
)
from .results import write_csv_atomic

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


def verdict(accuracies: pd.DataFrame, table: pd.DataFrame, floor_applies: bool) -> dict[str, list[str]]:
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
                    f"{row.framework}/{row.variant}'s {row.median:.4f}, {row.diff_pp:+.2f} pp (band {row.band_pp:.2f} pp)"
                )
        result[numpy_variant] = problems + peer_problems
    return result


def _formatted(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in shown.columns:
        if column.startswith("seed_") or column.endswith("median"):
            shown[column] = shown[column].map(lambda v: f"{v:.4f}" if pd.notna(v) else "-")
    if "diff_pp" in shown:
        shown["diff_pp"] = shown["diff_pp"].map(lambda v: f"{v:+.2f}" if pd.notna(v) else "-")
        shown["band_pp"] = shown["band_pp"].map(lambda v: f"{v:.2f}")
    return shown.to_string(index=False)


def _plan(args) -> StudyPlan:
    """The one study that trains every numpy variant judged and every peer, checked before anything runs."""
    known = variant_descriptions()
    for name in args.numpy_variant:
        if name not in known["numpy"]:
            raise UsageError(f"unknown numpy variant {name!r}; choose from {', '.join(known['numpy'])}")
    peers = tuple(args.frameworks or (f for f in available_frameworks() if f != "numpy"))
    for name in peers:
        if name not in peer_frameworks():
            raise UsageError(f"unknown peer framework {name!r}; choose from {', '.join(peer_frameworks())}")
        if framework_missing(name):
            raise UsageError(framework_missing(name))
    for name in args.variants or ():
        if not any(name in known[f] for f in peers):
            choices = ", ".join(sorted({v for f in peers for v in known[f]}))
            raise UsageError(f"unknown peer variant {name!r}; choose from {choices}")
    variants = {f: tuple(v for v in known[f] if not args.variants or v in args.variants) for f in peers}
    peers = tuple(f for f in peers if variants[f])
    return StudyPlan(
        frameworks=("numpy", *peers),
        variants={"numpy": tuple(dict.fromkeys(args.numpy_variant)), **{f: variants[f] for f in peers}},
        batch_sizes=tuple(dict.fromkeys(args.batch_sizes)),
        epochs=args.epochs,
        repeats=args.seeds,
        threads=(args.threads or all_cores(),),
        seed=0,
        train_limit=args.train_limit,
        phase_epochs=0,
        eval_every_epoch=False,
        preset="parity",
    )


def run_parity(args) -> int:
    from .study import run_study

    plan = _plan(args)
    out = check_out_dir(args.out, resume=False, prefix="parity-")
    data_dir = check_data_dir(args.data_dir)
    try:
        files = run_study(plan, out, data_dir, command=sys.argv, wait_machine=args.wait,
                          share_machine=args.share_machine, resumable=False)
    except KeyboardInterrupt as exc:
        return interrupted(exc, f": finished runs are kept in {out}" if (out / STUDY_FILE).exists() else
                           ": no run had started; nothing was kept")
    spread = measured_spread()
    accuracies = accuracy_table(pd.read_csv(files.runs))
    table = parity_table(accuracies, plan.variants["numpy"], args.seeds, spread)
    write_csv_atomic(out / PARITY_FILE, table)
    floor_applies = args.train_limit is None and args.epochs >= 35
    print(_formatted(accuracies))
    print()
    print(_formatted(table))
    print(f"table: {out / PARITY_FILE}")
    print(f"band: {BAND_SIGMAS:g} x sigma_b x sqrt(pi / n) for n = {args.seeds} seed(s) a side, sigma_b the measured "
          f"seed-to-seed spread of test accuracy ({', '.join(f'batch {b}: {s:.3f} pp' for b, s in sorted(spread.items()))}; "
          f"{BANDS_FILE.name}, full MNIST, 35 epochs)")
    if args.train_limit is not None or args.epochs != 35 or not set(args.batch_sizes) <= set(spread):
        print("note: the bands were measured at full MNIST, 35 epochs; at other settings the seed-to-seed "
              "spread differs and the verdict is indicative only")
    if not floor_applies:
        print(f"note: the {ACCURACY_FLOOR:.0%} floor at batch {FLOOR_BATCH_SIZE} applies only to full data and 35+ epochs")
    failed = False
    for numpy_variant, problems in verdict(accuracies, table, floor_applies).items():
        for problem in problems:
            print(f"parity FAILED for numpy/{numpy_variant}: {problem}")
        if not problems:
            print(f"parity holds for numpy/{numpy_variant}: every peer's median within its band at every batch size")
        failed = failed or bool(problems)
    return 1 if failed else 0
