"""The environment record stored with every session of a study: machine, versions, BLAS, threads, commit."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}{'-dirty' if dirty else ''}" if commit else None


def environment_record(command: list[str] | None = None) -> dict:
    """Everything that every result carries. TensorFlow is not imported (versions come from metadata;
    the threads TensorFlow actually used are read back in each worker and stored per run)."""
    from threadpoolctl import threadpool_info

    import numpy

    from .plan import all_cores

    return {
        "cpu_model": _cpu_model(),
        "cores": all_cores(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "pandas": _version("pandas"),
        "tensorflow": _version("tensorflow-cpu", "tensorflow"),
        "keras": _version("keras"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "blas": [
            {k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for info in threadpool_info()
        ],
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TF_ENABLE_ONEDNN_OPTS unset: TensorFlow's default for this build"),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command if command is not None else sys.argv),
    }


def read_sessions(path) -> list[dict]:
    """The environment records of a study's sessions (the first run and each --resume), oldest
    first, from its environment.json: ``{"sessions": [...]}``; a file of an older harness holds one
    record, read as one session; no file, none. ValueError when the file holds neither."""
    path = Path(path)
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "sessions" not in data:
        return [data]
    sessions = data.get("sessions") if isinstance(data, dict) else None
    if not isinstance(sessions, list) or not all(isinstance(s, dict) for s in sessions):
        raise ValueError("it holds neither a list of sessions nor one environment record")
    return sessions
