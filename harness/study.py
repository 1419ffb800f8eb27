"""A study: a plan's runs done through the executor it is given (``Executor``: here, harness.local_executor,
the default, or on a Dask cluster, harness.dask_executor), each run committed to the results folder as
it finishes, then the summary.

    plan (new, or the stored one on --resume) -> the runs still to do (the executor's answer)
    -> the executor -> each finished run committed -> summary.csv and the tables computed with it

MNIST is loaded and the input scaler fitted once; every run gets the same arrays through one .npz file
in a scratch folder. A results folder holds one plan (study.json), worked on by one process at a time
(harness.study_folder) over one or more sessions (environment.json). A run lands whole: its epoch rows
first, then its row in runs.csv, the commit record (harness.resume repairs the rest).
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import pandas as pd

from reports.folder.files import StudyError, writing
from reports.folder.results import as_table, supersede_lost, write_csv_atomic
from reports.folder.schema import EPOCH_COLUMNS, RUN_COLUMNS, SHARED_MACHINE
from reports.folder.sessions import machines_in, read_sessions, record_machines
from reports.stats.tables import write_tables

from .environment import environment_record
from .interrupts import interrupts_deferred
from .local_executor import LocalExecutor
from .plan import RunSpec, StudyPlan, check_same_plan, read_plan
from .progress import Progress
from .resume import resume_tables, retried_away, without
from .study_folder import StudyFiles, claim_folder, scratch_folder, write_text


class Executor(Protocol):
    """Where a study's runs happen; opened as a context, it holds this machine's lock or a connection."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc) -> None: ...

    def runs_to_do(self, plan: StudyPlan, done: pd.DataFrame) -> list:
        """The runs of ``plan`` without a row in ``done``, checked against the machines that will run them."""

    def machines(self) -> dict:
        """Name -> machine_record of the machines known before any run (others send theirs with their results)."""

    def results(self, todo: list, plan: StudyPlan, data_path: Path, scratch: Path, timeout: float,
                progress: Progress) -> Iterator[tuple[RunSpec, dict]]:
        """Do the runs ``todo`` on the study's data; yield each one's spec and rows (harness.one_run.run_result,
        and "record": its machine's) as it finishes. Closing the iterator stops what is still running."""


def prepare_data(plan: StudyPlan, data_dir, folder: Path) -> Path:
    """Load MNIST (verified), cut the training set to ``train_limit`` and fit the scaler, once."""
    from harness.mnist import load_mnist
    from numpy_mlp import InputScaler

    x_train, y_train, x_test, y_test = load_mnist(data_dir)
    if plan.train_limit:
        x_train, y_train = x_train[: plan.train_limit], y_train[: plan.train_limit]
    scaler = InputScaler.fit(x_train, plan.config.input_scaling, dtype=plan.config.dtype)
    path = folder / "data.npz"
    with writing(path, f"the scratch copy of the data, {path}"):
        np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                 scaler_shift=scaler.shift, scaler_scale=scaler.scale)
    return path


def run_study(plan: StudyPlan | Callable[[StudyPlan], StudyPlan], out: Path, data_dir=None, *,
              executor: Executor | None = None, resume: bool = False, retry_failed: bool = False,
              timeout: float = 1800.0, command: list[str] | None = None, progress_stream=sys.stderr,
              wait_machine: bool = False, share_machine: bool = False, resumable: bool = True) -> StudyFiles:
    """Execute every run of ``plan`` not yet in ``out`` through ``executor``, opened once the folder is
    locked; write each finished run at once. With ``resume``, ``plan`` may be a function of the stored
    plan that returns the plan asked for, called once the folder is locked. Without ``executor`` the runs
    happen here, holding the machine (``wait_machine``, ``share_machine``: harness.locks, the latter
    recorded in study.json).

    Before MNIST is loaded, ``out`` is created, locked and checked: a new study needs a folder without one;
    ``resume`` needs the same plan in study.json, and redoes incomplete and lost runs and, with
    ``retry_failed``, failed and timed-out ones. Every problem with the folder is a StudyError (a failed
    write ends the study, keeping the runs landed); ``resumable``: whether it may suggest --resume.
    """
    files = StudyFiles(Path(out))
    command = list(sys.argv if command is None else command)
    executor = executor or LocalExecutor(files.out, command, wait=wait_machine, share=share_machine,
                                         stream=progress_stream)
    with claim_folder(files, command) as claim, executor:
        if resume:
            stored = read_plan(files.study)
            plan = plan(stored) if callable(plan) else plan
            check_same_plan(stored, plan, files.out)
            runs, epochs, retried = resume_tables(plan, files, retry_failed, progress_stream)
            try:
                sessions = read_sessions(files.environment)
            except (OSError, ValueError) as exc:
                raise StudyError(f"cannot read {files.environment}: {exc}; move it aside to continue without "
                                 "the earlier sessions' records") from None
        elif files.study.exists() or files.runs.exists():
            hint = "use --resume to continue it or choose another folder" if resumable else "choose another folder"
            raise StudyError(f"--out {files.out} already holds a study; {hint}")
        else:
            runs, epochs, retried, sessions = as_table([], RUN_COLUMNS), as_table([], EPOCH_COLUMNS), set(), []
        todo = executor.runs_to_do(plan, without(runs, retried))
        if todo:
            with scratch_folder() as scratch:
                data_path = prepare_data(plan, data_dir, scratch)
                print(f"study: {len(todo)} runs to do -> {files.out}", file=progress_stream, flush=True)
                machines = {**(machines_in(files.environment) if resume else {}), **executor.machines()}
                record = {"sessions": [*sessions, environment_record(command)], "machines": machines}
                write_text(files.environment, json.dumps(record, indent=2) + "\n")
                if not resume or share_machine:
                    write_text(files.study, json.dumps(_study_record(plan, files, share_machine), indent=2) + "\n")
                claim.landed = True
                _run_all(executor, todo, plan, data_path, scratch, timeout, files, runs, epochs, retried,
                         len(sessions), progress_stream)
        else:
            print(f"study: 0 runs to do -> {files.out}", file=progress_stream, flush=True)
            _write_summary(files, runs, epochs)
    return files


