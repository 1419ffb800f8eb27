"""Trust on a shared machine (issue 24): the lock race, the machine-wide lock, noise recorded per run,
every plan value checked in one place, and the smaller defects a hostile user found. One test (or a
parametrized group) per defect; the numbers in the comments are the issue's."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from harness.__main__ import build_parser, plan_from_args
from harness.options import check_data_dir, check_out_dir
from reports.folder.files import StudyError, UsageError
from harness.locks import MACHINE_LOCK_VARIABLE, HeldLock, machine_lock, machine_lock_path
from harness.noise import Snapshot, noise_between
from reports.stats.busy import BUSY_SHARE
from harness.plan import MAX_SEED, StudyPlan
from keras_baseline.runtime import all_cores
from reports.folder.schema import (
    BUSY_RUNS, EPOCH_COLUMNS, LOAD_BEFORE, NOISE_COLUMNS, OTHERS_CPU_S, OTHERS_SHARE, RUN_COLUMNS, SHARED_MACHINE,
    STEAL_S,
)
from harness.plan import read_plan
from harness.resume import resume_tables
from harness.study import run_study
from harness.study_folder import StudyFiles
from reports.stats.summary import busy_sentence, noisy_cell_lines, summarize

from conftest import mnist_dir
from processes import child_running, kill_quietly

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--frameworks", "numpy", "--variants", "optimized", "--batch-sizes", "100", "200", "--train-limit", "1000",
        "--epochs", "1", "--repeats", "1", "--phase-epochs", "0", "--no-report"]


def tiny_plan(**changes) -> StudyPlan:
    values = dict(frameworks=("numpy",), variants={"numpy": ("optimized",)}, batch_sizes=(100, 200), epochs=1,
                  repeats=1, threads=(1,), seed=0, train_limit=1000, phase_epochs=0, eval_every_epoch=True)
    return StudyPlan(**{**values, **changes})


def harness_command(*args) -> list[str]:
    return [sys.executable, "-m", "harness", *map(str, args)]


def environment() -> dict:
    return dict(os.environ, MNIST_DIR=str(mnist_dir()))


def one_line_error(result: subprocess.CompletedProcess, *needles) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and all(n in line for n in needles), (needles, result.stderr)
    return line


# -- 1. the lock race: a study turned away never removes the winner's lock ----------------------------
@pytest.mark.slow
def test_many_studies_started_at_once_on_one_new_folder_one_runs_and_all_its_rows_land(tmp_path):
    """Each study waits at a barrier (tests/barrier_start.py) until all are ready, so that they race for
    the folder at once; --share-machine keeps the machine lock out of the race the folder lock must win."""
    out, barrier = tmp_path / "new" / "study", tmp_path / "barrier"
    barrier.mkdir()
    env = dict(environment(), MLP_STUDY_PLUGINS="tests.barrier_start", BARRIER_DIR=str(barrier))
    starts = [subprocess.Popen(harness_command("run", *TINY, "--share-machine", "--out", out), cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(20)]
    deadline = time.monotonic() + 600
    while len(list(barrier.glob("ready-*"))) < len(starts) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in starts):
            break  # one ended before the barrier: the others race all the same
        time.sleep(0.05)
    (barrier / "go").touch()
    results = [(p.returncode, err) for p in starts for _, err in [p.communicate(timeout=600)]]
    ran = [err for code, err in results if code == 0]
    assert len(ran) == 1, [err[-300:] for _, err in results]
    for code, err in results:
        if code != 0:
            assert code == 2 and "Traceback" not in err, err
            assert "is in use by" in err or "already holds a study" in err, err  # its holder may not have said who
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["batch_size"]) == [100, 200] and (runs["status"] == "ok").all()
    assert len(json.loads((out / "environment.json").read_text())["sessions"]) == 1


def test_a_study_turned_away_from_a_folder_it_created_leaves_the_holders_lock(tmp_path, monkeypatch):
    """The loser of the race had seen no folder (so 'made' it) and, refused, removed the lock file:
    a third study could then lock a new file beside the first."""
    import harness.study_folder

    out = tmp_path / "made" / "study"
    holder = HeldLock(StudyFiles(out).lock)
    probe = harness.study_folder._probe

    def another_study_locks_first(folder):  # after this study's mkdir, before its lock
        probe(folder)
        holder.acquire()

    monkeypatch.setattr(harness.study_folder, "_probe", another_study_locks_first)
    try:
        with pytest.raises(StudyError, match="is in use"):
            run_study(tiny_plan(), out, mnist_dir())
        assert StudyFiles(out).lock.exists(), "the refused study removed the lock it did not hold"
        with pytest.raises(StudyError, match="is in use"):  # and so a third one is refused too
            run_study(tiny_plan(), out, mnist_dir())
    finally:
        holder.release()


def test_a_refused_resume_of_a_folder_without_a_study_leaves_no_lock_behind(tmp_path):
    out = tmp_path / "not-a-study"
    out.mkdir()
    with pytest.raises(StudyError, match="no study to continue"):
        run_study(tiny_plan(), out, mnist_dir(), resume=True)
    assert list(out.iterdir()) == []


# -- 10. one timing study per machine ----------------------------------------------------------------
def test_the_machine_lock_is_per_test_and_keyed_by_host(tmp_path, machine_lock_dir):
    assert os.environ[MACHINE_LOCK_VARIABLE] == str(machine_lock_dir)
    assert machine_lock_path().parent == machine_lock_dir
    assert machine_lock_path("host/1").name == "machine-host_1.lock"


def test_a_second_study_on_the_machine_is_refused_then_allowed_knowingly(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    with machine_lock(first, ["python -m harness run --out first"]):
        with pytest.raises(StudyError) as refused:
            run_study(tiny_plan(), second, mnist_dir())
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and str(first) in message and "--out first" in message
        assert "--wait" in message and "--share-machine" in message
        assert not second.exists()
        log = _Log()
        run_study(tiny_plan(), second, mnist_dir(), share_machine=True, progress_stream=log)
    assert json.loads((second / "study.json").read_text())[SHARED_MACHINE] is True
    assert len(pd.read_csv(second / "runs.csv")) == 2
    run_study(tiny_plan(), tmp_path / "third", mnist_dir(), progress_stream=_Log())  # the machine is free again
    assert json.loads((tmp_path / "third" / "study.json").read_text())[SHARED_MACHINE] is False


class _Log(list):
    """A progress stream that a test reads while the study writes it."""

    def write(self, text):
        self.append(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def text(self) -> str:
        return "".join(self)


def test_with_wait_a_study_waits_for_the_machine(tmp_path):
    log, failure = _Log(), []

    def waiting_study():
        try:
            run_study(tiny_plan(), tmp_path / "second", mnist_dir(), wait_machine=True, progress_stream=log)
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            failure.append(exc)

    with machine_lock(tmp_path / "first", ["first"]):
        study = threading.Thread(target=waiting_study)
        study.start()
        deadline = time.monotonic() + 120
        while "waiting for the machine" not in log.text() and time.monotonic() < deadline and study.is_alive():
            time.sleep(0.05)
        assert "waiting for the machine" in log.text() and "first" in log.text(), (log.text(), failure)
        assert not (tmp_path / "second" / "runs.csv").exists()
    study.join(timeout=300)
    assert not study.is_alive() and not failure, (failure, log.text())
    assert len(pd.read_csv(tmp_path / "second" / "runs.csv")) == 2


@pytest.mark.slow
def test_run_resume_and_parity_are_refused_while_another_study_measures_the_machine(tmp_path):
    done = tmp_path / "done"
    run_study(tiny_plan(), done, mnist_dir(), progress_stream=_Log())
    with machine_lock(tmp_path / "busy", ["the other study"]):
        for args in (["run", *TINY, "--out", tmp_path / "new"], ["run", "--resume", "--out", done],
                     ["parity", "--batch-sizes", "100", "--epochs", "1", "--seeds", "1", "--train-limit", "1000",
                      "--frameworks", "tensorflow", "--variants", "loop", "--out", tmp_path / "parity"]):
            result = subprocess.run(harness_command(*args), cwd=ROOT, env=environment(), capture_output=True,
                                    text=True, timeout=300)
            one_line_error(result, "measuring another study", f"pid {os.getpid()}", "the other study")


# -- 2, 5, 7, 8, 11: every value of a plan checked in one place ---------------------------------------
BAD_PLANS = {
    "seed above 2**32 - 1": (dict(seed=2**32), "seed"),
    "seed of a later repeat above 2**32 - 1": (dict(seed=MAX_SEED, repeats=2), "seed"),
    "huge seed": (dict(seed=10**400), "seed"),
    "negative seed": (dict(seed=-1), "seed"),
    "fractional epochs": (dict(epochs=1.7), "epochs"),
    "no epochs": (dict(epochs=0), "epochs"),
    "no repeats": (dict(repeats=0), "repeats"),
    "huge repeats": (dict(repeats=100_000_000), "repeats"),
    "train limit 0": (dict(train_limit=0), "train limit"),
    "train limit above MNIST": (dict(train_limit=70000), "train limit"),
    "negative batch size": (dict(batch_sizes=(-5,)), "batch size"),
    "batch size twice": (dict(batch_sizes=(100, 100)), "batch size"),
    "variant twice": (dict(variants={"numpy": ("optimized", "optimized")}), "numpy variants"),
    "framework twice": (dict(frameworks=("numpy", "numpy")), "frameworks"),
    "eval_every_epoch not a flag": (dict(eval_every_epoch="no"), "eval_every_epoch"),
}


@pytest.mark.parametrize("case", BAD_PLANS, ids=list(BAD_PLANS))
def test_every_plan_value_out_of_range_is_refused_in_one_line(case):
    changes, name = BAD_PLANS[case]
    with pytest.raises(UsageError) as refused:
        tiny_plan(**changes)
    message = str(refused.value)
    assert message.startswith(name) and "\n" not in message


@pytest.mark.parametrize("case", BAD_PLANS, ids=list(BAD_PLANS))
def test_a_study_json_with_a_value_out_of_range_is_refused_on_resume(case, tmp_path):
    changes, name = BAD_PLANS[case]
    record = {**tiny_plan().to_dict(), **{k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}}
    if "variants" in changes:
        record["variants"] = {k: list(v) for k, v in changes["variants"].items()}
    if "frameworks" in changes:
        record["variants"] = {"numpy": ["optimized"]}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(record))
    with pytest.raises(StudyError) as refused:
        read_plan(path)
    assert str(path) in str(refused.value) and name in str(refused.value)


def test_threads_above_the_cores_are_refused_before_the_folder_is_made(tmp_path):
    out = tmp_path / "study"
    with pytest.raises(UsageError, match=f"threads {all_cores() + 1} is out of range.*{all_cores()} cores"):
        run_study(tiny_plan(threads=(all_cores() + 1,)), out, mnist_dir())
    assert not out.exists()


def test_duplicate_option_values_plan_each_run_once_with_a_note(capsys):
    args = build_parser().parse_args(["run", "--frameworks", "numpy", "numpy", "--variants", "optimized", "optimized",
                                      "--batch-sizes", "500", "500", "--threads", "1", "1", "--repeats", "1"])
    plan = plan_from_args(args)
    keys = [spec.key for spec in plan.runs()]
    assert len(keys) == len(set(keys)) and plan.batch_sizes == (500,) and plan.variants == {"numpy": ("optimized",)}
    notes = capsys.readouterr().err
    for option in ("--frameworks", "--variants", "--batch-sizes", "--threads"):
        assert f"note: {option} names" in notes


def test_huge_timeouts_are_refused_by_the_parser(capsys):
    for value in ("10000000000", str(10**400)):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(["run", "--timeout", value])
        assert exited.value.code == 2
    assert "at most" in capsys.readouterr().err


def test_the_list_of_variants_to_choose_from_names_each_once():
    args = build_parser().parse_args(["run", "--variants", "nosuch"])
    with pytest.raises(UsageError) as refused:
        plan_from_args(args)
    choices = str(refused.value).split("choose from ")[1].split(", ")
    assert len(choices) == len(set(choices)) and "fit-tuned" in choices


# -- 3 and duplicated rows: what a resume makes of the tables -----------------------------------------
def write_tables(out: Path, runs: list[dict], epochs: list[dict]) -> StudyFiles:
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(runs, columns=RUN_COLUMNS).to_csv(out / "runs.csv", index=False)
    pd.DataFrame(epochs, columns=EPOCH_COLUMNS).to_csv(out / "epochs.csv", index=False)
    return StudyFiles(out)


def run_row(batch_size: int, status: str = "ok") -> dict:
    return dict(framework="numpy", variant="optimized", batch_size=batch_size, epochs=1, repeat=0, seed=0, threads=1,
                instrumented=False, status=status, wall_s=1.0 if status == "ok" else None, machine="m", session=0)


def epoch_row(batch_size: int) -> dict:
    return dict(framework="numpy", variant="optimized", batch_size=batch_size, threads=1, repeat=0,
                instrumented=False, epoch=1, wall_s=1.0, machine="m")


def test_a_resume_with_no_epoch_rows_keeps_the_tables_columns(tmp_path):
    """Every run timed out: epochs.csv holds its header only; the resume's tables must still be tables."""
    files = write_tables(tmp_path, [run_row(100, "timeout"), run_row(200, "timeout")], [])
    runs, epochs, retried = resume_tables(tiny_plan(), files, True, _Log())
    assert list(epochs.columns[:len(EPOCH_COLUMNS)]) == EPOCH_COLUMNS and len(epochs) == 0
    assert list(runs.columns[:len(RUN_COLUMNS)]) == RUN_COLUMNS and len(retried) == 2


