"""A results folder that cannot be corrupted, resumed wrongly or shared by accident (issue 14).

One test per defect the issue found (the plan on --resume, the lock, runs that land whole, write
problems, damaged tables, SIGTERM and kill -9, one environment record per session), then
--retry-failed. All on numpy runs of 2,000 training samples and one epoch; the runs that must be
interrupted use the ``sleepy`` test variant (tests/slow_variants.py), which waits without computing.
The tests that run studies of their own are marked slow (5-15 s each on a busy 2-core machine).
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from reports.folder.files import UsageError
from harness.plan import StudyPlan
from harness.study import run_study

from conftest import mnist_dir
from processes import child_running, ended, kill_quietly

ROOT = Path(__file__).resolve().parents[1]
SLEEPY = {"MLP_STUDY_PLUGINS": "tests.slow_variants", "SLEEPY_SECONDS": "30"}  # a run of 2 minutes


def options(variants=("optimized",), batch_sizes=(500, 1000), epochs=1, seed=0, train_limit=2000) -> list[str]:
    """The plan options of a small numpy study, as `harness run` takes them."""
    return ["--frameworks", "numpy", "--variants", *variants, "--batch-sizes", *map(str, batch_sizes),
            "--epochs", str(epochs), "--seed", str(seed), "--train-limit", str(train_limit),
            "--repeats", "1", "--phase-epochs", "0", "--no-report"]


def environment(env=None) -> dict:
    return dict(os.environ, MNIST_DIR=str(mnist_dir()), **(env or {}))


def harness(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=environment(env))


def start(*args, env=None) -> subprocess.Popen:
    """A study in the background, in its own session (so that signals sent to it reach it alone)."""
    return subprocess.Popen([sys.executable, "-m", "harness", *map(str, args)], cwd=ROOT, env=environment(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def landed_runs(out: Path) -> int:
    try:
        return len(pd.read_csv(out / "runs.csv"))
    except (OSError, ValueError):
        return 0


def assert_one_line_error(result, *needles):
    """Status 2, no traceback, and the last line of stderr (progress lines may come before it) is
    the one error line, naming every needle."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), result.stderr
    for needle in needles:
        assert needle in line, (needle, line)


def assert_whole(out: Path):
    """Every run in runs.csv has all its epoch rows (ok runs: one per epoch; others: none here), and
    epochs.csv holds no row of a run that runs.csv does not have."""
    key = ["variant", "batch_size", "repeat"]
    runs = pd.read_csv(out / "runs.csv")
    epochs = pd.read_csv(out / "epochs.csv") if (out / "epochs.csv").exists() else pd.DataFrame(columns=key)
    have = epochs.groupby(key).size().to_dict()
    want = {tuple(r[key]): int(r["epochs"]) for _, r in runs[runs["status"] == "ok"].iterrows()}
    assert have == want, (runs, epochs)
    return runs, epochs


def drop_run(out: Path, batch_size: int):
    """Remove one run from a finished folder, as if the study had stopped before it."""
    for name in ("runs.csv", "epochs.csv"):
        table = pd.read_csv(out / name)
        table[table["batch_size"] != batch_size].to_csv(out / name, index=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished two-run study (numpy optimized at batch 500 and 1000)."""
    out = tmp_path_factory.mktemp("finished") / "study"
    result = harness("run", *options(), "--out", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def study(finished, tmp_path) -> Path:
    """A copy of the finished study that a test may change."""
    return Path(shutil.copytree(finished, tmp_path / "study"))


@pytest.fixture
def tmpfs(tmp_path):
    """A 64 KiB tmpfs (needs root and mount rights; skipped where they are missing)."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True) if os.geteuid() == 0 else None
    if mounted is None or mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights) to fill a disk")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Write into ``folder`` until its file system is full."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


# -- 1. --resume continues the folder's plan, and refuses another one -------------------------------
@pytest.mark.slow
def test_resume_continues_the_stored_plan_and_refuses_a_different_one(study):
    plan = (study / "study.json").read_bytes()
    other = harness("run", *options(epochs=3, seed=7, train_limit=5000), "--resume", "--out", study)
    assert_one_line_error(other, "epochs 1", "seed 0", "train_limit 2000", "epochs 3", "seed 7", "train_limit 5000")
    assert (study / "study.json").read_bytes() == plan

    drop_run(study, 1000)
    alone = harness("run", "--resume", "--out", study, "--no-report")  # the README's form: no plan options
    assert alone.returncode == 0, alone.stderr
    assert "1 runs to do" in alone.stderr
    runs = pd.read_csv(study / "runs.csv")
    assert sorted(runs["batch_size"]) == [500, 1000]
    assert runs["epochs"].eq(1).all() and runs["seed"].eq(0).all()
    assert (study / "study.json").read_bytes() == plan

    same = harness("run", *options(), "--resume", "--out", study)  # options equal to the plan are fine
    assert same.returncode == 0 and "0 runs to do" in same.stderr, same.stderr


