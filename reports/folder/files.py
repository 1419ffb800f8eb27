"""Writes of a results folder's files that a reader never sees half of (a temporary file beside the target,
then os.replace), and the errors a command reports in one line: bad options, an unusable folder."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable


class UsageError(Exception):
    """Bad options or an unusable results folder (StudyError): reported as one line,
    exit status 2."""


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