def test_a_run_in_runs_csv_twice_is_reported_as_such(tmp_path):
    files = write_tables(tmp_path, [run_row(100), run_row(100), run_row(200)], [epoch_row(100), epoch_row(200)])
    log = _Log()
    runs, _, _ = resume_tables(tiny_plan(), files, False, log)
    assert "1 run(s) that runs.csv holds more than once" in log.text() and "incomplete" not in log.text()
    assert list(runs["batch_size"]) == [200]


def test_runs_without_a_finite_wall_time_are_not_counted_as_timed():
    rows = [dict(run_row(100), repeat=r, wall_s=w, cpu_s=1.0, first_epoch_wall_s=w)
            for r, w in enumerate([1.0, float("inf"), 2.0])]
    summary = summarize(pd.DataFrame(rows, columns=RUN_COLUMNS))
    assert summary.loc[0, "n_runs"] == 3 and summary.loc[0, "n_ok"] == 2 and summary.loc[0, "wall_median_s"] == 1.5


# -- 4. a folder that turns read-only mid-study ---------------------------------------------------------
def test_a_folder_that_turns_read_only_mid_study_ends_in_one_line(tmp_path, monkeypatch):
    """Every write and removal in the folder fails once the first run has landed (as root a chmod does not
    stop writes, and a remount is refused while the lock file is open: the failures are simulated)."""
    import errno

    import harness.study

    out = tmp_path / "study"
    write, unlink, landed = harness.study.write_csv_atomic, Path.unlink, []

    def read_only_after_the_first_run(path, frame):
        if any(landed) and Path(path).parent == out:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        write(path, frame)
        landed.append(Path(path).name == "runs.csv")

    def unlink_read_only(self, missing_ok=False):
        if any(landed) and self.parent == out:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(harness.study, "write_csv_atomic", read_only_after_the_first_run)
    monkeypatch.setattr(Path, "unlink", unlink_read_only)
    with pytest.raises(StudyError, match="Read-only file system"):
        run_study(tiny_plan(), out, mnist_dir(), progress_stream=_Log())
    monkeypatch.undo()
    assert len(pd.read_csv(out / "runs.csv")) == 1


