"""Where a study's runs happen: an executor, behind one small interface (``Executor``), chosen by
``open_executor``. The study (harness.study) knows only this interface:

- harness.local_executor: here, one run at a time, each in a fresh worker process;
- harness.dask_executor: on the Dask workers of a cluster (``--scheduler``); Dask is imported only then.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, Protocol

import pandas as pd

from .local_executor import LocalExecutor
from .plan import RunSpec, StudyPlan
from .progress import Progress


class Executor(Protocol):
    """Opened as a context (it holds what it needs meanwhile: this machine's lock, or a connection)."""

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc) -> None: ...

    def runs_to_do(self, plan: StudyPlan, done: pd.DataFrame) -> list:
        """The runs of ``plan`` still to do, given the rows that count as done, checked against the
        machines that will run them: the study counts them and hands them back to ``results``."""

    def machines(self) -> dict:
        """The records (machine name -> harness.environment.machine_record) of the machines known before
        any run; a machine not known then sends its record with its first result."""

    def results(self, todo: list, plan: StudyPlan, data_path: Path, scratch: Path, timeout: float,
                progress: Progress) -> Iterator[tuple[RunSpec, dict]]:
        """Do the runs ``todo`` on the study's data (``data_path``, in the study's ``scratch`` folder) and
        yield each one's spec and rows (harness.rows.run_result, and "record": its machine's record) as
        it finishes, having told ``progress`` it started; what is still running when the iterator is
        closed is stopped."""


def open_executor(scheduler: str | None, placement: str, folder: Path, command: list[str], *,
                  wait_machine: bool = False, share_machine: bool = False, stream=sys.stderr) -> Executor:
    """The local executor, holding this machine's lock for ``folder``'s study (``wait_machine``,
    ``share_machine``: see harness.locks.machine_lock); with ``scheduler``, the Dask executor connected
    to it, placing runs by ``placement``."""
    if scheduler is None:
        return LocalExecutor(folder, command, wait=wait_machine, share=share_machine, stream=stream)
    from .dask_executor import connect

    return connect(scheduler, placement, stream)
