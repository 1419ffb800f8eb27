"""harness.dask_executor, reports.folder.merge and reports.machines: a study on a Dask cluster, lost workers,
merged folders.

A LocalCluster on 127.0.0.1 with two worker processes of one thread stands in for two machines
(every-machine placement names them HOST/0 and HOST/1, since they share a host).
"""
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from harness import dask_executor as cluster_module
from harness.plan import RunSpec, StudyPlan
from reports.folder.results import as_table, supersede_lost
from reports.folder.schema import LOST, RUN_COLUMNS, RUN_KEY
from harness.resume import placed_key, retried_away, without
from harness.plan import runs_to_do
from harness.study import run_study
from reports import load, machines
from markdown_table import parse_markdown_table
from harness.__main__ import main as harness_main

from conftest import mnist_dir
from processes import child_running, ended

ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()
QUICK = ["--frameworks", "numpy", "--variants", "step3", "optimized", "--batch-sizes", "500",
         "--train-limit", "2000", "--epochs", "1", "--phase-epochs", "0"]


@pytest.fixture(scope="module")
def local_cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield cluster.scheduler_address, client


def harness(*args, **popen):
    environment = dict(os.environ, MNIST_DIR=str(mnist_dir()))
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def run_process(pid: int, timeout: float = 120) -> psutil.Process:
    """The study's run process (python -m harness.worker) that the process ``pid`` has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = child_running(pid, "harness.worker", recursive=True)
        if child is not None:
            return child
        time.sleep(0.05)
    raise AssertionError(f"no run started under process {pid} within {timeout} s")


def assert_gone(process: psutil.Process, timeout: float = 10) -> None:
    """The process ends within ``timeout`` (a zombie counts as ended: it waits for init to reap it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ended(process):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {process.pid} outlived the process that started it")


def worker_pids(client) -> dict:
    """Dask worker name -> process id."""
    return dict(client.run(lambda dask_worker: (str(dask_worker.name), os.getpid())).values())


@pytest.mark.slow
def test_spread_runs_every_run_once_and_requeues_the_run_of_a_killed_worker(local_cluster, tmp_path):
    address, client = local_cluster
    out = tmp_path / "spread"
    study = harness("run", "--scheduler", address, *QUICK, "--repeats", "2", "--out", str(out), "--no-report")
    running = run_process(worker_pids(client)["1"])
    psutil.Process(worker_pids(client)["1"]).kill()  # in the middle of a run; its nanny starts a new one
    assert_gone(running)
    _, stderr = study.communicate(timeout=300)
    assert study.returncode == 0, stderr

    runs = pd.read_csv(out / "runs.csv", dtype={"worker": str})
    assert len(runs) == 4 and not runs.duplicated(RUN_KEY).any(), runs[RUN_KEY]
    assert (runs["status"] == "ok").all(), runs[["variant", "status", "error"]]
    assert set(runs["worker"]) <= {"0", "1"} and (runs["machine"] == HOST).all()
    epochs = pd.read_csv(out / "epochs.csv")
    assert len(epochs) == 4 and (epochs["machine"] == HOST).all()
    assert set(json.loads((out / "environment.json").read_text())["machines"]) == {HOST}

    again = harness("run", "--scheduler", address, *QUICK, "--repeats", "2", "--out", str(out), "--no-report",
                    "--resume")
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0 and "study: 0 runs to do" in stderr, stderr


@pytest.mark.slow
def test_every_machine_runs_the_plan_on_each_and_resume_redoes_what_a_machine_lost(
        local_cluster, tmp_path, monkeypatch):
    """A third worker without a nanny is a machine that leaves for good when killed in the middle of a
    run: its unfinished runs are recorded 'lost', the other machines' runs are all there, and --resume
    with the machine back runs exactly what it lost."""
    address, client = local_cluster
    monkeypatch.setattr(cluster_module, "REJOIN_GRACE_S", 2.0)
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
              "--name", "gone", "--no-dashboard"]
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    third = subprocess.Popen(worker, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    plan = StudyPlan(frameworks=("numpy",), variants={"numpy": ("step3", "optimized")}, batch_sizes=(500,),
                     epochs=1, repeats=1, threads=(2,), seed=0, train_limit=2000, phase_epochs=0,
                     eval_every_epoch=True)
    out = tmp_path / "every"
    try:
        client.wait_for_workers(3, timeout=60)
        log, failure = io.StringIO(), []

        def first_session():
            try:
                run_study(plan, out, mnist_dir(), executor=cluster_module.DaskExecutor(address, "every-machine", log),
                          progress_stream=log)
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread below
                failure.append(exc)

        study = threading.Thread(target=first_session)
        study.start()
        running = run_process(third.pid)
        third.kill()
        assert_gone(running)
        study.join(timeout=300)
        assert not study.is_alive() and not failure, (failure, log.getvalue())
    finally:
        third.kill()
        third.wait()

    names = {f"{HOST}/0", f"{HOST}/1", f"{HOST}/gone"}
    runs = pd.read_csv(out / "runs.csv", dtype={"worker": str})
    assert set(runs["machine"]) == names and not runs.duplicated(RUN_KEY + ["machine"]).any(), log.getvalue()
    assert len(runs) == 2 * 3  # every run of every machine is there, finished or lost
    others = runs[runs["machine"] != f"{HOST}/gone"]
    assert (others["status"] == "ok").all() and set(others["worker"]) == {"0", "1"}
    assert (others["worker"] == others["machine"].str.rsplit("/", n=1).str[1]).all()  # pinned: never elsewhere
    lost = runs[runs["machine"] == f"{HOST}/gone"]
    assert (lost["status"] == LOST).any(), lost[["variant", "status", "error"]]

    third = subprocess.Popen(worker, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client.wait_for_workers(3, timeout=60)
        log = io.StringIO()
        run_study(plan, out, mnist_dir(), resume=True,
                  executor=cluster_module.DaskExecutor(address, "every-machine", log), progress_stream=log)
    finally:
        third.kill()
        third.wait()
    assert f"study: {(lost['status'] == LOST).sum()} runs to do" in log.getvalue()
    runs = pd.read_csv(out / "runs.csv", dtype={"worker": str})
    assert len(runs) == 6 and not runs.duplicated(RUN_KEY + ["machine"]).any()
    assert (runs["status"] == "ok").all(), runs[["machine", "variant", "status", "error"]]
    assert (runs.loc[runs["machine"] == f"{HOST}/gone", "worker"] == "gone").all()
    assert set(json.loads((out / "environment.json").read_text())["machines"]) == names


def test_lost_runs_count_as_not_done_and_are_replaced_by_their_rerun():
    spec = RunSpec("numpy", "optimized", 500, 1, 0, 0, 2)
    other = RunSpec("numpy", "step3", 500, 1, 0, 0, 2)
    key = dict(zip(RUN_KEY, spec.key))
    runs = pd.DataFrame([
        {**key, "status": LOST, "machine": "a"}, {**key, "status": "ok", "machine": "b"},
        {**dict(zip(RUN_KEY, other.key)), "status": LOST, "machine": None},
    ])
    assert runs_to_do([spec, other], runs) == [other]  # spread: done once anywhere
    assert runs_to_do([spec, other], runs, "a") == [spec, other]  # every-machine: a lost both
    assert runs_to_do([spec, other], runs, "b") == [other]
    kept = supersede_lost(runs, {**key, "status": "ok", "machine": "a"})
    assert list(kept["machine"].fillna("none")) == ["b", "none"]  # a's lost record goes, the others stay
    kept = supersede_lost(runs, {**dict(zip(RUN_KEY, other.key)), "status": "ok", "machine": "c"})
    assert len(kept) == 2 and (kept["variant"] == "optimized").all()


def test_a_retried_run_replaces_the_failed_row_of_its_own_machine_only():
    """--retry-failed in an every-machine study: a run that failed on machine a and succeeded on b is
    redone by a alone, and a's new row replaces a's failed row, not b's good one."""
    spec = RunSpec("numpy", "optimized", 500, 1, 0, 0, 2)
    key = dict(zip(RUN_KEY, spec.key))
    runs = pd.DataFrame([{**key, "status": "failed", "machine": "a"}, {**key, "status": "ok", "machine": "b"}])
    retried = {placed_key(runs.iloc[0])}
    pending = without(runs, retried)
    assert runs_to_do([spec], pending, "a") == [spec] and runs_to_do([spec], pending, "b") == []
    assert list(without(runs, retried_away(spec.key, "a", retried))["machine"]) == ["b"]
    # spread placement: the retry may land on another machine, c; it still replaces a's failed row only
    assert list(without(runs, retried_away(spec.key, "c", retried))["machine"]) == ["b"]


@pytest.mark.slow  # waits out the connection timeout
def test_no_scheduler_is_one_line_and_exit_2(tmp_path):
    started = time.monotonic()
    study = harness("run", "--scheduler", "tcp://127.0.0.1:9", *QUICK, "--out", str(tmp_path / "x"))
    _, stderr = study.communicate(timeout=60)
    assert study.returncode == 2 and time.monotonic() - started < 30
    assert stderr.startswith("error: cannot reach a Dask scheduler at tcp://127.0.0.1:9") and stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()
    lone = harness("run", "--placement", "every-machine", *QUICK, "--out", str(tmp_path / "y"))
    _, stderr = lone.communicate(timeout=60)
    assert lone.returncode == 2 and stderr == (
        "error: --placement needs --scheduler: without a cluster every run happens here\n")


# -- merging folders made on different machines --------------------------------------------------
CONFIG = {"layer_sizes": [784, 70, 30, 10], "loss": "logloss", "dtype": "float32"}
# median wall seconds per (framework, variant) on each machine; the second machine has half the cores
WALLS = {
    "fast": {("numpy", "step3"): 3.0, ("numpy", "optimized"): 2.0, ("tensorflow", "loop"): 3.0, ("jax", "loop"): 2.5},
    "slow": {("numpy", "step3"): 6.0, ("numpy", "optimized"): 4.0, ("tensorflow", "loop"): 3.0, ("jax", "loop"): 5.0},
}
CORES = {"fast": 4, "slow": 2}


def results_folder(folder: Path, machine: str, epochs: int = 3) -> Path:
    """A results folder as the local runner writes it on ``machine`` (all cores), two repeats."""
    folder.mkdir(parents=True)
    rows = []
    for (framework, variant), wall in WALLS[machine].items():
        for repeat in range(2):
            rows.append(dict(framework=framework, variant=variant, batch_size=500, epochs=epochs, repeat=repeat,
                             seed=repeat, threads=CORES[machine], instrumented=False, status="ok", error="",
                             wall_s=wall * (0.9 + 0.2 * repeat), steady_epoch_wall_s=wall / epochs,
                             first_epoch_wall_s=wall / epochs, test_acc=0.9, machine=machine, worker=""))
    as_table(rows, RUN_COLUMNS).to_csv(folder / "runs.csv", index=False)
    (folder / "study.json").write_text(json.dumps({
        "epochs": epochs, "train_limit": 2000, "seed": 0, "config": CONFIG, "repeats": 2, "batch_sizes": [500],
        "threads": [CORES[machine]], "frameworks": ["numpy", "tensorflow", "jax"],
        "variants": {"numpy": ["step3", "optimized"], "tensorflow": ["loop"], "jax": ["loop"]}}))
    (folder / "environment.json").write_text(json.dumps({"sessions": [], "machines": {
        machine: {"host": machine, "cpu_model": f"{machine} CPU", "cores": CORES[machine],
                  "cpu_flags": "sse4_2 avx avx2 fma" + (" avx512f" if machine == "fast" else ""),
                  "blas": [{"internal_api": "openblas", "version": "0.3.31", "architecture": "Haswell"}],
                  "numpy": "2.4", "git_commit": "abc"}}}))
    return folder


@pytest.mark.slow
def test_merged_folders_make_one_cross_machine_report(tmp_path, capsys):
    fast, slow = results_folder(tmp_path / "fast", "fast"), results_folder(tmp_path / "slow", "slow")
    assert machines.section(load(fast), tmp_path / "figures", 8) is None  # one machine: as before
    assert not (tmp_path / "figures").exists()

    merged = tmp_path / "merged"
    assert harness_main(["report", str(fast), str(slow), "--merge-into", str(merged)]) == 0
    assert f"merged 2 results folders into {merged}" in capsys.readouterr().out
    runs = pd.read_csv(merged / "runs.csv")
    assert len(runs) == 16 and set(runs["machine"]) == {"fast", "slow"}
    assert set(json.loads((merged / "environment.json").read_text())["machines"]) == {"fast", "slow"}

    text = (merged / "report" / "report.md").read_text()
    section = text[text.index("machines compared"):]
    table = {row["Machine"]: row for row in parse_markdown_table(section)}
    # fastest peer per machine: jax/loop 2.5 s against 2.0 s on 'fast', tensorflow/loop 3.0 s against 4.0 s on 'slow'
    assert table["fast"]["Fastest peer"] == "jax/loop" and table["fast"]["Speed-up"] == "1.25×"
    assert table["slow"]["Fastest peer"] == "tensorflow/loop" and table["slow"]["Speed-up"] == "0.75×"
    assert table["fast"]["Threads"] == table["slow"]["Threads"] == "all cores"  # 4 and 2 threads line up
    assert (merged / "report" / "figures" / "machines.png").stat().st_size > 5000
    described = parse_markdown_table(text[text.index("Machines and software"):])
    assert [row["Machine"] for row in described] == ["fast", "slow"] and "avx512f" in described[0]["SIMD flags"]


def test_merging_refuses_other_plans_and_the_same_machine_twice(tmp_path, capsys):
    fast = results_folder(tmp_path / "fast", "fast")
    other = results_folder(tmp_path / "other", "slow", epochs=5)
    assert harness_main(["report", str(fast), str(other), "--merge-into", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err == (f"error: {other} and {fast} ran different plans (epochs: 5 against 3): "
                                       "their times cannot be compared\n")
    twin = results_folder(tmp_path / "twin", "fast")
    assert harness_main(["report", str(fast), str(twin), "--merge-into", str(tmp_path / "m")]) == 2
    assert "both hold runs of machine fast" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
