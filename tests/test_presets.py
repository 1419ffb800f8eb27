"""Presets with a grid plus extra blocks (harness.plan): their expansion into runs, and their round trip
through study.json for a resume."""
from __future__ import annotations

import json
from collections import Counter

from harness.__main__ import build_parser, plan_from_args
from harness.plan import DEFAULT_PRESET, PRESETS, Extra, StudyPlan
from keras_baseline.runtime import all_cores
from harness.plan import read_plan


def plan(*argv) -> StudyPlan:
    return plan_from_args(build_parser().parse_args(["run", *argv]))


def test_the_default_preset_answers_grid_plus_ladder_and_fit_without_duplicates():
    assert DEFAULT_PRESET == "answer"
    p = plan()
    runs = p.runs()
    assert len({r.key for r in runs}) == len(runs)
    timed = [r for r in runs if not r.instrumented]
    cells = Counter((r.framework, r.variant, r.batch_size, r.threads) for r in timed)
    threads = sorted({all_cores(), 1})
    assert len(p.batch_sizes) >= 5 and min(p.batch_sizes) == 32 and max(p.batch_sizes) == 20000 and p.repeats >= 3
    for fw, v in (("numpy", "optimized"), ("tensorflow", "loop"), ("jax", "loop")):
        assert all(cells[(fw, v, b, t)] == p.repeats for b in p.batch_sizes for t in threads)
    for fw, v in (("numpy", "step1"), ("numpy", "step3"), ("tensorflow", "fit"), ("jax", "fit")):
        assert {(b, t) for f, var, b, t in cells if (f, var) == (fw, v)} == {(500, all_cores()), (20000, all_cores())}
    assert cells[("numpy", "original", 500, all_cores())] == 1  # once
    assert not any(r.variant == "loop-compiled" for r in runs if r.framework in ("numpy", "tensorflow", "jax"))
    numpy_cells = {c for c in cells if c[0] == "numpy"}
    assert {(r.framework, r.variant, r.batch_size, r.threads) for r in runs if r.instrumented} == numpy_cells


def test_a_cell_of_both_grid_and_extras_runs_once_and_extras_survive_study_json(tmp_path):
    p = plan("--preset", "quick")
    p.extras = (Extra({"numpy": ("optimized", "step3")}, (p.batch_sizes[0],), p.threads),)
    runs = p.runs()
    assert len({r.key for r in runs}) == len(runs)
    assert sum(r.variant == "optimized" and r.batch_size == p.batch_sizes[0] for r in runs) == p.repeats + 1
    assert sum(r.variant == "step3" for r in runs) == p.repeats + 1
    (tmp_path / "study.json").write_text(json.dumps(p.to_dict()))
    assert read_plan(tmp_path / "study.json").runs() == runs


def test_quick_gives_verdicts_and_changing_the_grid_drops_the_extras():
    quick = PRESETS["quick"]
    assert quick.repeats >= 2 and len(quick.batch_sizes) >= 2
    assert plan("--batch-sizes", "500").extras == () and plan("--epochs", "3").extras == plan().extras
