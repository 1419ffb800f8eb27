"""Accuracy parity between numpy_mlp and every peer framework on the real MNIST (the slow, end-to-end
gate), and the gate shown failing for the right reason: ONE parity run trains the peers once and judges
the control (`optimized`) and the broken variants of tests/broken_variants.py against them under
identical settings. A broken model's failure means something only because the control passes."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import mnist_dir
from reports.stats.parity import (ACCURACY_FLOOR, BAND_SIGMAS, accuracy_table, band_pp, measured_spread,
                                  parity_failures, parity_table)
from harness.__main__ import main
from reports.folder.schema import available_frameworks, variant_descriptions

ROOT = Path(__file__).resolve().parents[1]

# CI-sized parity: the reference configuration (35 epochs, full MNIST, batch 500 and 20000) with one
# seed, and of each peer framework its fastest variants: its own loop and Keras' tuned fit (one fed
# numpy_mlp's batch order, one Keras' shuffling); 'fit' (Keras' defaults, one call per batch, the
# slowest) and PyTorch's compiled loop (the same loop as 'loop', plus a compilation) are left to the
# full check, `python -m harness parity` (3 seeds, every variant), see docs/parity.md. So a framework
# added costs CI two runs per batch size, not one per variant.
CI_SEEDS = int(os.environ.get("PARITY_SEEDS", "1"))
CI_VARIANTS = ("loop", "fit-tuned")
CONTROL = "optimized"
# Bugs the gate's accuracy sees. The third bug, L2 on the biases too (broken-bias-l2), moves the test
# accuracy by far less than a band: only tests/test_broken_variants.py catches it.
CAUGHT = ("broken-sign", "broken-mean")
PLUGIN = {"MLP_STUDY_PLUGINS": "tests.broken_variants"}


def parity(*args, env=None, timeout=3000):
    environment = dict(os.environ, MNIST_DIR=str(mnist_dir()), **(env or {}))
    return subprocess.run([sys.executable, "-m", "harness", "parity", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def gate(tmp_path_factory, mnist):
    """One parity run: the control and each caught bug against every peer, trained once."""
    out = tmp_path_factory.mktemp("parity") / "parity"
    result = parity("--seeds", str(CI_SEEDS), "--variants", *CI_VARIANTS, CONTROL, *CAUGHT,
                    "--out", str(out), env=PLUGIN)
    print(result.stdout)
    assert result.returncode in (0, 1) and (out / "parity.csv").exists(), result.stdout + result.stderr
    return result, pd.read_csv(out / "parity.csv")


def assert_control_holds(gate):
    result, table = gate
    control = table[table["numpy_variant"] == CONTROL]
    peers = {(f, v) for f in available_frameworks() if f != "numpy"
             for v in variant_descriptions()[f] if v in CI_VARIANTS}
    assert {f for f, _ in peers} == set(available_frameworks()) - {"numpy"}  # every peer installed takes part
    assert set(zip(control["framework"], control["variant"])) == peers
    assert set(control["batch_size"]) == {500, 20000}
    assert (control["diff_pp"].abs() <= control["band_pp"]).all(), result.stdout
    at_500 = control[control["batch_size"] == 500]
    assert (at_500["median"] >= ACCURACY_FLOOR).all() and (at_500["numpy_median"] >= ACCURACY_FLOOR).all()
    assert f"parity holds for numpy/{CONTROL}:" in result.stdout
    assert f"parity FAILED for numpy/{CONTROL}" not in result.stdout


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.keras
def test_numpy_and_every_peer_reach_the_same_test_accuracy(gate):
    assert_control_holds(gate)


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.keras
@pytest.mark.parametrize("broken", CAUGHT)
def test_a_broken_model_fails_the_parity_check(gate, broken):
    """The broken model is out of its band against a peer, judged in the run in which the control passes."""
    assert_control_holds(gate)
    result, table = gate
    rows = table[table["numpy_variant"] == broken]
    assert (rows["diff_pp"].abs() > rows["band_pp"]).any(), result.stdout
    assert result.returncode == 1 and f"parity FAILED for numpy/{broken}: " in result.stdout


def _accuracies(per_model: dict) -> pd.DataFrame:
    rows = []
    for (framework, variant, batch_size), values in per_model.items():
        for seed, acc in enumerate(values):
            rows.append(dict(framework=framework, variant=variant, batch_size=batch_size, seed=seed, repeat=seed,
                             instrumented=False, status="ok" if acc is not None else "failed", test_acc=acc))
    return accuracy_table(pd.DataFrame(rows))


def test_bands_come_from_the_measured_spread(tmp_path):
    record = tmp_path / "bands.json"
    record.write_text('{"test_accuracy": {"500": {"numpy/optimized": [0.960, 0.962],'
                      ' "tensorflow/loop": [0.961, 0.965]},'
                      ' "20000": {"numpy/optimized": [0.90, 0.91, 0.92]}}}')
    spread = measured_spread(record)
    # pooled: the mean of the sample variances (2e-6 and 8e-6), in percentage points
    assert spread[500] == pytest.approx(100 * math.sqrt(5e-6)) and spread[20000] == pytest.approx(1.0)
    assert band_pp(20000, 1, spread) == pytest.approx(BAND_SIGMAS * math.sqrt(math.pi))
    assert band_pp(20000, 4, spread) == pytest.approx(band_pp(20000, 1, spread) / 2)
    assert band_pp(2000, 1, spread) == band_pp(500, 1, spread)  # nearer to 500 than to 20000 on a log scale
    assert set(measured_spread()) == {500, 20000}  # the committed measurement


def test_verdict_per_numpy_variant_against_every_peer():
    spread = {500: 0.1, 20000: 0.4}  # bands at 3 seeds: 0.31 and 1.23 pp
    accuracies = _accuracies({
        ("numpy", "optimized", 500): [0.962, 0.965, 0.963],
        ("numpy", "broken", 500): [0.950, 0.951, 0.952],  # -1.2 pp from every peer, and below 96 %
        ("tensorflow", "fit", 500): [0.960, 0.962, 0.966],  # median 0.962: optimized +0.1 pp, inside
        ("jax", "loop", 500): [0.963, 0.964, 0.963],
        ("numpy", "optimized", 20000): [0.915, 0.918, 0.912],
        ("numpy", "broken", 20000): [0.915, 0.918, 0.912],
        ("tensorflow", "fit", 20000): [0.906, 0.907, 0.930],  # median 0.907: optimized +0.8 pp, inside 1.23
        ("jax", "loop", 20000): [0.915, None, 0.912],  # a failed run fails every numpy variant
    })
    assert list(accuracies.columns) == ["batch_size", "framework", "variant", "seed_0", "seed_1", "seed_2",
                                        "median", "failed_runs"]
    table = parity_table(accuracies, ["optimized", "broken"], 3, spread)
    row = (table.set_index(["numpy_variant", "batch_size", "framework", "variant"])
           .loc[("optimized", 500, "tensorflow", "fit")])
    assert row["numpy_median"] == 0.963 and row["diff_pp"] == pytest.approx(0.1)
    assert row["band_pp"] == pytest.approx(3 * 0.1 * math.sqrt(math.pi / 3))
    problems = parity_failures(accuracies, table, floor_applies=True)
    failed_run = "jax/loop at batch 20000: 1 run(s) failed"
    assert problems["optimized"] == [failed_run]
    assert problems["broken"][0] == "numpy/broken at batch 500: median test accuracy 0.9510 below 0.96"
    assert problems["broken"][1:] == [
        "at batch 500: median test accuracy 0.9510 against tensorflow/fit's 0.9620, -1.10 pp (band 0.31 pp)",
        "at batch 500: median test accuracy 0.9510 against jax/loop's 0.9630, -1.20 pp (band 0.31 pp)",
        failed_run,
    ]
    without_floor = parity_failures(accuracies, table, floor_applies=False)
    assert "numpy/broken at batch 500" not in " ".join(without_floor["broken"])


@pytest.mark.parametrize("args, message", [
    (["--variants", "nope"], "unknown peer variant 'nope'"),
    (["--frameworks", "numpy"], "unknown peer framework 'numpy'"),
])
def test_parity_bad_input_exits_2(args, message, capsys):
    assert main(["parity", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}; choose from ") and err.count("\n") == 1
