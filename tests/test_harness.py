"""harness: the real command end to end on a small slice, resume, failing workers, bad options, summary."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.plan import StudyPlan
from reports.folder.schema import (COST_MODEL_COLUMNS, COST_MODEL_FILE, CROSSOVER_COLUMNS, CROSSOVERS_FILE,
                                   EPOCH_COLUMNS, RUN_COLUMNS, WINNER_COLUMNS, WINNERS_FILE)
from harness.one_run import execute
from harness.progress import Progress
from harness.study import prepare_data, run_study
from reports.stats.summary import summarize
from numpy_mlp import MLPConfig

from conftest import mnist_dir

ROOT = Path(__file__).resolve().parents[1]


def harness(*args, timeout=600, env=None):
    environment = dict(os.environ, MNIST_DIR=str(mnist_dir()), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env=environment,
    )


def small_plan(**changes) -> StudyPlan:
    values = dict(
        frameworks=("numpy",), variants={"numpy": ("optimized",)}, batch_sizes=(500,), epochs=2, repeats=1,
        threads=(1,), seed=0, train_limit=2000, phase_epochs=0, eval_every_epoch=True,
    )
    values.update(changes)
    return StudyPlan(**values)


@pytest.mark.slow
@pytest.mark.keras
def test_run_end_to_end_writes_every_table(tmp_path, mnist):
    out = tmp_path / "study"
    result = harness(
        "run", "--frameworks", "numpy", "tensorflow", "--variants", "step3", "optimized", "fit-tuned",
        "--batch-sizes", "500", "1000",
        "--train-limit", "2000", "--epochs", "2", "--repeats", "2", "--phase-epochs", "1", "--out", str(out),
        "--no-report",
    )
    assert result.returncode == 0, result.stderr
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns[: len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert len(runs) == 3 * 2 * 2 + 2 * 2  # timed runs + one phase-timed run per numpy variant and batch size
    assert (runs["status"] == "ok").all(), runs[["variant", "error"]]
    assert runs["wall_s"].gt(0).all()
    timed = runs[~runs["instrumented"]]
    assert timed["test_acc"].between(0.25, 1).all(), timed[["variant", "batch_size", "test_acc"]]  # chance: 0.1
    # the ladder's shared trajectory survives the harness: same seed, same batches, same accuracy
    ladder = timed[timed["framework"] == "numpy"].pivot_table("test_acc", ["batch_size", "repeat"], "variant")
    assert (ladder["step3"] - ladder["optimized"]).abs().max() < 1e-3, ladder
    numpy_runs = timed[timed["framework"] == "numpy"]  # the floor is measured in the timed runs only
    assert (numpy_runs["gemm_floor_s"].gt(0).all()
            and runs.loc[runs["framework"] == "tensorflow", "gemm_floor_s"].isna().all())
    assert runs["blas_threads"].notna().all()
    numpy_rows = runs[runs["framework"] == "numpy"]
    assert numpy_rows["row_threads"].notna().all()
    large = numpy_rows[(numpy_rows["variant"] == "optimized") & (numpy_rows["batch_size"] == 1000)]
    assert (large["row_threads"] == large["threads"]).all() and large["blas_threads"].eq(1).all()
    assert runs.loc[runs["framework"] == "tensorflow", "tf_intra_threads"].notna().all()

    epochs = pd.read_csv(out / "epochs.csv")
    assert list(epochs.columns) == EPOCH_COLUMNS
    assert len(epochs) == 12 * 2 + 4 * 1
    phased = epochs[epochs["instrumented"]]
    assert phased["phase_forward_s"].gt(0).all() and epochs.loc[~epochs["instrumented"], "phase_forward_s"].isna().all()
    assert epochs.loc[~epochs["instrumented"], "test_acc"].notna().all()

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 6 and summary["n_ok"].eq(2).all()
    assert summary.loc[summary["variant"] == "fit-tuned", "speedup_vs_best_tensorflow"].eq(1.0).all()
    winners = pd.read_csv(out / WINNERS_FILE)  # the answer's tables, written with summary.csv
    assert list(winners.columns) == WINNER_COLUMNS and set(winners["batch_size"]) == {500, 1000}
    assert list(pd.read_csv(out / COST_MODEL_FILE).columns) == COST_MODEL_COLUMNS
    assert list(pd.read_csv(out / CROSSOVERS_FILE).columns) == CROSSOVER_COLUMNS

    environment = json.loads((out / "environment.json").read_text())["sessions"][0]  # one session so far
    assert runs["session"].eq(0).all()
    for key in ("cpu_model", "cores", "os", "python", "numpy", "tensorflow", "keras", "blas", "onednn", "git_commit",
                "date", "command"):
        assert key in environment
    assert json.loads((out / "study.json").read_text())["train_limit"] == 2000


@pytest.mark.slow
def test_resume_after_a_killed_study_redoes_nothing(tmp_path, mnist):
    out = tmp_path / "study"
    args = ["run", "--frameworks", "numpy", "--variants", "optimized", "step3", "--batch-sizes", "500",
            "--train-limit", "2000", "--epochs", "2", "--repeats", "3", "--phase-epochs", "0",
            "--out", str(out), "--no-report"]
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, env=dict(os.environ, MNIST_DIR=str(mnist_dir())),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (out / "runs.csv").exists() and len(pd.read_csv(out / "runs.csv")) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the whole study, worker included, as a crash would
    process.wait()
    before = pd.read_csv(out / "runs.csv")
    assert 2 <= len(before) < 6
    assert not list(out.glob(".*.tmp")), "a half-written file was left behind"

    result = harness(*args, "--resume")
    assert result.returncode == 0, result.stderr
    after = pd.read_csv(out / "runs.csv")
    assert len(after) == 6
    assert not after.duplicated(["variant", "repeat"]).any()
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)  # finished runs kept as they were


def test_failing_worker_becomes_a_failed_row(tmp_path, mnist):
    plan = small_plan()
    spec = plan.runs()[0]
    row = execute(spec, plan, tmp_path / "missing.npz", tmp_path, timeout=120, progress=Progress(1))["run"]
    assert row["status"] == "failed" and "missing.npz" in row["error"]
    assert row["variant"] == "optimized" and row["batch_size"] == 500


def test_worker_over_its_time_limit_becomes_a_timeout_row(tmp_path, mnist):
    plan = small_plan(epochs=1000, train_limit=None, eval_every_epoch=False)
    data = prepare_data(plan, mnist_dir(), tmp_path)
    result = execute(plan.runs()[0], plan, data, tmp_path, timeout=3, progress=Progress(1))
    assert result["run"]["status"] == "timeout" and "3 s" in result["run"]["error"]


def test_diverging_run_is_recorded_and_the_study_goes_on(tmp_path, mnist):
    diverging = MLPConfig(hidden_activation="relu", learning_rate=10.0)
    plan = small_plan(config=diverging, batch_sizes=(500, 1000))
    files = run_study(plan, tmp_path / "study", mnist_dir())
    runs = pd.read_csv(files.runs)
    assert list(runs["status"]) == ["diverged", "diverged"]
    assert runs["error"].str.contains("loss became").all()


def test_summary_arithmetic_against_a_hand_made_table():
    def row(framework, variant, wall, cpu, acc, repeat, status="ok", instrumented=False, floor=np.nan, steady=None):
        return dict(framework=framework, variant=variant, batch_size=500, threads=2, repeat=repeat,
                    instrumented=instrumented, status=status, wall_s=wall, cpu_s=cpu, first_epoch_wall_s=wall / 2,
                    steady_epoch_wall_s=wall / 10 if steady is None else steady,
                    test_acc=acc, train_acc=acc, gemm_floor_s=floor, peak_rss_mb=100.0)

    runs = pd.DataFrame([
        row("numpy", "optimized", 2.0, 3.0, 0.96, 0, floor=1.5),
        row("numpy", "optimized", 4.0, 5.0, 0.97, 1, floor=1.5),
        row("numpy", "optimized", 3.0, 4.0, 0.95, 2, floor=1.5),
        row("numpy", "optimized", 0.1, 0.1, 0.5, 0, instrumented=True),
        row("numpy", "step3", 6.0, 6.0, 0.96, 0), row("numpy", "step3", np.nan, np.nan, np.nan, 1, status="failed"),
        row("tensorflow", "fit", 12.0, 20.0, 0.96, 0, steady=0.5),
        row("tensorflow", "fit-tuned", 9.0, 15.0, 0.96, 0, steady=0.9),
    ])
    summary = summarize(runs).set_index("variant")
    optimized = summary.loc["optimized"]
    assert optimized["n_runs"] == 3 and optimized["n_ok"] == 3  # the instrumented run is left out
    assert optimized["wall_median_s"] == 3.0 and optimized["wall_iqr_s"] == pytest.approx(1.0)  # 3.5 - 2.5
    assert optimized["cpu_median_s"] == 4.0 and optimized["test_acc_median"] == 0.96
    assert optimized["speedup_vs_best_tensorflow"] == pytest.approx(9.0 / 3.0)
    assert optimized["best_tensorflow_variant"] == "fit-tuned"
    # steady epochs only: fit is the faster TensorFlow variant there (its first epoch is what makes it slower overall)
    assert optimized["steady_speedup_vs_best_tensorflow"] == pytest.approx(0.5 / 0.3)
    assert optimized["best_tensorflow_steady_variant"] == "fit"
    assert optimized["speedup_vs_step3"] == pytest.approx(6.0 / 3.0)
    assert optimized["gemm_efficiency"] == pytest.approx(1.5 / 3.0)
    assert summary.loc["step3", "n_runs"] == 2 and summary.loc["step3", "n_ok"] == 1
    assert summary.loc["fit", "speedup_vs_best_tensorflow"] == pytest.approx(0.75)


BAD_OPTIONS = {
    "unknown framework": (["--frameworks", "mxnet"], "unknown framework 'mxnet'"),
    "unknown variant": (["--variants", "step4"], "unknown variant 'step4'"),
    "batch size 0": (["--batch-sizes", "0"], "must be positive"),
    "batch size too large": (["--batch-sizes", "70000"], "larger than the training set"),
    "batch size larger than the limit": (["--train-limit", "1000", "--batch-sizes", "2000"],
                                         "larger than the training set"),
    "epochs 0": (["--epochs", "0"], "must be positive"),
    "epochs not a number": (["--epochs", "many"], "whole number"),
    "threads 0": (["--threads", "0"], "must be positive"),
    "missing data folder": (["--data-dir", "/nonexistent/mnist"], "does not exist"),
    "resume without out": (["--resume"], "--resume needs --out"),
    "retry without resume": (["--retry-failed"], "--retry-failed needs --resume"),
    "unknown variant to run once": (["--once", "step9"], "unknown variant 'step9' in --once"),
}


def test_the_article_preset_runs_original_once():
    from harness.__main__ import build_parser, plan_from_args

    def variants_per_repeat(*options):
        runs = plan_from_args(build_parser().parse_args(["run", *options])).runs()
        timed = [r for r in runs if not r.instrumented]
        return {repeat: {r.variant for r in timed if r.repeat == repeat} for repeat in range(3)}

    default = variants_per_repeat()
    assert "original" in default[0] and "original" not in default[1] | default[2]
    assert default[1] == default[0] - {"original"}
    assert all("original" in variants for variants in variants_per_repeat("--once").values())


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=list(BAD_OPTIONS))
def test_bad_options_give_one_line_and_status_2(case, tmp_path):
    options, message = BAD_OPTIONS[case]
    result = harness("run", *options, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_out_folder_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = harness("run", "--out", str(target), timeout=60)
    assert result.returncode == 2 and "is not a folder" in result.stderr and "Traceback" not in result.stderr


def test_bad_data_folder_is_refused_before_training(tmp_path):
    for source in mnist_dir().glob("*.gz"):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    truncated = tmp_path / "train-images-idx3-ubyte.gz"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    out = tmp_path / "out"
    result = harness("run", "--data-dir", str(tmp_path), "--out", str(out), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train-images-idx3-ubyte" in result.stderr
    assert not out.exists()


def test_list_and_env():
    listing = harness("list", timeout=60)
    assert listing.returncode == 0
    for name in ("numpy/optimized", "numpy/original", "tensorflow/fit-tuned", "tensorflow/loop",
                 "quick", "article", "sweep"):
        assert name in listing.stdout
    env = harness("env", timeout=60)
    assert env.returncode == 0 and json.loads(env.stdout)["cores"] >= 1


def test_every_option_is_explained_in_help():
    result = harness("run", "--help", timeout=60)
    for option in ("--frameworks", "--variants", "--batch-sizes", "--epochs", "--repeats", "--threads", "--seed",
                   "--train-limit", "--data-dir", "--out", "--resume", "--retry-failed",
                   "--preset", "--timeout", "--once"):
        assert option in result.stdout


def test_gemm_floor_cuts_batches_into_the_chunks_training_uses():
    from harness.gemm_floor import _blocks, _share_plans, gemm_floor_seconds

    assert _blocks(60000, 500) == [(500, 120)] and _blocks(1000, 512) == [(512, 1), (488, 1)]
    shares = _share_plans((6, 5, 4, 3), 1001, np.float32, np.random.default_rng(0), 2, 256)
    assert [[(len(products), count) for products, count in share] for share in shares] == [
        [(8, 1), (8, 1)],  # 500 rows: 256 + 244; 3 layers: 3 forward, 3 kernel gradients, 2 deltas
        [(8, 1), (8, 1)],  # 501 rows: 256 + 245
    ]
    floor = gemm_floor_seconds(MLPConfig(layer_sizes=(6, 5, 4, 3)), 100, 1000, epochs=2, threads=2, repeats=1)
    assert 0 < floor < 10
