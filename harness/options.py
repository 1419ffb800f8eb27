"""The command line's option values checked before anything runs: numbers (argparse types), lists without
repeats, the results folder and the data folder named; each refused in one line."""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

from reports.folder.files import UsageError

MAX_TIMEOUT_S = 7 * 24 * 3600  # a run's time limit: longer ones overflowed the watchdog's timer


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def timeout_seconds(text: str) -> int:
    value = positive_int(text)
    if value > MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"at most {MAX_TIMEOUT_S} seconds (a week), got {value}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, e.g. 0.95, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], e.g. 0.95; got {text}")
    return value


def once_each(option: str, values):
    """``values`` without repeats, with a note naming those dropped: a plan never holds two identical runs."""
    if values is None:
        return None
    kept = list(dict.fromkeys(values))
    if len(kept) < len(values):
        twice = [str(v) for v in kept if values.count(v) > 1]
        print(f"note: {option} names {', '.join(twice)} more than once; each is planned once", file=sys.stderr)
    return kept


def non_negative_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


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