# -- 2. one study per folder at a time ----------------------------------------------------------------
@pytest.mark.slow
def test_a_folder_in_use_is_refused_and_keeps_its_study(tmp_path):
    out = tmp_path / "study"
    first = start("run", *options(variants=("sleepy",), batch_sizes=(500,)), "--out", out, env=SLEEPY)
    try:
        wait_for(lambda: (out / "study.json").exists(), "the first study to start")
        second = harness("run", *options(batch_sizes=(1000,)), "--out", out)
        assert_one_line_error(second, "in use", f"pid {first.pid}")
        resumed = harness("run", "--resume", "--out", out)
        assert_one_line_error(resumed, "in use", f"pid {first.pid}")
        parity = harness("parity", "--out", out, "--batch-sizes", "500", "--epochs", "1", "--seeds", "1",
                         "--train-limit", "2000")
        assert_one_line_error(parity, "in use", f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert json.loads((out / "study.json").read_text())["batch_sizes"] == [500]
    assert not (out / "runs.csv").exists()  # the second study wrote nothing


# -- 3. a finished run lands whole, and --resume repairs what did not ---------------------------------
def small_plan(**changes) -> StudyPlan:
    values = dict(frameworks=("numpy",), variants={"numpy": ("optimized",)}, batch_sizes=(500, 1000, 2000),
                  epochs=1, repeats=1, threads=(1,), seed=0, train_limit=2000, phase_epochs=0, eval_every_epoch=True)
    values.update(changes)
    return StudyPlan(**values)


@pytest.mark.slow
def test_a_failed_write_never_leaves_a_run_without_its_epochs(tmp_path, monkeypatch):
    import harness.study

    out = tmp_path / "study"
    write = harness.study.write_csv_atomic
    epochs_writes = []

    def disk_full_at_the_second_epochs_write(path, frame):
        if Path(path).name == "epochs.csv":
            epochs_writes.append(path)
            if len(epochs_writes) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, frame)

    monkeypatch.setattr(harness.study, "write_csv_atomic", disk_full_at_the_second_epochs_write)
    with pytest.raises((OSError, UsageError)):  # today: StudyError, a UsageError (one line, status 2)
        run_study(small_plan(), out, mnist_dir())
    runs, _ = assert_whole(out)
    assert len(runs) == 1

    monkeypatch.setattr(harness.study, "write_csv_atomic", write)
    run_study(small_plan(), out, mnist_dir(), resume=True)
    runs, _ = assert_whole(out)
    assert sorted(runs["batch_size"]) == [500, 1000, 2000]


@pytest.mark.slow
def test_resume_redoes_runs_with_missing_epoch_rows_and_drops_orphan_rows(study):
    epochs = pd.read_csv(study / "epochs.csv")
    orphan = epochs[epochs["batch_size"] == 500].assign(repeat=7)  # a run that never reached runs.csv
    pd.concat([epochs[epochs["batch_size"] != 1000], orphan]).to_csv(study / "epochs.csv", index=False)

    result = harness("run", *options(), "--resume", "--out", study)
    assert result.returncode == 0, result.stderr
    assert "1 runs to do" in result.stderr
    runs, epochs = assert_whole(study)
    assert sorted(runs["batch_size"]) == [500, 1000] and not epochs["repeat"].eq(7).any()


# -- 4. write problems: one line, status 2, before MNIST is loaded where they can be found ------------
def unwritable(kind: str, tmp_path: Path) -> Path:
    if kind == "under a file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file" / "study"
    if kind == "under /proc":
        return Path("/proc") / f"mlp-study-test-{os.getpid()}"
    mount_point = tmp_path / "fs"
    if kind == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
    else:
        fill(mount_point)
    return mount_point / "study"


