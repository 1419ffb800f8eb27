"""summary.csv: per (framework, variant, batch size, threads), medians, spreads and speed-ups against the
fastest peer variant (``best_peer``), the fastest variant of each peer framework and NumPy ``step3``, whole
trainings and per steady epoch, with 95 % percentile-bootstrap intervals (seeded per cell), verdicts,
noisy-cell flags and break-even epochs. docs/method.md says what each means and how it is computed."""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..folder.results import timed
from ..folder.schema import (
    BUSY_RUNS, CELL_KEY, FASTER, MEDIANS, NO_INTERVAL, OTHERS_SHARE, REFERENCE, SLOWER, UNCLEAR, peer_frameworks,
    reference_column, speedup_column, summary_columns,
)
from .busy import BUSY_SHARE, busy

CONFIDENCE = 0.95
N_RESAMPLES = 2000
DRAWS_PER_BLOCK = 4_000_000  # steady-epoch draws resampled at once (about 32 MB a table of them)
SEED = 0
# A cell is noisy when IQR / median of its runs' wall times reaches this: for normal noise the IQR is
# 1.35 standard deviations, so this is pyperf's "standard deviation >= 10 % of the mean" warning (how the
# reference studies' cells spread: docs/method.md, "Noisy cells").
NOISY_REL_IQR = 0.135


@dataclass
class Cell:
    """One cell's runs and their bootstrap draws: the medians of ``N_RESAMPLES`` resamples."""

    wall: np.ndarray  # (n_resamples,) median wall time of each resample
    first: np.ndarray  # median first epoch
    steady: np.ndarray  # median over drawn runs of the median of each run's redrawn steady epochs