# -- 6, 9 and the smaller ones: options, messages, exits ----------------------------------------------
def test_an_empty_out_is_refused_and_default_folders_are_unique(monkeypatch):
    with pytest.raises(UsageError, match="--out is empty"):
        check_out_dir("", resume=False)
    with pytest.raises(UsageError, match="--out is empty"):
        check_out_dir(" ", resume=False)
    names = {check_out_dir(None, resume=False)}
    monkeypatch.setattr(os, "getpid", lambda: 1)  # another process, started in the same second
    names.add(check_out_dir(None, resume=False))
    assert len(names) == 2


def test_an_empty_mnist_dir_counts_as_unset_and_an_empty_data_dir_is_refused(monkeypatch):
    monkeypatch.setenv("MNIST_DIR", "")
    assert check_data_dir(None) is None
    with pytest.raises(UsageError, match="--data-dir is empty"):
        check_data_dir("")


def test_a_non_zip_mnist_npz_is_named_as_such(tmp_path):
    from harness.mnist import MnistError, load_mnist

    path = tmp_path / "mnist.npz"
    path.write_bytes(b"not a zip archive at all")
    with pytest.raises(MnistError) as refused:
        load_mnist(path)
    assert "not an .npz archive" in str(refused.value) and "allow_pickle" not in str(refused.value)


