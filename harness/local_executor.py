"""The local executor: a study's runs here, one at a time, each in a fresh worker process
(harness.one_run), while this machine's lock is held (harness.locks: one timing study per machine)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pandas as pd

from keras_baseline.runtime import all_cores

from .environment import machine_name, machine_record
from .locks import machine_lock
from .one_run import execute
from .plan import RunSpec, StudyPlan, runs_to_do
from .progress import Progress


class LocalExecutor:
    """Runs here; holds this machine's lock from entering to leaving (harness.locks.machine_lock, with its
    ``wait`` and ``share``, naming ``folder`` and ``command`` as the holder). The interface: harness.study.Executor."""

    def __init__(self, folder: Path, command: list[str], *, wait: bool = False, share: bool = False,
                 stream=sys.stderr):
        self._machine_lock = machine_lock(folder, command, wait=wait, share=share, stream=stream)

    def __enter__(self) -> LocalExecutor:
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
