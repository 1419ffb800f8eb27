"""One run in a fresh worker process (harness.worker), and which runs of a plan are still to do;
used alike by the local study runner (harness.study) and the Dask runner (harness.cluster)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from reports.folder.files import writing
from reports.folder.schema import LOST, OTHERS_SHARE, RUN_COLUMNS, RUN_KEY

from .environment import PROJECT_ROOT, machine_name
from .plan import RunSpec, StudyPlan
from .noise import busy_note, noise_between, snapshot


class Progress:
    """A tqdm bar over the runs on a terminal; plain lines otherwise (logs, CI)."""

    def __init__(self, total: int, stream=sys.stderr):
        self.stream = stream
        self.interactive = stream.isatty()
        self.bar = None
        if self.interactive:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", file=stream, dynamic_ncols=True)
        self.total, self.done = total, 0

    def start(self, spec: RunSpec) -> None:
        if self.bar is not None:
            self.bar.set_description(spec.label)
        else:
            print(f"[{self.done + 1}/{self.total}] {spec.label} ...", file=self.stream, flush=True)

    def epoch(self, spec: RunSpec, epoch: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"epoch {epoch}/{spec.epochs}")

    def finish(self, spec: RunSpec, row: dict) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        status = row["status"]
        if status != "ok":
            detail = row["error"]
        elif spec.instrumented:  # its accuracy after a few epochs without evaluation means nothing
            detail = f"{row['wall_s']:.2f} s, timing of the phases only, no accuracy"
        else:
            detail = f"{row['wall_s']:.2f} s, test acc {row.get('test_acc', float('nan')):.4f}"
        line = f"    {spec.label}: {status} ({detail}){busy_note(row.get(OTHERS_SHARE))}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def execute(spec: RunSpec, plan: StudyPlan, data_path: Path, scratch: Path, timeout: float, progress: Progress) -> dict:
    """Run one spec in a fresh Python process; always returns a row (failures included)."""
    spec_path, result_path = scratch / "spec.json", scratch / "result.json"
    result_path.unlink(missing_ok=True)
    payload = {**spec.to_dict(), "config": plan.config.to_dict(), "data_path": str(data_path), "parent_pid": os.getpid()}
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
    timed_out = False
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            try:
                progress.epoch(spec, json.loads(line)["epoch"])
            except (ValueError, KeyError):
                pass
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
        result = {"run": {"status": "timeout", "error": f"no result within the time limit of {timeout:.0f} s"}, "epochs": []}
    else:
        tail = " | ".join(line.strip() for line in stderr_lines[-3:] if line.strip())
        result = {"run": {"status": "failed", "error": f"worker exited with status {process.returncode}: {tail}"}, "epochs": []}
    base = {k: v for k, v in spec.to_dict().items() if k in RUN_COLUMNS}
    row = {**base, **result["run"], **noise, "machine": machine_name()}
    epochs = [{**{k: getattr(spec, k) for k in ("framework", "variant", "batch_size", "threads", "repeat", "instrumented")}, **e,
               "machine": row["machine"]}
              for e in result["epochs"]]
    return {"run": row, "epochs": epochs}


def run_key(row) -> tuple:
    """A run's key from its row in runs.csv or epochs.csv, equal to its RunSpec.key."""
    framework, variant, batch_size, threads, repeat, instrumented = (row[c] for c in RUN_KEY)
    return (str(framework), str(variant), int(batch_size), int(threads), int(repeat), bool(instrumented))


def runs_to_do(specs: list[RunSpec], runs: pd.DataFrame, machine: str | None = None) -> list[RunSpec]:
    """The specs with no row in ``runs`` yet ('lost' rows do not count: those runs are done again);
    with ``machine``, the specs with no row of that machine."""
    if machine is not None:
        runs = runs[runs["machine"].astype(str) == machine] if "machine" in runs else runs.iloc[:0]
    done = {run_key(row) for _, row in runs.iterrows() if row["status"] != LOST}
    return [spec for spec in specs if spec.key not in done]
