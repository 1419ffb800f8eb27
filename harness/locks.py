"""The two locks of a timing study: one per results folder (one study writes a folder) and one per
machine (one timing study measures a machine's cores at a time), each with a holder file that names
who holds it (pid, host, folder, command) for the message of a study turned away.

A lock file is only ever removed by the process that holds it, and a lock is only counted as taken
when the file locked is still the one at the lock's path: a study that loses a race never removes
the winner's lock, and one that locked a file removed meanwhile tries again.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import socket
import sys
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from reports.folder.files import StudyError, write_text_atomic

MACHINE_LOCK_VARIABLE = "MLP_STUDY_MACHINE_LOCK_DIR"  # where the machine lock lives (default: the user's cache)
HOLDER_SUFFIX = ".holder"


class LockBusy(Exception):
    """The lock is held by another process; the message says who."""


def _same_file(lock: FileLock, path: Path) -> bool:
    """Whether the file ``lock`` holds is still the one at ``path`` (not removed or replaced meanwhile).
    filelock keeps the locked descriptor in its context; it has since 3.10."""
    fd = lock._context.lock_file_fd  # noqa: SLF001 - the one way to compare what is locked with the path
    try:
        return fd is not None and os.fstat(fd).st_ino == os.stat(path).st_ino
    except OSError:
        return False


def holder_text(path: Path) -> str:
    """Who holds the lock at ``path``, from its holder file."""
    try:
        holder = json.loads(Path(f"{path}{HOLDER_SUFFIX}").read_text(encoding="utf-8"))
        return (f"pid {holder['pid']} on {holder['host']} since {holder['started']}, folder {holder['folder']} "
                f"({holder['command']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another study (which has not said who it is yet)"


class HeldLock:
    """A lock file taken with filelock, and its holder file; ``remove`` deletes the lock file while held."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.holder = Path(f"{path}{HOLDER_SUFFIX}")
        self._lock = FileLock(self.path)

    def acquire(self, wait: bool = False) -> None:
        """Take the lock now (LockBusy when held) or, with ``wait``, once it is free."""
        while True:
            try:
                self._lock.acquire(timeout=-1 if wait else 0)
            except Timeout:
                raise LockBusy(holder_text(self.path)) from None
            if _same_file(self._lock, self.path):
                return
            self._lock.release()  # the file was removed by its last holder meanwhile: lock the new one

    def announce(self, folder: Path, command: list[str]) -> None:
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started, "folder": str(folder),
                  "command": " ".join(command)}
        write_text_atomic(self.holder, json.dumps(holder) + "\n")

    def release(self, remove: bool = False) -> None:
        """Release the lock; with ``remove``, delete the lock file first (while it is still held)."""
        try:
            with contextlib.suppress(OSError):  # a folder gone read-only: the lock ends with the process anyway
                self.holder.unlink(missing_ok=True)
                if remove:
                    self.path.unlink(missing_ok=True)
        finally:
            self._lock.release()


def machine_lock_path(machine: str | None = None) -> Path:
    """The machine's lock file: in $MLP_STUDY_MACHINE_LOCK_DIR, else the user's cache folder (the temp
    folder where there is none), keyed by host (or ``machine``, a cluster's name for it) so that a cache
    shared over NFS holds one per machine."""
    folder = os.environ.get(MACHINE_LOCK_VARIABLE)
    if not folder:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = cache / "mlp-study" if cache.parent.is_dir() else Path(tempfile.gettempdir()) / "mlp-study"
    key = re.sub(r"[^\w.-]", "_", machine or socket.gethostname())
    return Path(folder) / f"machine-{key}.lock"


@contextlib.contextmanager
def machine_lock(folder: Path, command: list[str], *, wait: bool = False, share: bool = False, stream=sys.stderr,
                 machine: str | None = None):
    """Hold the machine lock for the block: one timing study per machine. Held by another: a StudyError
    naming it, or with ``wait`` a line and a wait for it; with ``share`` the lock is not taken at all
    (the study runs beside others knowingly; the caller records that)."""
    if share:
        yield
        return
    path = machine_lock_path(machine)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudyError(f"the machine lock's folder {path.parent} cannot be created: {exc.strerror or exc} "
                         f"(set {MACHINE_LOCK_VARIABLE} to a writable folder)") from None
    lock = HeldLock(path)
    try:
        try:
            lock.acquire()
        except LockBusy as busy:
            if not wait:
                raise StudyError(f"this machine is measuring another study: {busy}; wait for it (--wait) "
                                 "or run beside it knowingly (--share-machine: both timings are disturbed)") from None
            print(f"waiting for the machine: {busy}", file=stream, flush=True)
            lock.acquire(wait=True)
    except OSError as exc:
        raise StudyError(f"the machine lock {path} cannot be taken: {exc.strerror or exc} "
                         f"(set {MACHINE_LOCK_VARIABLE} to a writable folder)") from None
    try:
        with contextlib.suppress(OSError):  # held all the same; a message turned away will not say by whom
            lock.announce(folder, command)
        yield
    finally:
        lock.release()
