"""Intervals, verdicts, noisy cells, break-even epochs (reports.stats.summary) and the shuffled run order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.plan import StudyPlan
from reports.folder.schema import FASTER, NO_INTERVAL, REFERENCE, SLOWER, UNCLEAR
from reports.stats.summary import NOISY_REL_IQR, noisy_cell_lines, summarize


def run_rows(framework, variant, walls, first=None, steady=None, batch_size=500, threads=2):
    """runs.csv rows of one cell: one per wall time, first and steady epoch times as given."""
    rows = []
    for repeat, wall in enumerate(walls):
        rows.append(dict(framework=framework, variant=variant, batch_size=batch_size, threads=threads,
                         repeat=repeat, instrumented=False, status="ok", wall_s=wall, cpu_s=wall,
                         first_epoch_wall_s=wall / 10 if first is None else first[repeat],
                         steady_epoch_wall_s=wall / 10 if steady is None else steady[repeat],
                         test_acc=0.96, train_acc=0.97))
    return rows


def pair_summary(numpy_walls, peer_walls, seed=0, n_resamples=2000):
    runs = pd.DataFrame(run_rows("numpy", "optimized", numpy_walls) + run_rows("tensorflow", "loop", peer_walls))
    return summarize(runs, seed=seed, n_resamples=n_resamples).set_index("framework").loc["numpy"]


def test_interval_covers_a_known_ratio_and_identical_cells_are_no_clear_difference():
    rows = []
    for seed in range(200):  # 200 independent studies, told apart by their batch size
        rng = np.random.default_rng(seed)
        rows += run_rows("tensorflow", "loop", rng.lognormal(np.log(15.0), 0.2, 5), batch_size=seed + 1)
        rows += run_rows("numpy", "optimized", rng.lognormal(np.log(10.0), 0.2, 5), batch_size=seed + 1)  # 1.5x
        rows += run_rows("numpy", "step3", rng.lognormal(np.log(15.0), 0.2, 5), batch_size=seed + 1)  # as the peer
    summary = summarize(pd.DataFrame(rows), n_resamples=1000).set_index("variant")
    fast, same = summary.loc["optimized"], summary.loc["step3"]
    assert len(fast) == len(same) == 200
    covered = (fast["speedup_vs_best_peer_lo"] <= 1.5) & (1.5 <= fast["speedup_vs_best_peer_hi"])
    assert covered.sum() >= 180  # 90 % of 200
    assert (same["speedup_vs_best_peer_verdict"] == UNCLEAR).sum() >= 170


def test_same_seed_same_interval_and_verdicts_follow_the_interval():
    rng = np.random.default_rng(7)
    numpy_walls, peer_walls = rng.lognormal(2.3, 0.1, 9), rng.lognormal(2.7, 0.1, 9)
    a, b = pair_summary(numpy_walls, peer_walls), pair_summary(numpy_walls, peer_walls)
    assert (a["speedup_vs_best_peer_lo"], a["speedup_vs_best_peer_hi"]) == (
        b["speedup_vs_best_peer_lo"], b["speedup_vs_best_peer_hi"])
    seeded = {tuple(pair_summary(numpy_walls, peer_walls, seed=seed)[["speedup_vs_best_peer_lo",
                                                                       "speedup_vs_best_peer_hi"]])
              for seed in range(5)}
    assert len(seeded) > 1  # the seed is used
    assert a["speedup_vs_best_peer_lo"] > 1 and a["speedup_vs_best_peer_verdict"] == FASTER
    slow = pair_summary(peer_walls * 1.2, peer_walls)
    assert slow["speedup_vs_best_peer_hi"] < 1 and slow["speedup_vs_best_peer_verdict"] == SLOWER


def test_one_run_cells_have_no_interval_and_the_reference_is_itself():
    summary = summarize(pd.DataFrame(run_rows("numpy", "optimized", [5.0])
                                     + run_rows("tensorflow", "loop", [6.0, 7.0])))
    numpy, tensorflow = summary.set_index("framework").loc["numpy"], summary.set_index("framework").loc["tensorflow"]
    assert numpy["speedup_vs_best_peer"] == pytest.approx(6.5 / 5.0)
    assert np.isnan(numpy["speedup_vs_best_peer_lo"]) and numpy["speedup_vs_best_peer_verdict"] == NO_INTERVAL
    assert np.isnan(numpy["wall_rel_iqr"]) and not numpy["noisy"]
    assert tensorflow["speedup_vs_best_peer_verdict"] == REFERENCE and tensorflow["best_peer"] == "tensorflow/loop"


def test_steady_interval_resamples_the_epochs_within_runs():
    runs = pd.DataFrame(run_rows("numpy", "optimized", [10.0, 10.0, 10.0], steady=[0.2] * 3)
                        + run_rows("tensorflow", "loop", [12.0, 12.0, 12.0], steady=[0.3] * 3))
    epochs = [dict(framework="tensorflow", variant="loop", batch_size=500, threads=2, repeat=r, instrumented=False,
                   epoch=e, wall_s=0.3 + 0.1 * ((e + r) % 3 - 1)) for r in range(3) for e in range(2, 12)]
    epochs += [dict(framework="numpy", variant="optimized", batch_size=500, threads=2, repeat=r, instrumented=False,
                    epoch=e, wall_s=0.2) for r in range(3) for e in range(2, 12)]
    without = summarize(runs).set_index("framework").loc["numpy"]
    with_epochs = summarize(runs, pd.DataFrame(epochs)).set_index("framework").loc["numpy"]
    # identical runs: only the epoch-to-epoch noise of epochs.csv can widen the interval
    assert without["steady_speedup_vs_best_peer_lo"] == without["steady_speedup_vs_best_peer_hi"] == pytest.approx(1.5)
    assert with_epochs["steady_speedup_vs_best_peer_hi"] - with_epochs["steady_speedup_vs_best_peer_lo"] > 0.2
    # a run whose epochs are missing from epochs.csv counts with its steady_epoch_wall_s alone
    partial = pd.DataFrame([e for e in epochs if (e["framework"], e["repeat"]) != ("tensorflow", 2)])
    row = summarize(runs, partial).set_index("framework").loc["numpy"]
    assert 1.0 < row["steady_speedup_vs_best_peer_lo"] < 1.5 < row["steady_speedup_vs_best_peer_hi"] < 2.0


def test_noisy_cells_are_flagged_and_printed(tmp_path):
    quiet = [10.0, 10.2, 9.9]
    noisy = [10.0, 14.0, 9.0]  # IQR / median 0.25
    runs = pd.DataFrame(run_rows("numpy", "optimized", noisy) + run_rows("tensorflow", "loop", quiet)
                        + run_rows("tensorflow", "fit", [20.0]))
    summary = summarize(runs).set_index("variant")
    assert summary.loc["optimized", "noisy"] and summary.loc["optimized", "wall_rel_iqr"] > NOISY_REL_IQR
    assert not summary.loc["loop", "noisy"]
    path = tmp_path / "summary.csv"
    summary.reset_index().to_csv(path, index=False)
    lines = noisy_cell_lines(path)
    assert any(line.startswith("noisy: numpy/optimized at batch 500") for line in lines)
    assert not any("tensorflow/loop" in line for line in lines)
    assert any("1 of 3 cells have one run" in line for line in lines)
    assert noisy_cell_lines(tmp_path / "absent.csv") == []


def test_break_even_equals_the_closed_form():
    first_numpy, steady_numpy, first_peer, steady_peer = 0.25, 0.30, 2.25, 0.20  # the peer compiles, then runs faster
    runs = pd.DataFrame(run_rows("numpy", "step3", [10.0] * 3, first=[first_numpy] * 3, steady=[steady_numpy] * 3)
                        + run_rows("tensorflow", "loop", [9.0] * 3, first=[first_peer] * 3, steady=[steady_peer] * 3)
                        + run_rows("numpy", "optimized", [6.0] * 3, first=[0.2] * 3, steady=[0.15] * 3))
    summary = summarize(runs).set_index("variant")
    closed = 1 + (first_peer - first_numpy) / (steady_numpy - steady_peer)  # 21: both took 0.25 + 20 * 0.30 s
    assert closed == pytest.approx(21.0)
    step3 = summary.loc["step3"]
    assert step3["break_even_epochs"] == pytest.approx(closed)
    assert (step3["break_even_epochs_lo"] == pytest.approx(closed)
            and step3["break_even_epochs_hi"] == pytest.approx(closed))
    assert np.isnan(summary.loc["optimized", "break_even_epochs"])  # faster in both: no flip


def test_break_even_interval_reaches_never_when_the_steady_winner_is_uncertain():
    rng = np.random.default_rng(3)
    steady_numpy = rng.normal(0.30, 0.03, 5)
    runs = pd.DataFrame(run_rows("numpy", "step3", [10.0] * 5, first=[0.25] * 5, steady=steady_numpy)
                        + run_rows("tensorflow", "loop", [9.0] * 5, first=[2.0] * 5, steady=rng.normal(0.28, 0.03, 5)))
    row = summarize(runs).set_index("variant").loc["step3"]
    assert row["break_even_epochs_lo"] <= row["break_even_epochs"] and row["break_even_epochs_hi"] == np.inf


def test_each_round_of_repeats_is_shuffled_with_the_seed():
    def plan(seed):
        return StudyPlan(frameworks=("numpy", "tensorflow"), variants={"numpy": ("step3", "optimized"),
                                                               "tensorflow": ("fit", "loop")},
                         batch_sizes=(500, 20000), epochs=2, repeats=3, threads=(2,), seed=seed, train_limit=None,
                         phase_epochs=1, eval_every_epoch=True)

    runs = plan(0).runs()
    timed = [r for r in runs if not r.instrumented]
    assert [r.repeat for r in timed] == sorted(r.repeat for r in timed)  # rounds stay in order
    rounds = [[(r.framework, r.variant, r.batch_size) for r in timed if r.repeat == k] for k in range(3)]
    assert all(sorted(order) == sorted(rounds[0]) for order in rounds) and len(set(rounds[0])) == 8
    assert len({tuple(order) for order in rounds}) > 1  # not the same order in every round
    assert runs == plan(0).runs()  # the same seed, the same order (a resumed study keeps it)
    assert runs != plan(1).runs()
    assert all(r.instrumented for r in runs[len(timed):])  # the phase-timed runs last
