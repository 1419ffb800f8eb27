"""The environment record stored with every session of a study: machine, versions, BLAS, threads, commit."""
from __future__ import annotations

import datetime
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from keras_baseline.runtime import all_cores
from reports.folder.sessions import SESSION_ONLY

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _cpuinfo(*keys: str) -> str | None:
    """The first value of one of ``keys`` in the kernel's /proc/cpuinfo, or None (off Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(keys)), None)


def _git_commit() -> str | None:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    try:
        commit, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}{'-dirty' if dirty else ''}" if commit else None


def environment_record(command: list[str] | None = None) -> dict:
    """Everything that every result carries. TensorFlow is not imported (versions come from metadata;
    the threads TensorFlow actually used are read back in each worker and stored per run)."""
    from threadpoolctl import threadpool_info

    import numpy

    return {
        "cpu_model": _cpuinfo("model name") or platform.processor() or platform.machine(),
        "cores": all_cores(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "pandas": _version("pandas"),
        "tensorflow": _version("tensorflow-cpu", "tensorflow"),
        "keras": _version("keras"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "torch": _version("torch"),  # None where the optional PyTorch is not installed
        "blas": [
            {k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for info in threadpool_info()
        ],
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS",
                                 "TF_ENABLE_ONEDNN_OPTS unset: TensorFlow's default for this build"),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command if command is not None else sys.argv),
    }


def machine_name() -> str:
    """The name a run's row gives the machine it ran on (the ``machine`` column): its host name."""
    return socket.gethostname()


def machine_record() -> dict:
    """One machine's entry in environment.json's "machines": its host name, CPU model and flags,
    cores, BLAS and its kernel ('architecture'), versions and commit (the parts of
    ``environment_record`` that belong to a machine rather than to a session)."""
    record = environment_record()
    for key in SESSION_ONLY:
        record.pop(key)
    return {"host": machine_name(), **record, "cpu_flags": _cpuinfo("flags", "Features")}  # AVX2, FMA, ...