def resample_cell(wall, first, steady_epochs: list[np.ndarray], rng, n_resamples: int = N_RESAMPLES) -> Cell:
    """Draw runs with replacement (one draw for all three medians), then steady epochs within each drawn
    run. ``steady_epochs[i]``: the steady epoch times of run i (may differ in length)."""
    wall, first = np.asarray(wall, float), np.asarray(first, float)
    n = len(wall)
    runs = rng.integers(0, n, (n_resamples, n))
    counts = np.array([len(e) for e in steady_epochs])
    if counts.size and counts.min() > 0:
        padded = np.full((n, counts.max()), np.nan)
        for i, epochs in enumerate(steady_epochs):
            padded[i, : len(epochs)] = epochs
        slots = np.arange(counts.max())
        steady = np.empty(n_resamples)
        # resamples a block at a time, drawn in the same order as all at once: memory stays bounded
        block = max(1, DRAWS_PER_BLOCK // (n * counts.max()))
        for start in range(0, n_resamples, block):
            rows = runs[start:start + block]
            drawn = counts[rows][..., None]
            picks = rng.integers(0, drawn, (len(rows), n, counts.max()))  # beyond a run's count: masked below
            values = padded[rows[..., None], picks]
            if counts.min() < counts.max():
                per_run = np.nanmedian(np.where(slots < drawn, values, np.nan), axis=2)
            else:
                per_run = np.median(values, axis=2)
            steady[start:start + block] = np.median(per_run, axis=1)
    else:
        steady = np.full(n_resamples, np.nan)
    return Cell(np.median(wall[runs], axis=1), np.median(first[runs], axis=1), steady)


def interval(draws: np.ndarray) -> tuple[float, float]:
    """The central ``CONFIDENCE`` percentile interval of bootstrap draws (which may hold inf)."""
    tail = (1 - CONFIDENCE) / 2
    lo, hi = np.quantile(draws, [tail, 1 - tail], method="inverted_cdf")
    return float(lo), float(hi)


def verdict(lo: float, hi: float) -> str:
    """faster / slower / no clear difference: where the interval of a speed-up lies against 1."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return NO_INTERVAL
    return FASTER if lo > 1 else SLOWER if hi < 1 else UNCLEAR


def break_even(first_a, steady_a, first_b, steady_b):
    """Epochs after which the side with the faster steady epoch has the shorter total training time,
    where it has the slower first epoch: total(n) = first + (n - 1) steady, equal at
    n = 1 + (first_a - first_b) / (steady_b - steady_a). NaN when neither side trades one for the other."""
    gain = np.asarray(steady_b) - np.asarray(steady_a)
    cost = np.asarray(first_a) - np.asarray(first_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cost * gain > 0, 1 + cost / gain, np.nan)


def _break_even_draws(a: Cell, b: Cell, a_wins: bool) -> np.ndarray:
    """Per resample, the epochs after which the long-run winner of the point estimate leads: 1 when it
    leads from the start, inf when it no longer wins in the long run."""
    win, lose = (a, b) if a_wins else (b, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = 1 + (win.first - lose.first) / (lose.steady - win.steady)
    return np.where(win.steady < lose.steady, np.maximum(n, 1.0), np.inf)


def _cell_rng(key: tuple, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(repr(tuple(map(str, key))).encode())])


def _steady_epochs(ok: pd.DataFrame, epochs: pd.DataFrame | None) -> list[np.ndarray]:
    """Each run's steady epoch times from epochs.csv; its steady_epoch_wall_s alone without them."""
    by_repeat = {}
    if epochs is not None:  # sorted and split, not grouped: a cell may have thousands of runs
        epochs = epochs[epochs["wall_s"].notna()].sort_values("repeat", kind="stable")
        repeats, starts = np.unique(epochs["repeat"].to_numpy(int), return_index=True)
        by_repeat = dict(zip(repeats.tolist(), np.split(epochs["wall_s"].to_numpy(float), starts[1:])))
    out = []
    for repeat, steady in zip(ok["repeat"].to_numpy(), ok["steady_epoch_wall_s"].to_numpy(float)):
        found = by_repeat.get(int(repeat))
        out.append(found if found is not None and len(found) else np.array([steady])[np.isfinite([steady])])
    return out


def _timing_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The uninstrumented runs with their key, status and numbers (failed runs' numbers: NaN)."""
    runs = runs[~runs["instrumented"].astype(bool)].reindex(columns=list(dict.fromkeys(
        CELL_KEY + ["repeat", "status", *MEDIANS.values(), OTHERS_SHARE])))
    return runs.assign(**{c: pd.to_numeric(runs[c], errors="coerce") for c in MEDIANS.values()})


def cell_draws(runs: pd.DataFrame, epochs: pd.DataFrame | None = None, seed: int = SEED,
               n_resamples: int = N_RESAMPLES) -> dict[tuple, Cell]:
    """Per cell (CELL_KEY) with two or more runs that count: its bootstrap draws, seeded per cell, so that
    summary.csv, winners.csv and the cost model resample the same way."""
    ok = _timing_runs(runs)
    ok = ok[timed(ok)]
    steady_rows = {}
    if epochs is not None and not epochs.empty:
        steady_rows = dict(list(epochs[~epochs["instrumented"].astype(bool) & (epochs["epoch"] > 1)]
                                .groupby(CELL_KEY)))
    cells = {}
    for key, cell in ok.groupby(CELL_KEY):
        if len(cell) >= 2:
            steady = _steady_epochs(cell, steady_rows.get(key))
            cells[key] = resample_cell(cell["wall_s"], cell["first_epoch_wall_s"], steady, _cell_rng(key, seed),
                                       n_resamples)
    return cells


def summarize(runs: pd.DataFrame, epochs: pd.DataFrame | None = None, seed: int = SEED,
              n_resamples: int = N_RESAMPLES, cells: dict[tuple, Cell] | None = None) -> pd.DataFrame:
    """summary.csv from the runs (runs.csv) and, for the steady-epoch intervals, their epochs
    (epochs.csv; without it each run counts with its steady_epoch_wall_s alone). Instrumented runs and
    runs that did not finish ok are left out of every statistic; ``n_runs`` counts the failed ones.
    ``cells``: the draws of cell_draws(runs, epochs, seed, n_resamples), when the caller has them."""
    columns = summary_columns()
    if cells is None:
        cells = cell_draws(runs, epochs, seed, n_resamples)
    runs = _timing_runs(runs)
    if runs.empty:
        return pd.DataFrame(columns=columns)
    numbers = list(MEDIANS.values())
    ok = runs[timed(runs)]
    by_cell = ok.groupby(CELL_KEY)
    summary = pd.concat([
        runs.groupby(CELL_KEY).size().rename("n_runs"), by_cell.size().rename("n_ok"),
        by_cell[numbers].median().set_axis(list(MEDIANS), axis=1),
        *(by_cell[["wall_s", "cpu_s"]].quantile(q / 100).set_axis([f"wall_q{q}_s", f"cpu_q{q}_s"], axis=1)
          for q in (25, 75)),
    ], axis=1).reset_index()
    summary["n_ok"] = summary["n_ok"].fillna(0).astype(int)
    summary["wall_iqr_s"] = summary["wall_q75_s"] - summary["wall_q25_s"]
    summary["cpu_iqr_s"] = summary["cpu_q75_s"] - summary["cpu_q25_s"]
    summary["wall_rel_iqr"] = (summary["wall_iqr_s"] / summary["wall_median_s"]).where(summary["n_ok"] >= 2)
    summary["noisy"] = summary["wall_rel_iqr"] >= NOISY_REL_IQR
    share = pd.to_numeric(ok[OTHERS_SHARE], errors="coerce")
    counts = ok.assign(busy=share.map(busy), measured=share.notna()).groupby(CELL_KEY)[["busy", "measured"]].sum()
    summary = summary.join(counts, on=CELL_KEY)
    # empty where the cell's runs recorded no share (an earlier harness): not measured is not "0 busy runs"
    summary[BUSY_RUNS] = summary["busy"].fillna(0).astype("Int64").mask(summary["measured"] == 0)
    summary["gemm_efficiency"] = summary["gemm_floor_median_s"] / summary["wall_median_s"]
    summary = summary.join(_comparisons(summary, cells))
    return summary.reindex(columns=columns).sort_values(["threads", "batch_size", "framework", "variant"],
                                                        ignore_index=True)


def cell_key(row: dict) -> tuple:
    return tuple(row[k] for k in CELL_KEY)


def _fastest(rows: list[dict], metric: str) -> dict | None:
    rows = [r for r in rows if np.isfinite(r[metric])]
    return min(rows, key=lambda r: r[metric]) if rows else None


def _comparisons(summary: pd.DataFrame, cells: dict) -> pd.DataFrame:
    """Per row, the reference variants, speed-ups, intervals, verdicts and break-even epochs."""
    records = summary.to_dict("index")
    out = {i: {} for i in records}
    groups: dict[tuple, list[int]] = {}
    for i, row in records.items():
        groups.setdefault((row["batch_size"], row["threads"]), []).append(i)
    for members in groups.values():
        rows = [records[i] for i in members]
        peers = [r for r in rows if r["framework"] != "numpy"]
        step3 = [r for r in rows if (r["framework"], r["variant"]) == ("numpy", "step3")]
        targets = {"best_peer": peers, "step3": step3}
        targets.update({f"best_{name}": [r for r in rows if r["framework"] == name] for name in peer_frameworks()})
        for steady in (False, True):
            metric = "steady_epoch_median_s" if steady else "wall_median_s"
            for reference, candidates in targets.items():
                ref = _fastest(candidates, metric)
                if ref is None:
                    continue
                named = f"{ref['framework']}/{ref['variant']}" if reference == "best_peer" else ref["variant"]
                for i in members:
                    if reference != "step3":
                        out[i][reference_column(reference, steady)] = named
                    out[i].update(_speedup(records[i], ref, cells, steady, speedup_column(reference, steady)))
        ref = _fastest(peers, "steady_epoch_median_s")
        for i in members if ref is not None else ():
            out[i].update(_break_even_of(records[i], ref, cells))
    return pd.DataFrame.from_dict(out, orient="index")


def _speedup(row, ref, cells, steady: bool, name: str) -> dict:
    metric = "steady_epoch_median_s" if steady else "wall_median_s"
    result = {name: ref[metric] / row[metric]}
    if cell_key(row) == cell_key(ref):
        return {**result, f"{name}_lo": 1.0, f"{name}_hi": 1.0, f"{name}_verdict": REFERENCE}
    cell, ref_cell = cells.get(cell_key(row)), cells.get(cell_key(ref))
    lo = hi = np.nan
    if cell is not None and ref_cell is not None:
        draws = (ref_cell.steady / cell.steady) if steady else (ref_cell.wall / cell.wall)
        if np.isfinite(draws).all():
            lo, hi = interval(draws)
    result.update({f"{name}_lo": lo, f"{name}_hi": hi})
    if np.isfinite(result[name]):
        result[f"{name}_verdict"] = verdict(lo, hi)
    return result


def _break_even_of(row, ref, cells) -> dict:
    args = (row["first_epoch_median_s"], row["steady_epoch_median_s"], ref["first_epoch_median_s"],
            ref["steady_epoch_median_s"])
    result = {"break_even_epochs": float(break_even(*args))}
    cell, ref_cell = cells.get(cell_key(row)), cells.get(cell_key(ref))
    if np.isfinite(result["break_even_epochs"]) and cell is not None and ref_cell is not None:
        lo, hi = interval(_break_even_draws(cell, ref_cell, a_wins=args[1] < args[3]))
        result.update(break_even_epochs_lo=lo, break_even_epochs_hi=hi)
    return result


def busy_sentence(summary: pd.DataFrame) -> str:
    """What to say of the runs made while other processes took a notable share of the cores (harness.noise,
    reports.stats.busy), and of the cells whose runs did not record it, for the console and the report; '' when
    every cell's runs recorded it and none was busy."""
    counts = pd.to_numeric(summary.get(BUSY_RUNS, pd.Series(dtype=float)), errors="coerce")
    parts, unknown = [], int(counts.isna().sum())
    if counts.fillna(0).sum():
        cells = counts[counts > 0]
        parts.append(f"{int(cells.sum())} run(s) in {len(cells)} cell(s) ran while other processes took "
                     f"{BUSY_SHARE:.0%} or more of the cores ({BUSY_RUNS} in summary.csv, {OTHERS_SHARE} in runs.csv): "
                     "their times include waiting for the CPU; rerun the study on an idle machine.")
    if unknown:
        which = ("No cell's runs recorded" if unknown == len(counts)
                 else f"The runs of {unknown} of {len(counts)} cells did not record")
        parts.append(f"{which} how busy the machine was ({OTHERS_SHARE} is empty in runs.csv: made by a "
                     "harness from before it was recorded), so runs that shared the cores cannot be flagged there.")
    return " ".join(parts)


def noisy_cell_lines(summary_csv: Path) -> list[str]:
    """What the end of a study's console output says about its spreads: each noisy cell with what to do, the runs
    of a busy machine (harness.noise, reports.stats.busy), and how many cells have one run and so no interval."""
    if not Path(summary_csv).is_file():
        return []
    summary = pd.read_csv(summary_csv)
    lines = []
    for row in summary[summary["noisy"] == True].itertuples(index=False):  # noqa: E712 - NaN-safe
        lines.append(f"noisy: {row.framework}/{row.variant} at batch {row.batch_size}, {row.threads} "
                     f"thread{'s' if row.threads != 1 else ''}: its {row.n_ok} runs spread {row.wall_rel_iqr:.0%} "
                     f"(IQR / median; flagged from {NOISY_REL_IQR:.1%})")
    if lines:
        lines.append("    the verdicts of noisy cells are uncertain: rerun them with more --repeats (e.g. 5), "
                     "on a quieter machine")
    if busy_sentence(summary):
        lines.append(f"busy: {busy_sentence(summary)}")
    single = int((summary["n_ok"] == 1).sum())
    if single:
        lines.append(f"{single} of {len(summary)} cells have one run: no interval and no verdict for them "
                     "(--repeats 3 or more gives them one)")
    return lines
