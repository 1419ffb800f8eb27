"""Accuracy parity between numpy_mlp and keras_baseline on the real MNIST (the slow, end-to-end gate)."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import mnist_dir
from harness.parity import parity_table, verdict

ROOT = Path(__file__).resolve().parents[1]

# CI-sized parity: the reference configuration (35 epochs, full MNIST, both batch sizes) with one seed,
# about 3 minutes on 2 cores. The full check (3 seeds) is `python -m harness parity`, see the README.
CI_SEEDS = int(os.environ.get("PARITY_SEEDS", "1"))


def parity(*args, env=None, timeout=3000):
    environment = dict(os.environ, MNIST_DIR=str(mnist_dir()), **(env or {}))
    return subprocess.run([sys.executable, "-m", "harness", "parity", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.keras
def test_numpy_and_keras_reach_the_same_test_accuracy(tmp_path, mnist):
    out = tmp_path / "parity"
    result = parity("--seeds", str(CI_SEEDS), "--out", str(out))
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    table = pd.read_csv(out / "parity.csv")
    assert set(table["variant"]) == {"optimized", "fit", "fit-tuned", "loop"}
    assert set(table["batch_size"]) == {500, 20000}
    assert (table["diff_pp"].abs() <= table["band_pp"]).all()
    assert (table.loc[table["batch_size"] == 500, "median"] >= 0.96).all()


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.keras
def test_a_broken_model_fails_the_parity_check(tmp_path, mnist):
    """A sign flipped in one gradient (tests/broken_variants.py) must be caught."""
    out = tmp_path / "parity"
    result = parity(
        "--numpy-variant", "broken-sign", "--variants", "fit-tuned", "--batch-sizes", "500",
        "--epochs", "5", "--seeds", "1", "--train-limit", "10000", "--out", str(out),
        env={"MLP_STUDY_PLUGINS": "tests.broken_variants"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "parity FAILED: keras/fit-tuned at batch 500" in result.stdout


def _runs(accuracies: dict) -> pd.DataFrame:
    rows = []
    for (framework, variant, batch_size), values in accuracies.items():
        for seed, acc in enumerate(values):
            rows.append(dict(framework=framework, variant=variant, batch_size=batch_size, seed=seed, repeat=seed,
                             instrumented=False, status="ok", test_acc=acc))
    return pd.DataFrame(rows)


def test_verdict_bands_and_floor():
    runs = _runs({
        ("numpy", "optimized", 500): [0.962, 0.965, 0.963],
        ("keras", "fit", 500): [0.960, 0.961, 0.966],  # median 0.961: -0.2 pp, inside 0.5
        ("keras", "loop", 500): [0.955, 0.956, 0.957],  # median 0.956: -0.7 pp, outside, and below 96 %
        ("numpy", "optimized", 20000): [0.915, 0.918, 0.912],
        ("keras", "fit", 20000): [0.906, 0.907, 0.930],  # median 0.907: -0.8 pp, inside 1.0
    })
    table = parity_table(runs)
    row = table.set_index(["batch_size", "variant"]).loc[(500, "fit")]
    assert row["median"] == pytest.approx(0.961) and row["diff_pp"] == pytest.approx(-0.2)
    assert row["seed_0"] == 0.960 and row["seed_2"] == 0.966
    problems = verdict(table, floor_applies=True)
    assert len(problems) == 2 and all("keras/loop at batch 500" in p for p in problems)
    assert verdict(table, floor_applies=False) == [problems[0]]


def test_parity_bad_input_exits_2():
    result = parity("--variants", "nope", timeout=60)
    assert result.returncode == 2 and "unknown keras variant 'nope'" in result.stderr and "Traceback" not in result.stderr
