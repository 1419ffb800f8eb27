"""One run in a fresh worker process (``python -m harness.worker``), with how busy the machine was
meanwhile: what the local executor does with each run, and a Dask worker with each run it is given; and
a run's rows, built in one place whichever executor ran it (``run_result``)."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from reports.folder.files import writing
from reports.folder.schema import RUN_COLUMNS, RUN_KEY

from .environment import PROJECT_ROOT, machine_name
from .noise import noise_between, snapshot
from .plan import RunSpec, StudyPlan


def run_result(spec: RunSpec, run: dict, epochs: list[dict] = (), machine: str | None = None) -> dict:
    """A finished (or failed, or lost) run as a study commits it: ``{"run": row, "epochs": rows}``. The
    row holds the spec's columns, then what the run reported (``run``), named after ``machine``; each
    epoch row holds the run's key, then what the run reported of that epoch, named after ``machine``."""
    base = {k: v for k, v in dataclasses.asdict(spec).items() if k in RUN_COLUMNS}
    key = {k: getattr(spec, k) for k in RUN_KEY}
    return {"run": {**base, **run, "machine": machine},
            "epochs": [{**key, **epoch, "machine": machine} for epoch in epochs]}


def execute(spec: RunSpec, plan: StudyPlan, data_path: Path, scratch: Path, timeout: float, progress) -> dict:
    """Run one spec in a fresh worker process (its files in ``scratch``), telling ``progress`` (a
    harness.progress.Progress) each epoch; always returns its rows (``run_result``), failures included,
    with how busy the machine was meanwhile."""
    spec_path, result_path = scratch / "spec.json", scratch / "result.json"
    result_path.unlink(missing_ok=True)
    payload = {**dataclasses.asdict(spec), "config": plan.config.to_dict(), "data_path": str(data_path),
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
            with contextlib.suppress(ValueError, KeyError):
                progress.epoch(spec, json.loads(line)["epoch"])
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
