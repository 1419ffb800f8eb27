"""The results folder of a study: its files' paths, claiming it (created, proven writable, locked, and
left as found by a failed start), whole-file writes there, and the scratch folder beside it.

A results folder holds one study, worked on by one process at a time (a lock in the folder, see
harness.locks); every problem with it is a StudyError (one line).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import psutil

from reports.folder.files import StudyError, write_text_atomic, writing
from reports.folder.schema import ENVIRONMENT_FILE, EPOCHS_FILE, RUNS_FILE, STUDY_FILE, SUMMARY_FILE

from .locks import HeldLock, LockBusy

SCRATCH_PREFIX = "mlp-study-"  # + the owner's pid: a study removes the scratch folders of dead owners


class StudyFiles:
    """The paths of a results folder ``out`` and of its files."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.runs, self.epochs, self.summary = (self.out / name for name in (RUNS_FILE, EPOCHS_FILE, SUMMARY_FILE))
        self.environment, self.study, self.lock = (self.out / name for name in (ENVIRONMENT_FILE, STUDY_FILE,
                                                                                ".study.lock"))


def write_text(path: Path, text: str) -> None:
    """Write a file of the folder whole (atomically); a failed write is a StudyError."""
    with writing(path):
        write_text_atomic(path, text)


@contextlib.contextmanager
def claim_folder(files: StudyFiles, command: list[str]):
    """Create the folder, prove that a file can be written there and lock it, all before MNIST is
    loaded. Yields a claim whose ``landed`` the study sets once it has written into the folder: if it
    fails before that, the lock file and the folders made here are removed again, so a failed start
    leaves nothing. A study turned away never removes the lock file: it is another's."""
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
        raise StudyError(f"--out {out} is in use by {busy}; wait for it to end or choose another "
                         "folder") from None
    except OSError as exc:
        _remove_made(made)
        raise StudyError(f"--out {out} cannot be locked: {exc.strerror or exc}") from None
    claim = SimpleNamespace(landed=False)
    try:
        with writing(lock.holder):
            lock.announce(out, command)
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


@contextlib.contextmanager
def scratch_folder():
    """A temporary folder for the study's data and its runs' files, removed at the end; first the
    scratch folders (the data, ~55 MB on the full MNIST) of studies that were killed too hard to clean
    up (kill -9) are removed: those whose owner, named in the folder's name, is gone."""
    temp = Path(tempfile.gettempdir())
    for folder in temp.glob(f"{SCRATCH_PREFIX}*"):
        owner = re.fullmatch(rf"{re.escape(SCRATCH_PREFIX)}(\d+)-\w+", folder.name)
        if owner and folder.is_dir() and folder.stat().st_uid == os.getuid() and not _alive(int(owner[1])):
            shutil.rmtree(folder, ignore_errors=True)
    with writing(temp, f"a scratch folder in {temp}"):
        scratch = tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
    with scratch as path:
        yield Path(path)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
