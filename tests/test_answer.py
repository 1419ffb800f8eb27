"""The answer's tables on synthetic studies: the winner map (reports.stats.winners) and the per-step cost model with
its crossovers (reports.stats.cost_model) against their closed forms."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from reports.stats import cost_model, tables, winners
from reports.folder.schema import (ALWAYS, CLEAR, COST_MODEL_FILE, CROSSOVERS_FILE, NEVER, NO_CLEAR_WINNER,
                                   SUMMARY_FILE, WINNERS_FILE)
from reports.stats.summary import summarize

JITTER = (1.0, 1.01, 0.99, 1.005, 0.995)  # five repeats around the given medians (which they keep)


def cell(framework, variant, first, steady, batch_size=500, threads=2, jitter=JITTER, **extra):
    """runs.csv rows of one cell whose median first and steady epochs are ``first`` and ``steady``."""
    return [dict(framework=framework, variant=variant, batch_size=batch_size, threads=threads, repeat=r,
                 instrumented=False, status="ok", wall_s=(first + 9 * steady) * j, cpu_s=first + 9 * steady,
                 first_epoch_wall_s=first * j, steady_epoch_wall_s=steady * j, test_acc=0.9, train_acc=0.9) | extra
            for r, j in enumerate(jitter)]


def answer(rows, study=None):
    return tables.compute(pd.DataFrame(rows), None, study or {"epochs": 10})


def test_winner_map_follows_the_closed_form_with_a_break_even_and_a_cell_without_a_clear_winner():
    rows = (cell("numpy", "optimized", 1.0, 0.5) + cell("jax", "loop", 3.0, 0.3)  # tie at 1 + 2 / 0.2 = 11 epochs
            + cell("numpy", "optimized", 1.0, 0.2, batch_size=20000)
            + cell("tensorflow", "loop", 1.0, 0.2, batch_size=20000, jitter=(1.0, 1.02, 0.98, 1.01, 0.99))
            # neither counts: a much faster instrumented run and a failed one
            + cell("numpy", "step3", 0.01, 0.01, instrumented=True)
            + [dict(cell("numpy", "step1", 0.01, 0.01)[0], status="failed")])
    out = answer(rows)[WINNERS_FILE]
    assert sorted(out["epochs"].unique()) == winners.epoch_grid(10) and 300 in winners.epoch_grid(10)
    at500 = out[out["batch_size"] == 500].set_index("epochs")
    assert set(at500["winner"]) | set(at500["runner_up"]) == {"numpy/optimized", "jax/loop"}
    for e, row in at500.iterrows():
        numpy_s, jax_s = 1.0 + (e - 1) * 0.5, 3.0 + (e - 1) * 0.3
        assert row["winner"] == ("numpy/optimized" if numpy_s < jax_s else "jax/loop")
        assert row["ratio"] == pytest.approx(max(numpy_s, jax_s) / min(numpy_s, jax_s))
        assert row["ratio_lo"] <= row["ratio"] <= row["ratio_hi"]
    assert at500.loc[1, "lead"] == at500.loc[300, "lead"] == CLEAR
    assert at500.loc[20, "break_even_epochs"] == pytest.approx(11.0)  # the winner changes between 10 and 20
    assert at500["break_even_epochs"].notna().sum() == 1
    at20000 = out[out["batch_size"] == 20000]
    assert (at20000["lead"] == NO_CLEAR_WINNER).all() and (at20000["ratio_lo"] < 1).all()


def test_winner_map_of_cells_with_one_run_has_no_interval():
    rows = cell("numpy", "optimized", 1.0, 0.5, jitter=(1.0,)) + cell("jax", "loop", 3.0, 0.3, jitter=(1.0,))
    out = answer(rows)[WINNERS_FILE]
    assert (out["lead"] == "no interval").all() and out["ratio_lo"].isna().all()


N = 60_000
BATCHES = (32, 128, 500, 2000, 20000)


def model_cells(framework, variant, step_cost, sample_cost, threads=2):
    """Cells whose steady epochs follow steps x step_cost + N x sample_cost exactly (in their median)."""
    return [row for b in BATCHES for row in cell(framework, variant, 1.0,
                                                 math.ceil(N / b) * step_cost + N * sample_cost, batch_size=b,
                                                 threads=threads)]


def test_cost_model_recovers_known_costs_and_the_crossover_in_closed_form():
    rows = (model_cells("numpy", "optimized", 2e-4, 2e-6) + model_cells("jax", "loop", 5e-5, 4e-6)
            + model_cells("tensorflow", "loop", 3e-4, 5e-6) + model_cells("tensorflow", "fit", 4e-4, 8e-6))
    out = answer(rows, {"epochs": 10, "train_limit": None})
    fitted = out[COST_MODEL_FILE].drop_duplicates(["framework", "variant"]).set_index(["framework", "variant"])
    for key, (a, c) in {("numpy", "optimized"): (2e-4, 2e-6), ("jax", "loop"): (5e-5, 4e-6),
                        ("tensorflow", "loop"): (3e-4, 5e-6)}.items():
        row = fitted.loc[key]
        assert row["step_cost_s"] == pytest.approx(a, rel=1e-6) and row["sample_cost_s"] == pytest.approx(c, rel=1e-6)
        assert row["step_cost_lo_s"] <= a <= row["step_cost_hi_s"]
        assert row["sample_cost_lo_s"] <= c <= row["sample_cost_hi_s"]
        assert row["max_residual_rel"] < 1e-9 and not row["bad_fit"]
    crossings = out[CROSSOVERS_FILE].set_index("framework")
    jax = crossings.loc["jax"]  # NumPy faster from b* = (2e-4 - 5e-5) / (4e-6 - 2e-6) = 75
    assert (jax["variant"], jax["kind"]) == ("loop", "from") and jax["batch_size"] == pytest.approx(75.0, rel=1e-6)
    assert jax["batch_size_lo"] <= 75.0 <= jax["batch_size_hi"]
    tensorflow = crossings.loc["tensorflow"]  # its fastest variant is loop; NumPy has the lower cost of both kinds
    assert (tensorflow["variant"], tensorflow["kind"], tensorflow["clear"]) == ("loop", ALWAYS, True)
    assert math.isnan(tensorflow["batch_size"])


def test_a_variant_measured_at_two_batch_sizes_gets_no_fit():
    """Two costs pass through two points exactly: such a curve would be drawn and extrapolated untested."""
    two = [row for row in model_cells("tensorflow", "fit", 4e-4, 8e-6) if row["batch_size"] in (500, 20000)]
    fitted = answer(model_cells("numpy", "optimized", 2e-4, 2e-6) + two)[COST_MODEL_FILE]
    assert set(fitted["variant"]) == {"optimized"}


def test_crossover_kinds_and_a_bad_fit_is_flagged():
    kind, b = cost_model.crossover([1e-4, -1e-4, 1e-4, -1e-4], [2e-6, 2e-6, -2e-6, -2e-6])
    assert list(kind) == ["from", ALWAYS, NEVER, "up to"] and b[0] == pytest.approx(50.0) and b[3] == pytest.approx(50)
    rows = model_cells("numpy", "optimized", 2e-4, 2e-6)
    for row in rows:
        if row["batch_size"] == 500:
            row["steady_epoch_wall_s"] *= 1.5  # far off the model
    fitted = answer(rows)[COST_MODEL_FILE]
    assert fitted["bad_fit"].all() and fitted["max_residual_rel"].iloc[0] >= cost_model.BAD_FIT


def test_summary_is_the_same_with_the_shared_draws():
    runs = pd.DataFrame(cell("numpy", "optimized", 1.0, 0.5) + cell("jax", "loop", 3.0, 0.3))
    assert answer(runs.to_dict("records"))[SUMMARY_FILE].equals(summarize(runs))


def test_an_always_of_the_fit_is_not_clear_when_the_draws_disagree():
    # NumPy a hair cheaper per step and per sample: "always" by the fit, but 1 % noise flips it in resamples
    rows = model_cells("numpy", "optimized", 2e-4, 2e-6) + model_cells("jax", "loop", 2.005e-4, 2.005e-6)
    crossing = answer(rows)[CROSSOVERS_FILE].iloc[0]
    assert crossing["kind"] == ALWAYS and not crossing["clear"]
    assert crossing["batch_size_lo"] < 32 and crossing["batch_size_hi"] > 20000


def test_a_study_without_a_cost_model_says_why_under_its_heading():
    """The quick preset runs two batch sizes: its report's 'Why' section says what a cost model needs instead of
    standing empty."""
    from reports.answer import fit_note

    note = fit_note(pd.DataFrame(), [128, 2000])
    assert f"{cost_model.MIN_POINTS} or more batch sizes" in note and "128 and 2,000" in note