def _study_record(plan: StudyPlan, files: StudyFiles, share_machine: bool) -> dict:
    """study.json: the plan, and whether any session ran beside another study (--share-machine)."""
    shared = share_machine
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a first session has no study.json yet
        shared = shared or bool(json.loads(files.study.read_text(encoding="utf-8")).get(SHARED_MACHINE))
    return {**plan.to_dict(), SHARED_MACHINE: shared}


def _run_all(executor: Executor, todo: list, plan: StudyPlan, data_path: Path, scratch: Path, timeout: float,
             files: StudyFiles, runs: pd.DataFrame, epochs: pd.DataFrame, replaced: set, session: int,
             progress_stream) -> None:
    """Have ``executor`` do ``todo`` and commit each run as it finishes (its machine's record, if new,
    first); the rows of a run in ``replaced`` (one being retried, see harness.resume.retried_away) and
    its 'lost' rows give way to its new ones. The summary is written at the end, however it ends."""
    progress = Progress(len(todo), progress_stream)
    recorded: set[str] = set()  # machines recorded from their results (this session)

    def land(spec: RunSpec, result: dict) -> None:
        nonlocal runs, epochs
        run = result["run"]
        if "record" in result and run["machine"] not in recorded:
            record_machines(files.environment, {run["machine"]: result["record"]})
            recorded.add(run["machine"])
        gone = retried_away(spec.key, str(run.get("machine") or ""), replaced)
        old_runs, old_epochs = (without(table, gone) for table in (runs, epochs))
        row = as_table([{**run, "session": session}], RUN_COLUMNS)
        more_runs = pd.concat([supersede_lost(old_runs, run), row], ignore_index=True)
        more_epochs = (pd.concat([old_epochs, as_table(result["epochs"], EPOCH_COLUMNS)], ignore_index=True)
                       if result["epochs"] else old_epochs)
        _commit(files, more_runs, more_epochs)
        runs, epochs = more_runs, more_epochs
        progress.finish(spec, result["run"])

    try:
        with contextlib.closing(executor.results(todo, plan, data_path, scratch, timeout, progress)) as finished:
            for spec, result in finished:
                land(spec, result)
    except BaseException:
        progress.close()
        # the error that ends the study is the one to report; a second Ctrl-C must not cut the summary short
        with contextlib.suppress(StudyError), interrupts_deferred():
            _write_summary(files, runs, epochs)
        raise
    progress.close()
    _write_summary(files, runs, epochs)


def _commit(files: StudyFiles, runs: pd.DataFrame, epochs: pd.DataFrame) -> None:
    """Write both tables, epochs.csv first: a run is in runs.csv only once all its epoch rows are in
    epochs.csv (an interruption in between leaves epoch rows of no run, which a resume drops)."""
    runs = runs.assign(session=pd.to_numeric(runs["session"]).astype("Int64"))  # 0, 1, ..., not 0.0
    with writing(files.epochs):
        write_csv_atomic(files.epochs, epochs[EPOCH_COLUMNS])
    with writing(files.runs):
        write_csv_atomic(files.runs, runs[RUN_COLUMNS])


def _write_summary(files: StudyFiles, runs: pd.DataFrame, epochs: pd.DataFrame) -> None:
    """summary.csv and the tables computed with it (reports.stats.tables: winners, cost model, crossovers)."""
    if len(runs):
        write_tables(files.out, runs, epochs)
