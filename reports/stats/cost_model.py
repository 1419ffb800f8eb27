"""cost_model.csv and crossovers.csv: why the winner changes with the batch size.

Per framework variant and threads, the steady epoch at batch size b is fitted as
    steady(b) = steps(b) x step_cost + N x sample_cost,   steps(b) = ceil(N / b), N = training samples,
by least squares over the study's batch sizes on relative residuals (each point divided by its time, so that
the slow small-batch points do not outweigh the rest). Each cost has a 95 % interval from refits on the cells'
bootstrap draws of the steady epoch (reports.stats.summary.cell_draws); a fit whose largest relative residual reaches
``BAD_FIT`` is flagged. Crossovers: NumPy ``optimized`` against the fastest fitted variant of each other
framework; with steps ~ N / b, NumPy is faster per steady epoch where (a_np - a_peer) / b < c_peer - c_np
(a: step cost, c: sample cost), so from b* = (a_np - a_peer) / (c_peer - c_np) on when both differences are
positive ("from"), up to b* when both are negative ("up to"), else always or never; b* beyond the measured
batch sizes reads as always or never in the measured range.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..folder.schema import ALWAYS, COST_MODEL_COLUMNS, CROSSOVER_COLUMNS, NEVER
from .summary import Cell, interval

BAD_FIT = 0.10  # largest |relative residual| from which a fit is flagged as bad
# Batch sizes (distinct step counts) a fit needs: two costs fit two points exactly, so only a third point can
# show whether the model holds, and a curve through two points says nothing about the batch sizes between.
MIN_POINTS = 3
NUMPY_VARIANT = "optimized"
FROM, UP_TO = "from", "up to"


def steps(n_samples: int, batch_sizes) -> np.ndarray:
    return np.ceil(n_samples / np.asarray(batch_sizes, float))


def fit_costs(step_counts, n_samples: int, times) -> np.ndarray:
    """(step cost, sample cost) per row of ``times`` (shape (..., points)): least squares on relative residuals."""
    times = np.asarray(times, float)
    x = np.stack([np.asarray(step_counts, float), np.full(len(step_counts), float(n_samples))], axis=1)
    w = 1.0 / times
    normal = np.einsum("...k,ki,kj->...ij", w * w, x, x)
    rhs = np.einsum("...k,ki->...i", w, x)
    return np.linalg.solve(normal, rhs[..., None])[..., 0]


@dataclass
class Fit:
    framework: str
    variant: str
    threads: int
    batch_sizes: np.ndarray
    measured: np.ndarray  # median steady epoch per batch size
    n_samples: int
    costs: np.ndarray  # (step cost, sample cost)
    draws: np.ndarray | None  # (resamples, 2), or None when a point has no draws

    def predict(self, batch_sizes, costs=None) -> np.ndarray:
        c = self.costs if costs is None else costs
        return steps(self.n_samples, batch_sizes) * c[..., 0:1] + self.n_samples * c[..., 1:2]

    @property
    def residuals(self) -> np.ndarray:
        return self.predict(self.batch_sizes) / self.measured - 1


def fits(summary: pd.DataFrame, cells: dict[tuple, Cell], n_samples: int) -> list[Fit]:
    """A fit per framework variant and threads with steady epochs at MIN_POINTS or more batch sizes."""
    usable = summary[(summary["n_ok"] > 0) & (summary["steady_epoch_median_s"].astype(float) > 0)]
    out = []
    for (framework, variant, threads), g in usable.groupby(["framework", "variant", "threads"], sort=True):
        g = g.sort_values("batch_size")
        b, t = g["batch_size"].to_numpy(int), g["steady_epoch_median_s"].to_numpy(float)
        if len(np.unique(steps(n_samples, b))) < MIN_POINTS:
            continue
        keyed = [cells.get((framework, variant, bs, threads)) for bs in b]
        draws = None
        if all(c is not None and np.isfinite(c.steady).all() for c in keyed):
            draws = fit_costs(steps(n_samples, b), n_samples, np.stack([c.steady for c in keyed], axis=1))
        out.append(Fit(framework, variant, int(threads), b, t, n_samples, fit_costs(steps(n_samples, b), n_samples, t),
                       draws))
    return out


def cost_table(model: list[Fit]) -> pd.DataFrame:
    """cost_model.csv: one row per fitted point."""
    rows = []
    for f in model:
        (step_lo, step_hi), (sample_lo, sample_hi) = ([(np.nan, np.nan)] * 2 if f.draws is None else
                                                       [interval(f.draws[:, i]) for i in range(2)])
        worst = float(np.abs(f.residuals).max())
        for b, t, fitted, residual in zip(f.batch_sizes, f.measured, f.predict(f.batch_sizes), f.residuals):
            rows.append({"framework": f.framework, "variant": f.variant, "threads": f.threads, "batch_size": b,
                         "samples": f.n_samples, "steps": int(steps(f.n_samples, b)), "steady_epoch_median_s": t,
                         "fitted_s": fitted, "residual_rel": residual, "step_cost_s": f.costs[0],
                         "step_cost_lo_s": step_lo, "step_cost_hi_s": step_hi, "sample_cost_s": f.costs[1],
                         "sample_cost_lo_s": sample_lo, "sample_cost_hi_s": sample_hi,
                         "max_residual_rel": worst, "bad_fit": worst >= BAD_FIT})
    return pd.DataFrame(rows).reindex(columns=COST_MODEL_COLUMNS)


def crossover(step_gap, sample_gap):
    """Kind and b* of NumPy against a peer: step_gap = a_np - a_peer, sample_gap = c_peer - c_np."""
    step_gap, sample_gap = np.asarray(step_gap, float), np.asarray(sample_gap, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = step_gap / sample_gap
    kind = np.where((step_gap <= 0) & (sample_gap >= 0), ALWAYS, np.where((step_gap >= 0) & (sample_gap <= 0), NEVER,
                                                                            np.where(step_gap > 0, FROM, UP_TO)))
    return kind, b


def _from_scale(kind, b, up_to: bool):
    """A crossover as one number for an interval: the batch from which (``up_to``: up to which) NumPy is faster;
    0 or inf where it is faster always or never (up to: inf or 0)."""
    faster_everywhere, faster_nowhere = (np.inf, 0.0) if up_to else (0.0, np.inf)
    own = UP_TO if up_to else FROM
    return np.where(kind == own, b, np.where(kind == ALWAYS, faster_everywhere, faster_nowhere))


def _in_range(direction: str, b: float, lo: float, hi: float) -> str:
    """A crossover read within the measured batch sizes [lo, hi]: FROM or UP_TO b, or ALWAYS / NEVER there."""
    if direction == FROM:
        return ALWAYS if b <= lo else NEVER if b > hi else FROM
    if direction == UP_TO:
        return ALWAYS if b >= hi else NEVER if b < lo else UP_TO
    return direction


def fastest(model: list[Fit], framework: str, threads: int, batch_sizes) -> Fit | None:
    """The variant of ``framework`` whose fitted steady epoch is the lowest over ``batch_sizes`` (geometric mean)."""
    candidates = [f for f in model if f.framework == framework and f.threads == threads]
    return min(candidates, key=lambda f: float(np.log(f.predict(batch_sizes)).mean()), default=None)


def crossover_table(model: list[Fit]) -> pd.DataFrame:
    """crossovers.csv: per threads and other framework, where NumPy optimized is faster per steady epoch."""
    rows = []
    for mine in (f for f in model if (f.framework, f.variant) == ("numpy", NUMPY_VARIANT)):
        others = sorted({f.framework for f in model if f.framework != "numpy"})
        for framework in others:
            peer = fastest(model, framework, mine.threads, mine.batch_sizes)
            if peer is None:
                continue
            lo_b, hi_b = float(mine.batch_sizes.min()), float(mine.batch_sizes.max())
            direction, b = crossover(mine.costs[0] - peer.costs[0], peer.costs[1] - mine.costs[1])
            direction, b = str(direction), float(b)
            kind = _in_range(direction, b, lo_b, hi_b)
            row = {"threads": mine.threads, "numpy_variant": mine.variant, "framework": framework,
                   "variant": peer.variant, "kind": kind, "direction": direction,
                   "batch_size": b if direction in (FROM, UP_TO) else np.nan, "measured_min": lo_b,
                   "measured_max": hi_b}
            if mine.draws is not None and peer.draws is not None:
                draw_kind, draw_b = crossover(mine.draws[:, 0] - peer.draws[:, 0], peer.draws[:, 1] - mine.draws[:, 1])
                scale = UP_TO if direction == UP_TO else FROM  # b* of "always"/"never" fits: on the "from" scale
                lo, hi = interval(_from_scale(draw_kind, draw_b, scale == UP_TO))
                row.update(batch_size_lo=lo, batch_size_hi=hi,
                           clear=_in_range(scale, lo, lo_b, hi_b) == _in_range(scale, hi, lo_b, hi_b) == kind
                           if kind in (ALWAYS, NEVER) else 0 < lo <= hi < np.inf)
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=CROSSOVER_COLUMNS)