@pytest.mark.parametrize("kind", ["under a file", "under /proc", "read-only", "full"])
def test_unwritable_out_is_refused_before_the_data_is_loaded(kind, tmp_path, request):
    if kind in ("read-only", "full"):
        request.getfixturevalue("tmpfs")
    out = unwritable(kind, tmp_path)
    no_data = tmp_path / "no-data"  # loading MNIST from here would fail: the --out error must come first
    no_data.mkdir()
    result = harness("run", *options(), "--data-dir", no_data, "--out", out, timeout=60)
    assert_one_line_error(result, f"--out {out}")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_disk_that_fills_during_the_study_ends_in_one_line_and_keeps_what_landed(tmpfs):
    out = tmpfs / "study"
    study = start("run", *options(batch_sizes=(500, 1000, 2000)), "--out", out)
    wait_for(lambda: landed_runs(out) >= 1, "the first run to land")
    study.send_signal(signal.SIGSTOP)
    filler = fill(tmpfs)
    study.send_signal(signal.SIGCONT)
    _, stderr = study.communicate(timeout=120)
    assert_one_line_error(subprocess.CompletedProcess([], study.returncode, "", stderr), "No space left")
    runs, _ = assert_whole(out)
    assert 1 <= len(runs) < 3

    filler.unlink()
    resumed = harness("run", "--resume", "--out", out, "--no-report")  # a report does not fit in 64 KiB
    assert resumed.returncode == 0, resumed.stderr
    runs, _ = assert_whole(out)
    assert sorted(runs["batch_size"]) == [500, 1000, 2000]


# -- 5. damaged files on --resume: one line, status 2, nothing changed --------------------------------
def damage(out: Path, case: str) -> None:
    name, how = case.split(": ")
    path = out / name
    if how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe not a table \x00\x01\x02\n\xc3\x28,,,\n")
    elif how == "lacks a column":
        table = pd.read_csv(path)
        table.drop(columns=["variant" if name == "runs.csv" else "epoch"]).to_csv(path, index=False)
    elif how == "a bad value":
        table = pd.read_csv(path)
        table["batch_size"] = table["batch_size"].astype(object)
        table.loc[0, "batch_size"] = "many"
        table.to_csv(path, index=False)


DAMAGED = ["runs.csv: empty", "runs.csv: garbage", "runs.csv: lacks a column", "runs.csv: a bad value",
           "epochs.csv: empty", "epochs.csv: garbage", "epochs.csv: lacks a column",
           "study.json: garbage", "environment.json: garbage"]


@pytest.mark.parametrize("case", DAMAGED)
def test_resume_on_a_damaged_file_gives_one_line_and_changes_nothing(case, study):
    damage(study, case)
    before = {p.name: p.read_bytes() for p in study.iterdir() if p.is_file() and not p.name.startswith(".")}
    result = harness("run", *options(), "--resume", "--out", study, timeout=120)
    assert_one_line_error(result, case.split(":")[0])
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    after = {p.name: p.read_bytes() for p in study.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert after == before


# -- 6. SIGTERM and kill -9: no orphaned worker, no leaked scratch folder -----------------------------
def running_worker(study: subprocess.Popen, out: Path) -> psutil.Process | None:
    """The worker of the second run (the sleepy one), once the first run has landed."""
    if landed_runs(out) < 1:
        return None
    return child_running(study.pid, "harness.worker")


def wait_gone(process: psutil.Process, timeout: float = 5) -> bool:
    """Whether the process ends within ``timeout`` (a zombie has ended: here nothing may reap it)."""
    try:
        return wait_for(lambda: ended(process), "the worker to end", timeout)
    except AssertionError:
        return False


def scratch_folders(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("mlp-study-*"))


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(tmp_path, request):
    out, tmp = tmp_path / "study", tmp_path / "tmp"
    tmp.mkdir()
    study = start("run", *options(variants=("optimized", "sleepy"), batch_sizes=(500,)), "--out", out,
                  env={**SLEEPY, "TMPDIR": str(tmp)})
    worker = wait_for(lambda: running_worker(study, out), "the second run's worker")
    request.addfinalizer(lambda: kill_quietly(worker))  # in case it outlives the study
    study.send_signal(signal.SIGTERM)
    _, stderr = study.communicate(timeout=60)
    assert study.returncode == 128 + signal.SIGTERM, (study.returncode, stderr)
    assert "SIGTERM" in stderr and f"--resume --out {out}" in stderr
    assert "Traceback" not in stderr
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["variant"]) == ["optimized"]
    assert wait_gone(worker), "the worker outlived the study"
    assert scratch_folders(tmp) == []


