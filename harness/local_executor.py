"""The local executor: a study's runs here, one at a time, each in a fresh worker process
(``python -m harness.worker``), while this machine's lock is held (harness.locks: one timing study per
machine). ``execute``, one run in a fresh worker process, is also what a Dask worker does with each run
it is given (harness.dask_executor)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pandas as pd

from keras_baseline.runtime import all_cores
from reports.folder.files import writing

from .environment import PROJECT_ROOT, machine_name, machine_record
from .locks import machine_lock
from .noise import noise_between, snapshot
from .plan import RunSpec, StudyPlan
from .progress import Progress
from .rows import run_result, runs_to_do


class LocalExecutor:
    """Runs here; holds this machine's lock from entering to leaving (harness.locks.machine_lock, with its
    ``wait`` and ``share``, naming ``folder`` and ``command`` as the holder). The interface: harness.executors."""

    def __init__(self, folder: Path, command: list[str], *, wait: bool = False, share: bool = False,
                 stream=sys.stderr):
        self._machine_lock = machine_lock(folder, command, wait=wait, share=share, stream=stream)

    def __enter__(self) -> "LocalExecutor":
        self._machine_lock.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._machine_lock.__exit__(*exc)

    def runs_to_do(self, plan: StudyPlan, done: pd.DataFrame) -> list[RunSpec]:
        """The runs of ``plan`` with no row in ``done``, once its thread counts fit this machine's cores."""
        plan.validate(cores=all_cores())
        return runs_to_do(plan.runs(), done)

    def machines(self) -> dict:
        return {machine_name(): machine_record()}

    def results(self, todo: list[RunSpec], plan: StudyPlan, data_path: Path, scratch: Path, timeout: float,
                progress: Progress) -> Iterator[tuple[RunSpec, dict]]:
        for spec in todo:
            progress.start(spec)
            yield spec, execute(spec, plan, data_path, scratch, timeout, progress)


def execute(spec: RunSpec, plan: StudyPlan, data_path: Path, scratch: Path, timeout: float, progress: Progress) -> dict:
    """Run one spec in a fresh worker process (its files in ``scratch``); always returns its rows
    (harness.rows.run_result), failures included, with how busy the machine was meanwhile."""
    spec_path, result_path = scratch / "spec.json", scratch / "result.json"
    result_path.unlink(missing_ok=True)
    payload = {**spec.to_dict(), "config": plan.config.to_dict(), "data_path": str(data_path),
               "parent_pid": os.getpid()}
    with writing(spec_path):
        spec_path.write_text(json.dumps(payload))
    before = snapshot()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    # Its own session: Ctrl-C and the terminal's other signals reach the study alone, which ends the
    # worker itself; and the worker ends when the study does (see harness.worker.die_with_parent).
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.worker", str(spec_path), str(result_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT, start_new_session=True,
    )
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(process.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            try:
                progress.epoch(spec, json.loads(line)["epoch"])
            except (ValueError, KeyError):
                pass
        process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    timed_out = process.returncode != 0 and time.monotonic() >= deadline
    noise = noise_between(before, snapshot())
    reader.join(timeout=5)

    if result_path.exists():
        result = json.loads(result_path.read_text())
    elif timed_out:
        result = {"run": {"status": "timeout", "error": f"no result within the time limit of {timeout:.0f} s"},
                  "epochs": []}
    else:
        tail = " | ".join(line.strip() for line in stderr_lines[-3:] if line.strip())
        result = {"run": {"status": "failed", "error": f"worker exited with status {process.returncode}: {tail}"},
                  "epochs": []}
    return run_result(spec, {**result["run"], **noise}, result["epochs"], machine_name())
