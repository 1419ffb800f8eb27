"""The study runner: one worker process per run, results written as each run finishes.

The parent only schedules and collects. It loads MNIST once, fits the input scaler once and hands
every worker the same arrays through one .npz file; runs are executed one at a time, so that they
never compete for the cores they are measuring.

A results folder holds one study: one plan (study.json), worked on by one process at a time (a lock
in the folder; and one timing study per machine: harness.locks), over one or more sessions
(environment.json, one record each). A finished run lands whole: its epoch rows first, then its row
in runs.csv, which is the commit record; a resume redoes any run whose rows are incomplete. Every
problem with the folder is a StudyError (one line). With a Dask scheduler the runs go to the
cluster's workers instead (harness.cluster), and their results land here the same way.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pandas as pd
import psutil

from keras_baseline.runtime import all_cores
from reports.folder.files import StudyError, UsageError, write_text_atomic, writing
from reports.folder.results import (
    RESUME_EPOCH_COLUMNS, RESUME_RUN_COLUMNS, DamagedTable, as_table, read_results, supersede_lost, write_csv_atomic,
)
from reports.folder.schema import (
    ENVIRONMENT_FILE, EPOCH_COLUMNS, EPOCHS_FILE, RUN_COLUMNS, RUNS_FILE, SHARED_MACHINE, STUDY_FILE, SUMMARY_FILE,
    variant_descriptions,
)
from reports.folder.sessions import machines_in, read_sessions
from reports.stats.tables import write_tables

from .interrupts import interrupts_deferred
from .locks import HeldLock, LockBusy, machine_lock
from .environment import environment_record, machine_name, machine_record
from .plan import Extra, RunSpec, StudyPlan
from .runner import Progress, execute, run_key, runs_to_do

SCRATCH_PREFIX = "mlp-study-"  # + the owner's pid: a study removes the scratch folders of dead owners
RETRIED = ("failed", "timeout")  # what --retry-failed redoes; 'diverged' is a result, not a failure


@dataclass
class StudyFiles:
    out: Path

    @property
    def runs(self) -> Path:
        return self.out / RUNS_FILE

    @property
    def epochs(self) -> Path:
        return self.out / EPOCHS_FILE

    @property
    def summary(self) -> Path:
        return self.out / SUMMARY_FILE

    @property
    def environment(self) -> Path:
        return self.out / ENVIRONMENT_FILE

    @property
    def study(self) -> Path:
        return self.out / STUDY_FILE

    @property
    def lock(self) -> Path:
        return self.out / ".study.lock"


def prepare_data(plan: StudyPlan, data_dir, folder: Path) -> Path:
    """Load MNIST (verified), cut the training set to ``train_limit`` and fit the scaler, once."""
    from harness.data import load_mnist
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


def run_study(plan: StudyPlan | Callable[[StudyPlan], StudyPlan], out: Path, data_dir=None, *, resume: bool = False,
              retry_failed: bool = False, timeout: float = 1800.0, command: list[str] | None = None,
              progress_stream=sys.stderr, scheduler: str | None = None, placement: str = "spread",
              wait_machine: bool = False, share_machine: bool = False, resumable: bool = True) -> StudyFiles:
    """Execute every run of ``plan`` not yet in ``out``; write each finished run at once. With
    ``resume``, ``plan`` may be a function of the stored plan that returns the plan asked for (the
    command line's options over the stored plan), called once the folder is locked. With
    ``scheduler`` (a Dask scheduler's address) the runs go to its workers, placed by ``placement``.

    Before MNIST is loaded, ``out`` is created, written to, locked and checked: a new study needs a
    folder without one; ``resume`` needs the same plan in study.json and readable tables, and redoes
    incomplete and lost runs and, with ``retry_failed``, failed and timed-out ones. Every problem with
    the folder, then or later, is a StudyError (a write that fails ends the study, keeping the runs
    that had landed); ``resumable``: whether its message may suggest --resume (parity has none).
    """
    files = StudyFiles(Path(out))
    command = list(sys.argv if command is None else command)
    machine = {"wait": wait_machine, "share": share_machine or scheduler is not None, "stream": progress_stream}
    with _claim(files, command, machine) as claim, _cluster(scheduler, placement, progress_stream) as cluster:
        if resume:
            stored = read_plan(files.study)
            plan = plan(stored) if callable(plan) else plan
            _check_plan(stored, plan, files)
            runs, epochs, retried = _resume_tables(plan, files, retry_failed, progress_stream)
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
        if cluster is None:  # a cluster's machines have their own cores
            plan.validate(cores=all_cores())
        pending = _not_retried(runs, retried)
        todo = runs_to_do(plan.runs(), pending) if cluster is None else cluster.todo(plan.runs(), pending)
        if todo:
            _remove_stale_scratch()
            with writing(Path(tempfile.gettempdir()), f"a scratch folder in {tempfile.gettempdir()}"):
                scratch_folder = tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
            with scratch_folder as scratch:
                scratch = Path(scratch)
                data_path = prepare_data(plan, data_dir, scratch)
                print(f"study: {len(todo)} runs to do -> {files.out}", file=progress_stream, flush=True)
                machines = machines_in(files.environment) if resume else {}
                if cluster is None:  # a cluster's machines are recorded as their first results come back
                    machines[machine_name()] = machine_record()
                record = {"sessions": [*sessions, environment_record(command)], "machines": machines}
                _write_text(files.environment, json.dumps(record, indent=2) + "\n")
                if not resume or share_machine:
                    _write_text(files.study, json.dumps(_study_record(plan, files, share_machine), indent=2) + "\n")
                claim.landed = True
                _run_all(todo, plan, data_path, scratch, timeout, files, runs, epochs, retried, len(sessions),
                         progress_stream, cluster)
        else:
            print(f"study: 0 runs to do -> {files.out}", file=progress_stream, flush=True)
            _write_summary(files, runs, epochs)
    return files


def _study_record(plan: StudyPlan, files: StudyFiles, share_machine: bool) -> dict:
    """study.json: the plan, and whether any session ran beside another study (--share-machine)."""
    shared = share_machine
    if files.study.exists():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            shared = shared or bool(json.loads(files.study.read_text(encoding="utf-8")).get(SHARED_MACHINE))
    return {**plan.to_dict(), SHARED_MACHINE: shared}


def _cluster(scheduler: str | None, placement: str, stream):
    """The Dask cluster the runs go to (harness.cluster, imported only then), or none: the local runner."""
    if scheduler is None:
        return contextlib.nullcontext()
    from .cluster import connect

    return connect(scheduler, placement, stream)


def _run_all(todo, plan, data_path, scratch, timeout, files, runs, epochs, replaced, session, progress_stream,
             cluster=None) -> None:
    """Run ``todo`` (here, or on the cluster) and commit each run as it finishes; the rows of a run in
    ``replaced`` (one being retried, see _retried_away) and its 'lost' rows give way to its new ones."""
    progress = Progress(len(todo), progress_stream)

    def land(spec: RunSpec, result: dict) -> None:
        nonlocal runs, epochs
        row = as_table([{**result["run"], "session": session}], RUN_COLUMNS)
        gone = _retried_away(spec.key, str(result["run"].get("machine") or ""), replaced)
        old_runs, old_epochs = (_without(table, gone) for table in (runs, epochs))
        more_runs = pd.concat([supersede_lost(old_runs, result["run"]), row], ignore_index=True)
        more_epochs = (pd.concat([old_epochs, as_table(result["epochs"], EPOCH_COLUMNS)], ignore_index=True)
                       if result["epochs"] else old_epochs)
        _commit(files, more_runs, more_epochs)
        runs, epochs = more_runs, more_epochs
        progress.finish(spec, result["run"])

    try:
        if cluster is None:
            for spec in todo:
                progress.start(spec)
                land(spec, execute(spec, plan, data_path, scratch, timeout, progress))
        else:  # the cluster runs them; each result comes back to land() here
            cluster.run(todo, plan, data_path, timeout, land, files.environment, progress)
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


def _write_text(path: Path, text: str) -> None:
    with writing(path):
        write_text_atomic(path, text)


# -- the folder: writable, locked, and cleaned up after a failed start --------------------------------
@contextlib.contextmanager
def _claim(files: StudyFiles, command: list[str], machine: dict):
    """Create the folder, prove that a file can be written there and lock it, then take the machine
    (harness.locks.machine_lock with ``machine``'s options), all before MNIST is loaded. Yields a claim
    whose ``landed`` the study sets once it has written into the folder: if it fails before that, the
    lock file and the folders made here are removed again, so a failed start leaves nothing. A study
    turned away never removes the lock file: it is another's."""
    out = files.out
    made = [p for p in (out, *out.parents) if not p.exists()]
    for what, step in (("created", lambda: out.mkdir(parents=True, exist_ok=True)), ("written", lambda: _probe(out))):
        try:
            step()
        except OSError as exc:
            _remove_made(made)
            raise StudyError(f"--out {out} cannot be {what}: {exc.strerror or exc}") from None
    lock = HeldLock(files.lock)
    try:
        lock.acquire()
    except LockBusy as busy:
        _remove_made(made)
        raise StudyError(f"--out {out} is in use by {busy.holder}; wait for it to end or choose another "
                         "folder") from None
    except OSError as exc:
        _remove_made(made)
        raise StudyError(f"--out {out} cannot be locked: {exc.strerror or exc}") from None
    claim = SimpleNamespace(landed=False)
    try:
        with writing(lock.holder):
            lock.announce(out, command)
        with machine_lock(out, command, **machine):
            yield claim
    finally:
        lock.release(remove=not claim.landed)
        if not claim.landed:
            _remove_made(made)


def _probe(folder: Path) -> None:
    """Write a page into a file there and remove it: fails now if the folder is read-only or full."""
    with tempfile.TemporaryFile(dir=folder) as probe:
        probe.write(b"\0" * 4096)
        probe.flush()
        os.fsync(probe.fileno())


def _remove_made(made: list[Path]) -> None:
    """Remove the folders a failed start created (innermost first), if they are empty."""
    for folder in made:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _remove_stale_scratch() -> None:
    """Remove the scratch folders (the data, ~55 MB on the full MNIST) of studies that were killed
    too hard to clean up (kill -9): those whose owner, named in the folder's name, is gone."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        owner = re.fullmatch(rf"{re.escape(SCRATCH_PREFIX)}(\d+)-\w+", folder.name)
        if owner and folder.is_dir() and folder.stat().st_uid == os.getuid() and not _alive(int(owner[1])):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- resume: the same plan, and the runs to redo -------------------------------------------------------
def read_plan(path: Path) -> StudyPlan:
    """The plan stored in a results folder's study.json (what ``--resume`` continues)."""
    from numpy_mlp import MLPConfig

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"--resume: {Path(path).parent} holds no study to continue (no study.json)") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"cannot read {path}: {exc}") from None
    try:
        config = dict(data["config"], layer_sizes=tuple(data["config"]["layer_sizes"]))
        plan = StudyPlan(
            frameworks=tuple(data["frameworks"]),
            variants={framework: tuple(names) for framework, names in data["variants"].items()},
            batch_sizes=tuple(data["batch_sizes"]),
            epochs=data["epochs"],
            repeats=data["repeats"],
            threads=tuple(data["threads"]),
            seed=data["seed"],
            train_limit=data["train_limit"],
            phase_epochs=data["phase_epochs"],
            eval_every_epoch=data["eval_every_epoch"],
            config=MLPConfig.from_dict(config),
            preset=data.get("preset"),
            once=tuple(data.get("once", ())),
            extras=tuple(Extra.from_dict(extra) for extra in data.get("extras", ())),
        )
    except UsageError as exc:  # a value out of its range (StudyPlan.validate)
        raise StudyError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StudyError(f"{path} is not a study plan ({type(exc).__name__}: {exc})") from None
    known = variant_descriptions()
    unknown = [f"{f}/{v}" for _, _, f, v in plan.cells() if v not in known.get(f, {})]
    if unknown:
        raise StudyError(f"{path} plans {', '.join(unknown)}, not known here (a plugin's? see MLP_STUDY_PLUGINS)")
    return plan


def _plan_fields(plan: StudyPlan) -> dict:
    """The plan as flat, comparable fields (the config's as ``config.NAME``); the preset's name is a label."""
    fields = json.loads(json.dumps(plan.to_dict()))
    fields.pop("preset", None)
    config = fields.pop("config")
    return {**fields, **{f"config.{k}": v for k, v in config.items()}}


def _describe(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key}/{name}" for key, names in value.items() for name in names) or "none"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def _check_plan(stored: StudyPlan, plan: StudyPlan, files: StudyFiles) -> None:
    stored, wanted = _plan_fields(stored), _plan_fields(plan)
    differ = [k for k in dict.fromkeys([*stored, *wanted]) if stored.get(k) != wanted.get(k)]
    if differ:
        was = ", ".join(f"{k} {_describe(stored.get(k))}" for k in differ)
        now = ", ".join(f"{k} {_describe(wanted.get(k))}" for k in differ)
        raise StudyError(f"--resume: {files.out} was planned with {was}; the options ask for {now}")


def _resume_tables(plan: StudyPlan, files: StudyFiles, retry_failed: bool, stream) -> tuple[pd.DataFrame, pd.DataFrame, set]:
    """runs.csv and epochs.csv as a resume continues them, and the runs to retry.

    Damaged tables, and rows of runs another plan would make, are a StudyError. A run whose epoch rows
    are not exactly its epochs (an ok run: 1..epochs; one that failed or diverged: 1..k), or that is in
    runs.csv twice, is dropped, to be redone, and so are epoch rows of runs not in runs.csv. With
    ``retry_failed``, failed and timed-out runs are returned to be redone; their rows stay until
    their new rows replace them."""
    try:
        runs = read_results(files.runs, RUN_COLUMNS, RESUME_RUN_COLUMNS)
        epochs = read_results(files.epochs, EPOCH_COLUMNS, RESUME_EPOCH_COLUMNS)
    except DamagedTable as exc:
        raise StudyError(f"--resume: {exc}") from None
    specs = {spec.key: spec for spec in plan.runs()}
    rows = [(run_key(row), row) for _, row in runs.iterrows()]
    for key, row in rows:
        spec = specs.get(key)
        if spec is None or (row["epochs"], row["seed"]) != (spec.epochs, spec.seed):
            raise StudyError(f"--resume: {files.runs} holds runs that study.json does not plan (e.g. {key[0]}/{key[1]} "
                             f"batch {key[2]}, {row['epochs']} epochs, seed {row['seed']}); continue in a new folder")
    epoch_keys = [_placed_key(row) for _, row in epochs.iterrows()]
    numbers: dict[tuple, list[int]] = {}
    for key, epoch in zip(epoch_keys, epochs["epoch"]):
        numbers.setdefault(key, []).append(int(epoch))
    placed = [(_placed_key(row), row) for _, row in runs.iterrows()]
    times = {}
    for key, _ in placed:
        times[key] = times.get(key, 0) + 1

    def whole(key, row) -> bool:
        have = sorted(numbers.get(key, []))
        last = row["epochs"] if row["status"] == "ok" else len(have)
        return last <= row["epochs"] and have == list(range(1, last + 1))

    twice = {key for key, count in times.items() if count > 1}
    incomplete = {key for key, row in placed if key not in twice and not whole(key, row)}
    redone = incomplete | twice
    retried = {key for key, row in placed if retry_failed and row["status"] in RETRIED and key not in redone}
    kept = [key not in redone for key, _ in placed]
    kept_keys = {key for key, _ in placed} - redone
    orphans = sum(key not in kept_keys and key not in redone for key in epoch_keys)
    for count, what, keys in ((len(incomplete), "redoing {} run(s) whose epoch rows are incomplete", {k[:-1] for k in incomplete}),
                              (len(twice), "redoing {} run(s) that runs.csv holds more than once",
                               {k[:-1] for k in twice}),
                              (len(retried), "retrying {} failed or timed-out run(s)", {k[:-1] for k in retried})):
        if count:
            print(f"resume: {what.format(count)}: {', '.join(specs[k].label for k in sorted(keys))}", file=stream, flush=True)
    if orphans:
        print(f"resume: dropping {orphans} epoch row(s) of runs that never reached runs.csv", file=stream, flush=True)
    epochs = _rows(epochs, [key in kept_keys for key in epoch_keys])
    return _rows(runs, kept).reset_index(drop=True), epochs.reset_index(drop=True), retried


def _placed_key(row) -> tuple:
    """A run's key and the machine it ran on (empty for rows of an older harness): in a study placed
    on every machine of a cluster, each machine makes its own run of every key."""
    machine = row.get("machine")
    return (*run_key(row), "" if pd.isna(machine) else str(machine))


def _not_retried(runs: pd.DataFrame, retried: set) -> pd.DataFrame:
    """The rows that count as done on a resume: all but the failed ones being retried (placed keys: each
    machine of an every-machine study redoes only its own failures)."""
    return _rows(runs, [_placed_key(row) not in retried for _, row in runs.iterrows()])


def _retried_away(key: tuple, machine: str, retried: set) -> set:
    """The rows (placed keys) that the run ``key``, landing from ``machine``, replaces when it is retried: that
    machine's own (each machine of an every-machine study redoes only its own failures), or all of the key's
    when that machine had none (the run went to another machine than the one it failed on)."""
    old = {placed for placed in retried if placed[:-1] == key}
    return {placed for placed in old if placed[-1] == machine} or old


def _without(table: pd.DataFrame, placed_keys: set) -> pd.DataFrame:
    """The rows of a table that are not of the runs (placed keys) ``placed_keys``."""
    if not placed_keys:
        return table
    return _rows(table, [_placed_key(row) not in placed_keys for _, row in table.iterrows()])


def _rows(table: pd.DataFrame, keep: list[bool]) -> pd.DataFrame:
    """The rows of ``table`` where ``keep`` is true (an empty list selects no rows, not no columns)."""
    return table.loc[np.asarray(keep, dtype=bool)]