def test_sigterm_stops_parity_like_ctrl_c(tmp_path, request):
    out = tmp_path / "parity"
    parity = start("parity", "--frameworks", "tensorflow", "--variants", "loop", "sleepy",
                   "--batch-sizes", "500", "--epochs", "1", "--seeds", "1", "--train-limit", "2000", "--out", out,
                   env=SLEEPY)
    worker = wait_for(lambda: child_running(parity.pid, "harness.worker"), "a parity worker")
    request.addfinalizer(lambda: kill_quietly(worker))
    parity.send_signal(signal.SIGTERM)
    _, stderr = parity.communicate(timeout=60)
    assert parity.returncode == 128 + signal.SIGTERM, (parity.returncode, stderr)
    assert "SIGTERM" in stderr and "Traceback" not in stderr
    assert wait_gone(worker), "the worker outlived parity"


@pytest.mark.slow
def test_kill_9_of_the_parent_takes_the_worker_with_it(tmp_path, request):
    out, tmp = tmp_path / "study", tmp_path / "tmp"
    tmp.mkdir()
    args = ["run", *options(variants=("optimized", "sleepy"), batch_sizes=(500,)), "--out", out]
    study = start(*args, env={**SLEEPY, "TMPDIR": str(tmp)})
    worker = wait_for(lambda: running_worker(study, out), "the second run's worker")
    request.addfinalizer(lambda: kill_quietly(worker))  # in case it outlives the study
    study.kill()
    study.communicate(timeout=60)
    assert wait_gone(worker), "the worker outlived the study"
    stale = scratch_folders(tmp)
    assert stale, "kill -9 leaves the scratch folder; the next study must remove it"

    resumed = harness(*args[:-2], "--resume", "--out", out, env={**SLEEPY, "SLEEPY_SECONDS": "0", "TMPDIR": str(tmp)})
    assert resumed.returncode == 0, resumed.stderr
    assert scratch_folders(tmp) == []
    assert sorted(pd.read_csv(out / "runs.csv")["variant"]) == ["optimized", "sleepy"]


def test_without_pdeathsig_a_thread_ends_the_worker_once_its_parent_is_gone():
    """The fallback of die_with_parent where prctl is missing (here: pretending not to be on Linux)."""
    code = ("import os, sys, time; sys.platform = 'darwin'; from harness.worker import die_with_parent; "
            "die_with_parent({parent}); time.sleep(1.5); print('still running')")
    run = lambda parent: subprocess.run([sys.executable, "-c", code.format(parent=parent)], cwd=ROOT,  # noqa: E731
                                        capture_output=True, text=True, timeout=60)
    kept = run("os.getppid()")
    assert kept.returncode == 0 and "still running" in kept.stdout, kept.stderr
    orphaned = run(1 if os.getppid() != 1 else 2)  # as if its parent had died: another pid is its parent
    assert orphaned.returncode == 1 and "still running" not in orphaned.stdout, orphaned.stderr


# -- 7. one environment record per session ------------------------------------------------------------
@pytest.mark.slow
def test_every_session_keeps_its_environment_record(study):
    drop_run(study, 1000)
    resumed = harness("run", *options(), "--resume", "--out", study)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((study / "environment.json").read_text())
    sessions = record.get("sessions")
    assert isinstance(sessions, list) and len(sessions) == 2, record
    assert "--batch-sizes" in sessions[0]["command"] and "--resume" in sessions[1]["command"]
    runs = pd.read_csv(study / "runs.csv").set_index("batch_size")
    assert runs.loc[500, "session"] == 0 and runs.loc[1000, "session"] == 1
    from reports import load

    report_input = load(study)  # the report shows the first session and says there were more
    assert report_input.env == sessions[0] and any("2 sessions" in note for note in report_input.notes)


# -- --retry-failed --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_retry_failed_redoes_failed_and_timed_out_runs_only(study):
    runs = pd.read_csv(study / "runs.csv")
    runs[["status", "error"]] = runs[["status", "error"]].astype(object)
    runs.loc[runs["batch_size"] == 500, ["status", "error", "test_acc"]] = ["timeout", "no result within 1 s", None]
    runs.loc[runs["batch_size"] == 1000, "status"] = "diverged"  # a result, not a failure: kept
    runs.to_csv(study / "runs.csv", index=False)
    epochs = pd.read_csv(study / "epochs.csv")
    epochs[epochs["batch_size"] != 500].to_csv(study / "epochs.csv", index=False)

    plain = harness("run", *options(), "--resume", "--out", study)
    assert plain.returncode == 0 and "0 runs to do" in plain.stderr, plain.stderr
    retried = harness("run", *options(), "--resume", "--retry-failed", "--out", study)
    assert retried.returncode == 0, retried.stderr
    assert "1 runs to do" in retried.stderr
    after = pd.read_csv(study / "runs.csv").set_index("batch_size")["status"]
    assert after[500] == "ok" and after[1000] == "diverged" and len(after) == 2