def test_an_interrupt_before_any_run_does_not_suggest_resuming_a_removed_folder(tmp_path, monkeypatch, capsys):
    import harness.study
    from harness.__main__ import cmd_run

    def interrupted_while_loading(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness.study, "prepare_data", interrupted_while_loading)
    out = tmp_path / "study"
    assert cmd_run(build_parser().parse_args(["run", *TINY, "--out", str(out)])) == 130
    err = capsys.readouterr().err
    assert "--resume" not in err and "nothing was kept" in err and not out.exists()


def test_parity_on_a_study_folder_does_not_suggest_resume(tmp_path):
    run_study(tiny_plan(), tmp_path / "study", mnist_dir(), progress_stream=_Log())
    with pytest.raises(StudyError) as refused:
        run_study(tiny_plan(), tmp_path / "study", mnist_dir(), resumable=False)
    assert "already holds a study" in str(refused.value) and "--resume" not in str(refused.value)


def test_a_second_interrupt_while_the_summary_is_written_still_leaves_the_summary(tmp_path, monkeypatch):
    """Ctrl-C twice, 10 ms apart: the second one arrived while the first's summary was being written."""
    import harness.local_executor
    import reports.stats.tables

    real_execute, real_summarize, calls = harness.local_executor.execute, reports.stats.tables.summarize, []

    def interrupted_at_the_second_run(spec, *args):
        calls.append(spec)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_execute(spec, *args)

    def summarize_interrupted_again(runs, epochs, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # delivered before the next bytecode: in the middle of the write
        return real_summarize(runs, epochs, **kwargs)

    monkeypatch.setattr(harness.local_executor, "execute", interrupted_at_the_second_run)
    monkeypatch.setattr(reports.stats.tables, "summarize", summarize_interrupted_again)
    with pytest.raises(KeyboardInterrupt):
        run_study(tiny_plan(), tmp_path / "study", mnist_dir(), progress_stream=_Log())
    assert len(pd.read_csv(tmp_path / "study" / "summary.csv")) == 1


def test_reports_build_on_an_out_it_cannot_write_is_a_usage_error(tmp_path, capsys):
    from harness.__main__ import main as harness_main

    run_study(tiny_plan(), tmp_path / "study", mnist_dir(), progress_stream=_Log())
    (tmp_path / "file").write_text("x")
    assert harness_main(["report", str(tmp_path / "study"), "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write the report") and err.count("\n") == 1


# -- 11b. noise recorded per run ----------------------------------------------------------------------
def test_noise_is_the_machines_busy_time_less_the_runs_own():
    before = Snapshot(at=100.0, load=0.5, busy=1000.0, steal=7.0, own=2.0)
    after = Snapshot(at=110.0, load=1.5, busy=1015.0, steal=7.5, own=12.0)  # 15 s busy, 10 s of them the run's
    noise = noise_between(before, after)
    cores = psutil.cpu_count()
    assert noise[LOAD_BEFORE] == 0.5 and noise[STEAL_S] == pytest.approx(0.5)
    assert noise[OTHERS_CPU_S] == pytest.approx(5.0) and noise[OTHERS_SHARE] == pytest.approx(5.0 / (10 * cores))
    without_steal = noise_between(Snapshot(0, 0, 0, None, 0), Snapshot(1, 0, 0, None, 0))
    assert without_steal[STEAL_S] is None and without_steal[OTHERS_CPU_S] == 0.0


def test_every_run_records_its_noise_and_busy_runs_are_counted_and_said(tmp_path):
    run_study(tiny_plan(), tmp_path / "study", mnist_dir(), progress_stream=_Log())
    runs = pd.read_csv(tmp_path / "study" / "runs.csv")
    assert set(NOISE_COLUMNS) <= set(runs.columns)
    assert runs[[LOAD_BEFORE, OTHERS_CPU_S, OTHERS_SHARE]].notna().all().all()
    assert (runs[OTHERS_CPU_S] >= 0).all()

    rows = [dict(run_row(100), repeat=r, cpu_s=1.0, first_epoch_wall_s=1.0, **{OTHERS_SHARE: share})
            for r, share in enumerate([0.0, BUSY_SHARE, 0.5, None])]
    summary = summarize(pd.DataFrame(rows, columns=RUN_COLUMNS))
    assert summary.loc[0, BUSY_RUNS] == 2
    summary.to_csv(tmp_path / "summary.csv", index=False)
    busy = [line for line in noisy_cell_lines(tmp_path / "summary.csv") if line.startswith("busy: ")]
    assert len(busy) == 1 and "2 run(s) in 1 cell(s)" in busy[0] and "idle machine" in busy[0]


def test_a_cell_whose_runs_recorded_no_noise_has_no_busy_count_and_says_so(tmp_path):
    """Runs of an earlier harness have no others_cpu_share: their cell's busy_runs is empty (not measured), not 0
    (quiet), and the console and report say that busy runs cannot be flagged there."""
    def rows(batch_size, shares):
        return [dict(run_row(batch_size), repeat=r, cpu_s=1.0, first_epoch_wall_s=1.0, **{OTHERS_SHARE: share})
                for r, share in enumerate(shares)]

    summary = summarize(pd.DataFrame(rows(100, [None, None]) + rows(200, [0.0, 0.5]), columns=RUN_COLUMNS))
    assert pd.isna(summary.loc[0, BUSY_RUNS]) and summary.loc[1, BUSY_RUNS] == 1
    summary.to_csv(tmp_path / "summary.csv", index=False)
    assert pd.isna(pd.read_csv(tmp_path / "summary.csv").loc[0, BUSY_RUNS])  # written empty
    busy = [line for line in noisy_cell_lines(tmp_path / "summary.csv") if line.startswith("busy: ")]
    assert len(busy) == 1 and "1 run(s) in 1 cell(s)" in busy[0]
    assert "The runs of 1 of 2 cells did not record how busy the machine was" in busy[0]
    only_old = summarize(pd.DataFrame(rows(100, [None, None]), columns=RUN_COLUMNS))
    assert "No cell's runs recorded how busy the machine was" in busy_sentence(only_old)


# -- 12. watching processes that end while being looked at ---------------------------------------------
def test_watching_a_child_that_ends_meanwhile_is_not_an_error(monkeypatch):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        def zombie(self):
            raise psutil.ZombieProcess(self.pid)

        monkeypatch.setattr(psutil.Process, "cmdline", zombie)
        assert child_running(os.getpid(), "sleep") is None
        monkeypatch.setattr(psutil.Process, "children", lambda self, recursive=False: (_ for _ in ()).throw(
            psutil.NoSuchProcess(self.pid)))
        assert child_running(os.getpid(), "sleep") is None
    finally:
        kill_quietly(psutil.Process(child.pid))
        child.wait()


def test_a_dask_worker_holds_its_machines_lock_for_each_run(tmp_path, monkeypatch):
    """harness.dask_executor.remote_run on a stand-in worker: while the run executes, the machine's lock is held
    and names the worker; a study on that machine would be turned away (or wait) meanwhile."""
    from types import SimpleNamespace

    import harness.dask_executor as cluster
    from harness.locks import holder_text

    seen = {}

    def execute(spec, plan, data_path, scratch, timeout, progress):
        seen["holder"] = holder_text(machine_lock_path("machine-1"))
        with pytest.raises(StudyError, match="measuring another study"):
            with machine_lock(tmp_path / "study", ["a study"], machine="machine-1"):
                pass
        return {"run": {"status": "ok"}, "epochs": []}

    monkeypatch.setattr(cluster, "get_worker", lambda: SimpleNamespace(local_directory=str(tmp_path), name="w1"))
    monkeypatch.setattr(cluster, "execute", execute)
    spec = tiny_plan().runs()[0]
    result = cluster.remote_run(spec, tiny_plan(), b"data", "digest", 60.0, "machine-1")
    assert result["run"]["machine"] == "machine-1" and "dask worker w1" in seen["holder"]
    with machine_lock(tmp_path / "study", ["a study"], machine="machine-1"):  # released after the run
        pass
