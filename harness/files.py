"""How a command fails or stops in one line (bad options, unusable folders, interruptions), and writes
that a reader never sees half of (a temporary file beside the target, then os.replace)."""
from __future__ import annotations

import contextlib
import datetime
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable


class UsageError(Exception):
    """Bad options or an unusable results folder (StudyError): reported as one line,
    exit status 2."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that they end a command the way Ctrl-C does:
    the worker is stopped, the summary written, the scratch folder removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def interrupted(exc: KeyboardInterrupt, what: str) -> int:
    """Say that ``exc`` (Ctrl-C or an Interrupted) stopped the command, then ``what``; the exit status,
    128 + the signal's number."""
    signum = getattr(exc, "signum", signal.SIGINT)
    print(f"\ninterrupted ({signal.Signals(signum).name}){what}", file=sys.stderr)
    return 128 + signum


@contextlib.contextmanager
def interrupts_deferred():
    """Hold back Ctrl-C, SIGTERM and SIGHUP for the block (in the main thread; signals reach no other): a
    second Ctrl-C while an interrupted study writes its summary would leave none. What arrives meanwhile
    is dropped: the command is stopping already."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StudyError(UsageError):
    """The results folder cannot be used (unwritable, in use, another plan, damaged tables) or a write
    failed: one line for the user, exit status 2; what had landed is kept."""


@contextlib.contextmanager
def writing(path: Path, what: str | None = None):
    """Turn a failed write (read-only, full, vanished folder) into one StudyError line."""
    try:
        yield
    except OSError as exc:
        raise StudyError(f"cannot write {what or path}: {exc.strerror or exc}") from None


def write_atomic(path: Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` for a temporary file beside ``path`` and move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_out_dir(out: str | None, resume: bool, prefix: str = "") -> Path:
    """The results folder asked for, or a new one under results/ named by the time and this process's pid
    (unique: two studies started in the same second never pick the same one)."""
    if out is None:
        if resume:
            raise UsageError("--resume needs --out: the folder of the study to continue")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path("results") / f"{prefix}{stamp}-{os.getpid()}"
    if not out.strip():
        raise UsageError("--out is empty: name the results folder")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    return path


def check_data_dir(data_dir: str | None) -> str | None:
    """An explicitly named data folder must be readable; the loader verifies the files themselves. An
    empty MNIST_DIR counts as unset (the caches are searched); an empty --data-dir is refused."""
    if data_dir is not None and not data_dir.strip():
        raise UsageError("--data-dir is empty: name the folder with MNIST")
    folder = data_dir or os.environ.get("MNIST_DIR") or None
    if folder is None:
        return None
    path = Path(folder)
    source = "--data-dir" if data_dir else "MNIST_DIR"
    if not path.exists():
        raise UsageError(f"{source} {folder} does not exist")
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"{source} {folder} is not readable")
    return folder
