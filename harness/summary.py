"""summary.csv: per (framework, variant, batch size, threads), medians and IQRs of the timed runs."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reports.data import add_speedups

SUMMARY_KEY = ["framework", "variant", "batch_size", "threads"]
SUMMARY_COLUMNS = SUMMARY_KEY + [
    "n_runs", "n_ok", "wall_median_s", "wall_iqr_s", "cpu_median_s", "cpu_iqr_s",
    "first_epoch_median_s", "steady_epoch_median_s", "test_acc_median", "train_acc_median",
    "speedup_vs_best_keras", "best_keras_variant", "steady_speedup_vs_best_keras", "best_keras_steady_variant",
    "speedup_vs_step3", "gemm_floor_median_s",
    "gemm_efficiency", "peak_rss_median_mb",
]


def _iqr(values: pd.Series) -> float:
    values = values.dropna()
    if values.empty:
        return np.nan
    q75, q25 = np.percentile(values, [75, 25])
    return float(q75 - q25)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Statistics over the non-instrumented runs; speed-ups compare medians at equal batch size and
    threads (>1 means faster than the reference).

    ``speedup_vs_best_keras`` compares whole trainings, first epoch included (what a user waits for);
    ``steady_speedup_vs_best_keras`` compares the steady epochs only, leaving out Keras' one-off
    tracing and compilation: the fair measure when a study runs only a few epochs.
    """
    if runs.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    runs = runs[~runs["instrumented"].astype(bool)]
    rows = []
    for key, group in runs.groupby(SUMMARY_KEY, sort=False):
        ok = group[group["status"] == "ok"]
        rows.append(
            dict(
                zip(SUMMARY_KEY, key),
                n_runs=len(group),
                n_ok=len(ok),
                wall_median_s=ok["wall_s"].median(),
                wall_iqr_s=_iqr(ok["wall_s"]),
                cpu_median_s=ok["cpu_s"].median(),
                cpu_iqr_s=_iqr(ok["cpu_s"]),
                first_epoch_median_s=ok["first_epoch_wall_s"].median(),
                steady_epoch_median_s=ok["steady_epoch_wall_s"].median(),
                test_acc_median=ok["test_acc"].median(),
                train_acc_median=ok["train_acc"].median(),
                gemm_floor_median_s=ok["gemm_floor_s"].median(),
                peak_rss_median_mb=ok["peak_rss_mb"].median(),
            )
        )
    summary = pd.DataFrame(rows)
    summary["gemm_efficiency"] = summary["gemm_floor_median_s"] / summary["wall_median_s"]
    add_speedups(summary)
    return summary[SUMMARY_COLUMNS].sort_values(["threads", "batch_size", "framework", "variant"], ignore_index=True)
